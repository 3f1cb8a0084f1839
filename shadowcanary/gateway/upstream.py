"""The upstream model APIs: one pooled aiohttp session per process, a breaker per model.

Each configured model (``Settings.models``) is an OpenAI-compatible base URL with its
own key. The key goes into a prebuilt header and nowhere else; error bodies coming
back are scrubbed of it before a client can see them.

Failures are classified once here, the way the OpenAI SDK names them, so events from
the gateway and from the Python tap carry the same ``error_class`` values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from yarl import URL

from shadowcanary.gateway import metrics
from shadowcanary.gateway.breaker import BreakerState, CircuitBreaker
from shadowcanary.model_api import auth_headers, operation_urls
from shadowcanary.settings import ModelEndpoint

# Response headers of the upstream that are not the client's business or that the
# gateway's own HTTP server sets (hop-by-hop, framing, the upstream's server identity).
_DROPPED_HEADERS = frozenset(
    {
        b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"date",
        b"server", b"content-encoding", b"set-cookie", b"alt-svc", b"via",
        b"strict-transport-security",
    }
)  # fmt: skip

# The SDK's exception class for each status, as the Python tap records it.
_ERROR_CLASSES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


class FailureKind(StrEnum):
    """Why an upstream call did not produce a usable answer."""

    STATUS = "status"  # the upstream answered with an error status
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, DNS, closed mid-response
    BREAKER_OPEN = "breaker_open"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream model, ready to call."""

    name: str  # our name for it (the key of Settings.models)
    url_base: str  # base URL without a trailing slash, e.g. https://api.openai.com/v1
    upstream_model: str  # the name sent upstream
    headers: Mapping[str, str]
    timeout_s: float
    secret: bytes  # the upstream key, to scrub from anything that goes back to a client
    # Where each routed operation goes, in the endpoint's dialect (``model_api``).
    urls: Mapping[str, URL]
    config: ModelEndpoint  # for the paths passed through (``passthrough``)

    def scrub(self, body: bytes) -> bytes:
        return body.replace(self.secret, b"[redacted]") if self.secret in body else body


def error_class(status: int) -> str:
    if status in _ERROR_CLASSES:
        return _ERROR_CLASSES[status]
    return "InternalServerError" if status >= 500 else "APIStatusError"


def client_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that go back to the client unchanged."""
    return [(k.lower(), v) for k, v in raw if k.lower() not in _DROPPED_HEADERS]


class Upstreams:
    """The configured model endpoints, their breakers and the shared HTTP session."""

    def __init__(
        self, models: Mapping[str, ModelEndpoint], *, breaker_failures: int, breaker_open_s: float
    ) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        for name, model in models.items():
            key = model.api_key.get_secret_value()
            self.endpoints[name] = Endpoint(
                name=name,
                url_base=model.base_url.rstrip("/"),
                upstream_model=model.upstream_model or name,
                headers={
                    **auth_headers(model),  # Bearer, or Azure's api-key
                    "Content-Type": "application/json",
                    # The body is read for capture: an encoded one would cost a decode.
                    "Accept-Encoding": "identity",
                },
                timeout_s=model.timeout_s,
                secret=key.encode() if key else b"\0never\0",
                urls=operation_urls(name, model),
                config=model,
            )
            self.breakers[name] = CircuitBreaker(
                name,
                failures=breaker_failures,
                open_s=breaker_open_s,
                on_change=_report_breaker,
            )
            metrics.BREAKER_STATE.labels(upstream=name).set(BreakerState.CLOSED)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, bool], aiohttp.ClientTimeout] = {}
        self._urls: dict[tuple[str, str], URL] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstreams.start() was not awaited (the app's lifespan starts it)")
        return self._session

    async def start(self) -> None:
        """Open the pooled session; must run on the serving event loop."""
        connector = aiohttp.TCPConnector(
            limit=0,  # concurrency is bounded by clients and upstream limits, not here
            keepalive_timeout=30,
            ttl_dns_cache=60,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            # No cookies: one session serves every client, and nothing may leak across.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, endpoint: Endpoint, path: str, body: bytes, *, timeout_s: float, stream: bool
    ) -> aiohttp.ClientResponse:
        """Send a request; the caller reads and releases the response.

        A streamed call times out when no byte arrives for ``timeout_s`` (first one
        included); a plain call when the whole answer takes longer.

        Raises:
            asyncio.TimeoutError, aiohttp.ClientError: the call failed before a status.
        """
        timeout = self._timeouts.get((timeout_s, stream))
        if timeout is None:
            timeout = (
                aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
                if stream
                else aiohttp.ClientTimeout(total=timeout_s)
            )
            self._timeouts[(timeout_s, stream)] = timeout
        url = endpoint.urls.get(path)
        if url is None:
            url = self._urls.get((endpoint.name, path))
        if url is None:  # parsed once: yarl's parsing is a measurable share of a call
            url = self._urls[(endpoint.name, path)] = URL(endpoint.url_base + path)
        return await self.session.post(url, data=body, headers=endpoint.headers, timeout=timeout)


def failure_kind(exc: BaseException) -> FailureKind:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return FailureKind.TIMEOUT
    return FailureKind.CONNECTION


def _report_breaker(name: str, state: BreakerState) -> None:
    metrics.BREAKER_STATE.labels(upstream=name).set(state)
