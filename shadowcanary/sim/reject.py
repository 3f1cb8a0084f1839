"""OpenAI-style error answers of the simulator, raised anywhere in a handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shadowcanary.sim import shapes
from shadowcanary.sim.state import NO_MODEL, SimState

JSON_MEDIA = "application/json"


class Reject(Exception):
    """Answer the request now with ``{"error": {...}}`` and this status."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        model: str = NO_MODEL,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        body = shapes.error_body(message, kind, code, param)
        body["error"].update(extra or {})
        self.body = body
        self.headers = headers or {}
        self.model = model  # the stats row this answer is counted under


Handler = Callable[[Request, SimState], Awaitable[Response]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler(request, state)``: hand it the app's state, turn ``Reject`` into JSON."""

    async def run(request: Request) -> Response:
        sim: SimState = request.app.state.sim
        try:
            return await handler(request, sim)
        except Reject as reject:
            sim.record(reject.model, reject.status)
            return Response(
                shapes.dumps(reject.body), reject.status, reject.headers, media_type=JSON_MEDIA
            )

    return run
