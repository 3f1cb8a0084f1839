"""Non-streamed replays (chat completions and Responses) over one pooled aiohttp session.

Why not the ``openai`` SDK here, as everywhere else: a replay worker is bound by its
CPU per call, and the SDK builds an httpx request object on top of its aiohttp
transport for every call (URL parsing, header merging, option models). Measured on
the simulator, the SDK's low-level ``post`` costs 0.76 ms of CPU per call and a plain
aiohttp POST 0.16 ms; at 500 events/s on two cores that difference is whether the
workers keep up. Streamed replays, embeddings and the offline suite still use the SDK.

Failures are mapped onto the same errors ``openai_call.translate_error`` gives for the
SDK's exceptions, with the same messages, so a replay fails, retries and dead-letters
the same way whichever path made the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from shadowcanary.errors import UpstreamTimeout, UpstreamUnavailable
from shadowcanary.model_api import auth_headers, operation_urls
from shadowcanary.replay.openai_call import status_error
from shadowcanary.settings import ModelEndpoint


@dataclass(frozen=True, slots=True)
class _Target:
    urls: Mapping[str, URL]  # by OpenAI path: /chat/completions, /responses
    headers: Mapping[str, str]  # holds the API key: never logged, never in an error
    timeout: aiohttp.ClientTimeout


class ChatPoster:
    """``POST`` chat completions and Responses calls for each configured model.

    Build and use it on one event loop (the replay runtime's); ``close`` it there.
    """

    def __init__(self, endpoints: Mapping[str, ModelEndpoint], *, max_connections: int) -> None:
        # One pool for every model, as large as the in-flight budget: a replay waits
        # for the semaphore, never for a connection.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
            # The calls are to the configured base URLs only; never follow a redirect
            # or pick up cookies an upstream sets.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._targets = {
            name: _Target(
                urls=operation_urls(name, endpoint),
                headers={
                    **auth_headers(endpoint),
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": "shadowcanary-replay",
                },
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
            )
            for name, endpoint in endpoints.items()
        }

    async def post(
        self, model: str, body: Mapping[str, Any], *, path: str = "/chat/completions"
    ) -> bytes:
        """The 2xx response body of ``model`` for ``body`` posted to ``path``.

        Raises:
            TransientError: 429, 5xx, 408/409, timeouts, connection failures.
            UpstreamRejected: any other error status.
        """
        target = self._targets[model]
        try:
            async with self._session.post(
                target.urls[path],
                data=orjson.dumps(body),
                headers=target.headers,
                timeout=target.timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{model}: timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{model}: connection failed: {type(exc).__name__}") from exc
        if response.status >= 300:
            raise status_error(
                model,
                response.status,
                response.headers,
                _sdk_style_message(response.status, content),
                now=datetime.now(UTC),
            )
        return content

    async def close(self) -> None:
        await self._session.close()


def _sdk_style_message(status: int, content: bytes) -> str:
    """The message the SDK gives an error status: ``Error code: N[ - error.message]``.

    Only the body's designated message field is quoted, never the whole body.
    """
    message = f"Error code: {status}"
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return message
    error = body.get("error", body) if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    if isinstance(detail, str) and detail:
        message += f" - {detail}"
    return message
