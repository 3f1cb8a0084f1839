"""The gateway's raw-ASGI plumbing: OpenAI-style error answers and small response helpers.

The hot path is plain ASGI (no framework routing or request objects): per request it
costs a header scan and two ``send`` calls, which matters when the gateway's whole
budget is a millisecond.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from shadowcanary.errors import ShadowCanaryError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]

# OpenAI's error "type" per status, so SDKs map our errors to the same exception classes.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class Rejection(ShadowCanaryError):
    """The gateway answers the request itself with this status and an OpenAI-style error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = list(headers)

    def body(self) -> bytes:
        return error_body(self.status, self.message, code=self.code, param=self.param)


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as the OpenAI API sends it."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    """One complete response with a content-length."""
    head = list(headers if headers is not None else JSON_HEADERS)
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_rejection(send: Send, rejection: Rejection) -> None:
    await send_bytes(send, rejection.status, rejection.body(), JSON_HEADERS + rejection.headers)


async def send_json(send: Send, status: int, payload: Any) -> None:
    await send_bytes(send, status, orjson.dumps(payload))
