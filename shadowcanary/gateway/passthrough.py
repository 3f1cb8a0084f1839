"""Endpoints the gateway does not route: passed through to the route's baseline unchanged.

Moderations, audio, images, files, batches, uploads, stored responses... are not
generations the rollout compares, so the gateway neither routes them by the flag nor
taps them: a request goes to the upstream of the route's baseline model with the same
method, path, query string, body and content type, under the gateway's upstream key,
and the answer (status, headers, body, streamed as it arrives) comes back as sent.
The caller is authenticated and the body limit applies as on every other endpoint.
"""

from __future__ import annotations

import re
import time

import aiohttp
import structlog

from shadowcanary.gateway import metrics
from shadowcanary.gateway.http import Rejection, Scope, Send
from shadowcanary.gateway.upstream import Endpoint, Upstreams, client_headers
from shadowcanary.model_api import passthrough_url

log = structlog.get_logger(__name__)

# Request headers of the client that the upstream needs to read the body as sent.
_FORWARDED = frozenset({b"content-type", b"accept", b"openai-beta", b"idempotency-key"})
_V1 = "/v1"
# OpenAI's paths are plain segments (files/file-abc/content); anything else, such as a
# dot segment that would climb out of the upstream's /v1, is refused, not sent.
_SEGMENT = re.compile(r"[A-Za-z0-9_:~-][A-Za-z0-9_.:~-]*")


def passable(path: str) -> bool:
    """Whether ``path`` may be sent to an upstream: ``/v1/`` and plain segments only."""
    segments = path.split("/")[2:] if path.startswith(_V1 + "/") else []
    return bool(segments) and all(_SEGMENT.fullmatch(s) for s in segments)


def _headers(endpoint: Endpoint, scope: Scope) -> dict[str, str]:
    headers = {k: v for k, v in endpoint.headers.items() if k.lower() != "content-type"}
    for name, value in scope["headers"]:
        if name in _FORWARDED:
            headers[name.decode("latin-1")] = value.decode("latin-1")
    return headers


async def pass_through(
    upstreams: Upstreams, model: str, scope: Scope, path: str, body: bytes, send: Send
) -> None:
    """Relay one request to ``model``'s upstream and its answer back, streamed.

    Raises:
        Rejection: 502/504 when the upstream cannot be reached or does not answer.
    """
    endpoint = upstreams.endpoints[model]
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=endpoint.timeout_s, sock_read=endpoint.timeout_s
    )
    started = time.perf_counter()
    try:
        response = await upstreams.session.request(
            scope["method"],
            passthrough_url(
                endpoint.config, path, scope.get("query_string", b"").decode("latin-1")
            ),
            data=body or None,
            headers=_headers(endpoint, scope),
            timeout=timeout,
            allow_redirects=False,
        )
    except TimeoutError as exc:
        raise Rejection(
            504,
            f"The upstream for model '{model}' did not answer within {endpoint.timeout_s:g}s.",
            code="upstream_timeout",
        ) from exc
    except aiohttp.ClientError as exc:
        raise Rejection(
            502,
            f"The upstream for model '{model}' could not be reached ({type(exc).__name__}).",
            code="upstream_unreachable",
        ) from exc
    try:
        status = response.status
        if status in (401, 403):
            # The upstream refused the gateway's own key: the operator's problem, and its
            # message may quote part of the key.
            log.error("gateway_upstream_auth_failed", upstream=model, status=status)
            raise Rejection(
                502,
                f"The gateway's credentials for model '{model}' were refused upstream "
                f"(HTTP {status}). The operator must fix its api_key in SHADOWCANARY_MODELS.",
                code="upstream_auth_failed",
            )
        headers = client_headers(response.raw_headers)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for chunk in response.content.iter_any():
            # An error body may echo the request; never the key.
            data = endpoint.scrub(chunk) if status >= 400 else chunk
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        response.release()
    metrics.REQUESTS.labels(endpoint="passthrough", arm="baseline", status=str(status)).inc()
    metrics.UPSTREAM_LATENCY.labels("baseline").observe(time.perf_counter() - started)
