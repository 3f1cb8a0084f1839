"""The built-in PII and secret detectors, tuned for CPython's ``re`` on large texts.

``redact_builtin`` runs on the texts of a whole tap batch joined with NUL (hundreds
of kilobytes), so every pass is arranged to cost C-speed scanning, not Python work
per character:

* literal anchors are found with ``str.find`` / ``in`` or a regex starting with a
  literal, and the shape is only *matched* there: ``@`` for emails, ``bearer`` /
  ``authorization`` for tokens, ``key`` / ``secret`` / ``pass`` / ``token`` /
  ``pwd`` for ``key=value`` secrets;
* API keys (``sk-``, ``AKIA``, ``ghp_``, JWTs...) are looked for only inside runs
  of 15+ token characters, found with ``bytes.translate`` + ``bytes.find``;
* token boundaries are checked in Python on the few candidates found.

Cards, phones and SSNs are found by ``tap.pii_numbers``; IBANs and IP addresses by
``tap.pii_accounts``; national identity numbers by ``tap.pii_national``.

Measured against the labelled corpus in ``tests/corpus/pii`` (``bench/pii_recall.py``).
"""

from __future__ import annotations

import re

from shadowcanary.tap.pii_accounts import IBAN, IP, redact_accounts
from shadowcanary.tap.pii_national import NATIONAL_ID, redact_national_ids
from shadowcanary.tap.pii_numbers import (
    CARD,
    PHONE,
    SSN,
    luhn_valid,
    position_bytes,
    redact_numbers,
)

__all__ = [
    "CARD",
    "EMAIL",
    "IBAN",
    "IP",
    "NATIONAL_ID",
    "PHONE",
    "SECRET",
    "SSN",
    "luhn_valid",
    "redact_builtin",
]

EMAIL = "[EMAIL]"
SECRET = "[SECRET]"  # noqa: S105 - a placeholder, not a password

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORD_CHARS = _ALNUM | {"_"}

# -- emails -----------------------------------------------------------------------------

_LOCAL_PART_MAX = 64  # RFC 5321
_LOCAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.%+-'"
_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def _redact_emails(text: str) -> str:
    out: list[str] = []
    done = 0
    for match in _DOMAIN.finditer(text):
        at, end = match.span()
        floor = at - _LOCAL_PART_MAX
        if floor < done:
            floor = done
        # The local part is the run of local-part characters right before '@' (C speed).
        start = floor + len(text[floor:at].rstrip(_LOCAL_CHARS))
        while start < at and text[start] in ".'-":
            start += 1  # a sentence's quote or dash before the address is not part of it
        if start == at:
            continue
        out.append(text[done:start])
        out.append(EMAIL)
        done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# -- API keys and tokens: vendor prefixes found by str.find, shapes matched there -------

_SECRET_SHAPE = re.compile(
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-). Without one
    # of those sub-prefixes a digit or a capital is required, so hyphenated words that
    # happen to start with "sk-" stay ("sk-learn-compatible").
    r"sk-(?:(?:proj|ant|svcacct|admin)-|(?=[A-Za-z0-9_-]{0,200}[0-9A-Z]))[A-Za-z0-9_-]{16,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret and restricted keys
    r"|whsec_[A-Za-z0-9]{24,}"  # Stripe webhook secret
    r"|A(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[0-9]+-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"  # SendGrid
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
)
_TOKEN_CLASS = bytes(0x61 if chr(b) in _ALNUM or chr(b) in "_.-" else 0x20 for b in range(256))
_LONG_TOKEN_RUN = b"a" * 15  # the shortest shape above
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^\x00]*?-----END [A-Z ]*PRIVATE KEY-----")
# "Bearer <token>" and "Authorization: <scheme> <credential>": the credential.
_BEARER = re.compile(r"(?i)bearer[ \t]+")
_AUTH_HEADER = re.compile(r"(?i)authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:[a-z]+[ \t]+)?")
_CREDENTIAL = re.compile(r"[A-Za-z0-9._~+/-]{8,}=*")


def _replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    for start, end in spans:
        if start < done:
            start = done
        if end <= start:
            continue
        out.append(text[done:start])
        out.append(placeholder)
        done = end
    out.append(text[done:])
    return "".join(out)


def _redact_prefixed_tokens(text: str) -> str:
    # Every key shape is a run of at least 15 token characters: find those runs with
    # bytes.find on a class map, and look for the vendor shapes inside them only.
    classes = position_bytes(text).translate(_TOKEN_CLASS)
    at = classes.find(_LONG_TOKEN_RUN)
    spans = []
    while at != -1:
        start = classes.rfind(b" ", 0, at) + 1
        end = classes.find(b" ", at)
        end = len(classes) if end == -1 else end
        for match in _SECRET_SHAPE.finditer(text, start, end):
            if match.start() == 0 or text[match.start() - 1] not in _ALNUM:
                spans.append(match.span())
        at = classes.find(_LONG_TOKEN_RUN, end)
    return _replace_spans(text, spans, SECRET)


def _redact_auth(text: str, lower: str) -> str:
    spans = []
    for anchor, prefix in (("bearer", _BEARER), ("authorization", _AUTH_HEADER)):
        at = lower.find(anchor)
        while at != -1:
            head = None if at and text[at - 1] in _WORD_CHARS else prefix.match(text, at)
            credential = _CREDENTIAL.match(text, head.end()) if head is not None else None
            if credential is not None:
                spans.append(credential.span())  # "Bearer " stays readable
            at = lower.find(anchor, at + 1)
    return _replace_spans(text, spans, SECRET)


# -- key=value secrets: found from the hint words, the key kept readable ------------------

_KV_HINTS = ("key", "secret", "pass", "pwd", "token")
# A key whose letters (lowercase, no '_' or '-') end with one of these names a secret.
_KV_KEY_ENDINGS = (
    "apikey",
    "secretkey",
    "accesskey",
    "privatekey",
    "secret",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "token",
)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_KV_SEPARATOR = re.compile(r"[\"']?[ \t]*[:=][ \t]*")
_KV_VALUE = re.compile(r"\"[^\"\n\x00]+\"|'[^'\n\x00]+'|[^\s\"',;&}\]\x00]+")


def _redact_key_values(text: str, lower: str) -> str:
    spans: dict[int, tuple[int, int, str]] = {}  # by key start: "secret_key" has two hints
    for hint in _KV_HINTS:
        at = lower.find(hint)
        while at != -1:
            start, end = at, at + len(hint)
            while start > 0 and at - start < 40 and text[start - 1] in _KEY_CHARS:
                start -= 1
            while end < len(text) and end - at < 40 and text[end] in _KEY_CHARS:
                end += 1
            key = lower[start:end].replace("_", "").replace("-", "")
            if start not in spans and key.endswith(_KV_KEY_ENDINGS):
                separator = _KV_SEPARATOR.match(text, end)
                value = _KV_VALUE.match(text, separator.end()) if separator else None
                if value is not None:
                    quote = value.group()[0] if value.group()[0] in "\"'" else ""
                    spans[start] = (value.start(), value.end(), quote)
            at = lower.find(hint, end)
    if not spans:
        return text
    out: list[str] = []
    done = 0
    for value_start, value_end, quote in sorted(spans.values()):
        if value_start < done:
            continue
        out.append(text[done:value_start])
        out.append(f"{quote}{SECRET}{quote}")
        done = value_end
    out.append(text[done:])
    return "".join(out)


def redact_builtin(text: str) -> str:
    """``text`` with every built-in PII or secret match replaced by its typed placeholder."""
    if "-----BEGIN" in text:
        text = _PEM.sub(SECRET, text)
    lower = text.lower()
    if "bearer" in lower or "authorization" in lower:
        text = _redact_auth(text, lower)
        lower = text.lower()
    if any(hint in lower for hint in _KV_HINTS):
        text = _redact_key_values(text, lower)
    text = _redact_prefixed_tokens(text)
    if "@" in text:
        text = _redact_emails(text)
    # Before the numbers: an IBAN's digit groups, an IP's octets or a CPF are not phones.
    return redact_numbers(redact_national_ids(redact_accounts(text)))
