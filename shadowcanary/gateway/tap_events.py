"""``POST /v1/tap/events``: events from services that call their models themselves.

The body is a JSON list of events, or ``{"events": [...]}``. Each event is validated
against the ``CapturedCall`` contract on its own: good ones go to the tap, bad ones
are reported by index with the field and the reason. Answers: 200 when every event
was accepted, 207 when some were, 422 when none were.

The events' ``tenant`` is the calling service (its key's name), as for proxied calls:
an event left at the default tenant gets it, one naming another tenant is rejected,
so a service cannot file its data under another's name. An event naming a rollout the
key is not bound to refuses the whole batch (403): that is a misused key, not a bad event.
"""

from __future__ import annotations

from typing import Any

from shadowcanary.errors import InvalidEvent, PayloadTooLarge
from shadowcanary.events import CapturedCall, parse_event
from shadowcanary.gateway import metrics
from shadowcanary.gateway.auth import KeyRing
from shadowcanary.gateway.http import Rejection
from shadowcanary.tap.emitter import Tap

MAX_EVENTS_PER_BATCH = 5_000
DEFAULT_TENANT = "default"  # CapturedCall's default: the sender did not say


def _foreign_tenant(tenant: str, service: str) -> str:
    return (
        f"tenant {tenant[:200]!r} is not this key's service {service!r}: events are filed "
        "under the calling service; leave 'tenant' out or set it to the service's name"
    )


def ingest(
    tap: Tap, body: Any, *, max_event_bytes: int, service: str, keys: KeyRing
) -> tuple[int, dict[str, Any]]:
    """Validate and emit a batch; the HTTP status and the answer's body.

    Raises:
        Rejection: 400 when the body is not a batch of events at all; 403 when an event
            names a rollout the service's key may not report for (nothing is emitted).
    """
    events = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events, list):
        raise Rejection(
            400,
            'The body must be a JSON list of events or {"events": [...]}; '
            "see shadowcanary/events.py for the CapturedCall contract.",
            code="invalid_batch",
        )
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise Rejection(
            413,
            f"A batch holds at most {MAX_EVENTS_PER_BATCH} events, this one has {len(events)}; "
            "split it into smaller batches.",
            code="batch_too_large",
        )
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, CapturedCall]] = []
    for index, raw in enumerate(events):
        if not isinstance(raw, dict):
            rejected.append({"index": index, "error": "an event must be a JSON object"})
            continue
        try:
            event = parse_event(raw, max_bytes=max_event_bytes)
        except (InvalidEvent, PayloadTooLarge) as exc:
            rejected.append({"index": index, "error": str(exc)})
            continue
        if event.tenant != service:
            if event.tenant != DEFAULT_TENANT:
                rejected.append({"index": index, "error": _foreign_tenant(event.tenant, service)})
                continue
            event = event.model_copy(update={"tenant": service})
        valid.append((index, event))
    keys.check_events(service, ((index, event.rollout) for index, event in valid))
    for _, event in valid:
        tap.emit(event)
    accepted = len(valid)
    if accepted:
        metrics.INGESTED.labels(outcome="accepted").inc(accepted)
    if rejected:
        metrics.INGESTED.labels(outcome="rejected").inc(len(rejected))
    status = 200 if not rejected else (207 if accepted else 422)
    return status, {"accepted": accepted, "rejected": rejected}
