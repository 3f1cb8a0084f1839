"""``POST /v1/tap/outcomes``: what happened after an answer, from services in any language.

The body is a JSON list of outcome reports, or ``{"outcomes": [...]}``; each is an
``OutcomeReport`` (shadowcanary/outcomes.py) without ``reported_at`` (the gateway's
clock when left out) and keyed by the ``x-shadowcanary-event-id`` header of the answer
it is about. Same rules as ``/v1/tap/events``: each report is validated on its own and
bad ones are reported by index with the field and the reason (200 all accepted, 207
some, 422 none); ``tenant`` is the calling service; a report naming a rollout the key
is not bound to refuses the whole batch (403). A report about another service's call
is accepted here and refused when joined (counted, see shadowcanary.store.outcomes).
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import Counter

from shadowcanary.errors import InvalidEvent, PayloadTooLarge
from shadowcanary.events import now_utc
from shadowcanary.gateway.auth import KeyRing
from shadowcanary.gateway.http import Rejection
from shadowcanary.outcomes import OutcomeReport, parse_outcome
from shadowcanary.tap.emitter import Tap

MAX_OUTCOMES_PER_BATCH = 5_000
PATH = "/v1/tap/outcomes"
OUTCOMES_INGESTED = Counter(
    "shadowcanary_gateway_ingested_outcomes_total",
    "Outcome reports posted to /v1/tap/outcomes, by result (accepted, rejected).",
    ["result"],
)


def _foreign_tenant(tenant: Any, service: str) -> str:
    return (
        f"tenant {str(tenant)[:200]!r} is not this key's service {service!r}: outcomes are "
        "filed under the calling service; leave 'tenant' out"
    )


def ingest_outcomes(
    tap: Tap, body: Any, *, service: str, keys: KeyRing
) -> tuple[int, dict[str, Any]]:
    """Validate and queue a batch of outcome reports; the HTTP status and the answer's body.

    Raises:
        Rejection: 400 when the body is not a batch of reports, 413 when it holds too
            many, 403 when a report names a rollout the key may not report for.
    """
    reports = body.get("outcomes") if isinstance(body, dict) else body
    if not isinstance(reports, list):
        raise Rejection(
            400,
            'The body must be a JSON list of outcome reports or {"outcomes": [...]}, each like '
            '{"event_id": "<x-shadowcanary-event-id of the answer>", "task": "completed"}; '
            "see shadowcanary/outcomes.py for the fields.",
            code="invalid_batch",
        )
    if len(reports) > MAX_OUTCOMES_PER_BATCH:
        raise Rejection(
            413,
            f"A batch holds at most {MAX_OUTCOMES_PER_BATCH} outcome reports, this one has "
            f"{len(reports)}; split it into smaller batches.",
            code="batch_too_large",
        )
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, OutcomeReport]] = []
    received_at = now_utc().isoformat()
    for index, raw in enumerate(reports):
        if not isinstance(raw, dict):
            rejected.append({"index": index, "error": "an outcome report must be a JSON object"})
            continue
        tenant = raw.get("tenant")
        if tenant is not None and tenant != service:
            rejected.append({"index": index, "error": _foreign_tenant(tenant, service)})
            continue
        stamped = {"reported_at": received_at, **raw, "tenant": service}
        try:
            size = len(orjson.dumps(raw))
            valid.append((index, parse_outcome(stamped, size=size)))
        except (InvalidEvent, PayloadTooLarge) as exc:
            rejected.append({"index": index, "error": str(exc)})
        except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. integers past 64 bits
            rejected.append({"index": index, "error": f"outcome report cannot be encoded: {exc}"})
    keys.check_events(service, ((index, report.rollout) for index, report in valid))
    accepted = 0
    for index, report in valid:
        if tap.outcome_report(report):
            accepted += 1
        else:  # the tap's buffer is full or closing: say so rather than pretend it was taken
            rejected.append({"index": index, "error": "the gateway is overloaded; retry later"})
    if accepted:
        OUTCOMES_INGESTED.labels(result="accepted").inc(accepted)
    if rejected:
        OUTCOMES_INGESTED.labels(result="rejected").inc(len(rejected))
    status = 200 if not rejected else (207 if accepted else 422)
    return status, {"accepted": accepted, "rejected": sorted(rejected, key=lambda r: r["index"])}
