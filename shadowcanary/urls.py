"""Redis URL spellings: redis-py and kombu disagree on unix sockets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# "scheme://user:password@" anywhere in a text (error messages quote URLs).
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.I)


def broker_url_for(redis_url: str) -> str:
    """The kombu/Celery spelling of a Redis URL (kombu has no ``unix://`` transport)."""
    return _with_socket_scheme(redis_url, from_schemes=("unix",), to_scheme="redis+socket")


def redis_py_url(redis_url: str) -> str:
    """The redis-py spelling of a Redis URL (redis-py has no ``redis+socket://``)."""
    return _with_socket_scheme(redis_url, from_schemes=("redis+socket", "socket"), to_scheme="unix")


def without_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (for logs, errors)."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def _with_socket_scheme(url: str, *, from_schemes: tuple[str, ...], to_scheme: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in from_schemes:
        return url
    # Built by hand: urlunsplit drops the "//" of an empty host ("unix:/path").
    query = f"?{parts.query}" if parts.query else ""
    return f"{to_scheme}://{parts.netloc}{parts.path}{query}"
