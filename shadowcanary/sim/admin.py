"""Run-time control of the simulator: read and change profiles, read statistics.

Every route needs ``Authorization: Bearer <admin token>``. Changes are validated as
a whole (field ranges, unknown fields, ``diverge_from`` targets and loops) and apply
to the next request; nothing is persisted.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shadowcanary.errors import ConfigError
from shadowcanary.sim import shapes
from shadowcanary.sim.json_body import parse_json_body
from shadowcanary.sim.profiles import MODEL_NAME_PATTERN, ModelProfile, describe_validation_error
from shadowcanary.sim.reject import JSON_MEDIA, Reject, endpoint
from shadowcanary.sim.state import SimState

ADMIN = "<admin>"  # the stats row admin requests are counted under
_MAX_ADMIN_BODY = 64 * 1024
log = structlog.get_logger(__name__)


def _require_admin(request: Request, sim: SimState) -> None:
    if not sim.admin_enabled:
        raise Reject(
            401,
            "The admin API is disabled: start the simulator with --admin-token to enable it.",
            code="admin_disabled",
            model=ADMIN,
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not sim.admin_ok(token.strip()):
        raise Reject(
            401,
            "Admin endpoints need 'Authorization: Bearer <admin token>' (the --admin-token "
            "the simulator was started with).",
            code="invalid_admin_token",
            model=ADMIN,
        )


def _ok(body: Any, status: int = 200) -> Response:
    return Response(shapes.dumps(body), status, media_type=JSON_MEDIA)


async def _get_profiles(request: Request, sim: SimState) -> Response:
    _require_admin(request, sim)
    return _ok({"profiles": sim.profiles.as_dict(), "version": sim.version})


async def _put_profile(request: Request, sim: SimState) -> Response:
    _require_admin(request, sim)
    name = request.path_params["model"]
    if not re.match(MODEL_NAME_PATTERN, name):
        raise Reject(
            422, f"invalid model name {name!r}: use letters, digits and . : / @ + - _", model=ADMIN
        )
    changes = await _json_object(request)
    current = sim.profiles.get(name)
    merged = {**(current.model_dump(exclude_unset=False) if current else {}), **changes}
    if "mean_ms" in changes and "median_ms" not in changes:
        merged.pop("median_ms", None)  # a new mean replaces the stored median
    try:
        profile = ModelProfile.model_validate(merged)
        updated = sim.profiles.with_profile(name, profile)
    except ValidationError as exc:
        raise Reject(
            422, f"invalid profile for {name!r}: {describe_validation_error(exc)}", model=ADMIN
        ) from None
    except ConfigError as exc:
        raise Reject(422, str(exc), model=ADMIN) from None
    sim.replace_profiles(updated)
    log.info("sim profile changed", model=name, fields=sorted(changes), created=current is None)
    return _ok({"model": name, "profile": profile.model_dump(), "version": sim.version})


async def _delete_profile(request: Request, sim: SimState) -> Response:
    _require_admin(request, sim)
    name = request.path_params["model"]
    if name not in sim.profiles:
        raise Reject(404, f"no profile named {name!r}", code="model_not_found", model=ADMIN)
    try:
        updated = sim.profiles.without(name)
    except ConfigError as exc:
        raise Reject(409, str(exc), model=ADMIN) from None
    sim.replace_profiles(updated)
    log.info("sim profile removed", model=name)
    return _ok({"deleted": name, "version": sim.version})


async def _get_stats(request: Request, sim: SimState) -> Response:
    _require_admin(request, sim)
    return _ok(sim.stats())


async def _reset_stats(request: Request, sim: SimState) -> Response:
    _require_admin(request, sim)
    sim.reset_stats()
    return _ok(sim.stats())


async def _json_object(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_ADMIN_BODY:
            raise Reject(413, f"admin body over {_MAX_ADMIN_BODY} bytes", model=ADMIN)
    body = parse_json_body(raw or b"{}", model=ADMIN)
    if not isinstance(body, dict):
        raise Reject(400, "admin body must be a JSON object of profile fields", model=ADMIN)
    return body


def admin_routes() -> list[Route]:
    return [
        Route("/admin/profiles", endpoint(_get_profiles), methods=["GET"]),
        Route("/admin/profiles/{model:path}", endpoint(_put_profile), methods=["PUT"]),
        Route("/admin/profiles/{model:path}", endpoint(_delete_profile), methods=["DELETE"]),
        Route("/admin/stats", endpoint(_get_stats), methods=["GET"]),
        Route("/admin/stats", endpoint(_reset_stats), methods=["DELETE"]),
    ]
