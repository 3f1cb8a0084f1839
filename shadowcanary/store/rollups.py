"""Per-minute rollups: aggregate a batch in Python, then merge it into Postgres.

Counters are merged with ``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``.
Sketches cannot be added in SQL, so the counter upsert (which leaves each touched
row locked until commit) returns them, and they are merged in Python and written
back. Every writer touches rows in primary-key order, so writers from many
processes queue behind each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table

from shadowcanary.events import CallStatus
from shadowcanary.judge.types import Comparison
from shadowcanary.shadow_results import ReplayKind, ReplayRecord, ReplayStatus
from shadowcanary.store import bulk
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import (
    LIVE_COUNTERS,
    SHADOW_COUNTERS,
    LiveRollupRow,
    ShadowRollupRow,
)
from shadowcanary.store.sketch import QuantileSketch

LIVE_TABLE: Table = LiveRollupRow.__table__  # type: ignore[assignment]
SHADOW_TABLE: Table = ShadowRollupRow.__table__  # type: ignore[assignment]
# Keys per statement: keeps every multi-row upsert far below Postgres' 65535 parameters.
_KEYS_PER_STATEMENT = 500

RollupKey = tuple[str, str, datetime]  # (rollout key, arm or kind, minute)
_LIVE_KEY = ("rollout", "arm", "minute")
_LIVE_SKETCHES = ("latency_sketch", "ttft_sketch")

_STATUS_COUNTER = {
    CallStatus.ERROR: "errors",
    CallStatus.TIMEOUT: "timeouts",
    CallStatus.RATE_LIMITED: "rate_limited",
    CallStatus.CANCELLED: "cancelled",
}


def minute_of(moment: datetime) -> datetime:
    """The UTC minute a moment falls in: the rollup bucket."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def rollout_key(rollout: str | None) -> str:
    """Traffic outside any rollout is rolled up under '' so the key has no NULLs."""
    return rollout or ""


@dataclass(slots=True)
class LiveBucket:
    """The live outcomes of one batch for one (rollout, arm, minute)."""

    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LIVE_COUNTERS, 0))
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    def add(self, capture: AssessedCapture) -> None:
        c, event, flags = self.counters, capture.event, capture.flags
        c["requests"] += 1
        if event.status is not CallStatus.OK:
            c["failures"] += 1
            c[_STATUS_COUNTER[event.status]] += 1
        if flags is not None:
            c["assessed"] += 1
            c["truncated"] += flags.truncated
            c["refusals"] += flags.refusal
            c["empty"] += flags.empty
            c["json_expected"] += flags.json_expected
            c["json_invalid"] += flags.json_invalid
            c["tool_schema_invalid"] += flags.tool_schema_invalid
            c["tool_unknown"] += flags.tool_unknown
        c["latency_sum"] += event.latency_ms
        c["latency_sq_sum"] += event.latency_ms**2
        self.latencies.append(event.latency_ms)
        if event.ttft_ms is not None:
            c["ttft_n"] += 1
            c["ttft_sum"] += event.ttft_ms
            c["ttft_sq_sum"] += event.ttft_ms**2
            self.ttfts.append(event.ttft_ms)
        if event.completion_tokens is not None:
            c["tokens_n"] += 1
            c["prompt_tokens_sum"] += event.prompt_tokens or 0
            c["completion_tokens_sum"] += event.completion_tokens
            c["completion_tokens_sq_sum"] += event.completion_tokens**2
        if capture.cost_usd is not None:
            c["cost_n"] += 1
            c["cost_usd_sum"] += capture.cost_usd
            c["cost_usd_sq_sum"] += capture.cost_usd**2


def live_buckets(captures: Iterable[AssessedCapture]) -> dict[RollupKey, LiveBucket]:
    buckets: dict[RollupKey, LiveBucket] = {}
    for capture in captures:
        event = capture.event
        key = (rollout_key(event.rollout), event.arm.value, minute_of(event.started_at))
        buckets.setdefault(key, LiveBucket()).add(capture)
    return buckets


def _shadow_zero() -> dict[str, float]:
    return dict.fromkeys(SHADOW_COUNTERS, 0)


def add_replay(counters: dict[str, float], record: ReplayRecord) -> None:
    """Count one new replay (and its comparison, when there is one) into a shadow bucket."""
    if record.status is ReplayStatus.NOT_REPLAYABLE:
        return  # never sent: neither a replay nor a failure (its row says why)
    counters["replays"] += 1
    counters["other_failed"] += record.status is ReplayStatus.FAILED
    counters["skipped_budget"] += record.status is ReplayStatus.SKIPPED_BUDGET
    if record.comparison is not None:
        _add_comparison(counters, record.comparison)


def _add_comparison(c: dict[str, float], cmp: Comparison) -> None:
    c["n"] += 1
    c["exact_matches"] += cmp.exact_match
    c["normalized_matches"] += cmp.normalized_match
    c["lexical_sum"] += cmp.lexical_similarity
    c["lexical_sq_sum"] += cmp.lexical_similarity**2
    if cmp.embedding_similarity is not None:
        c["embedding_n"] += 1
        c["embedding_sum"] += cmp.embedding_similarity
        c["embedding_sq_sum"] += cmp.embedding_similarity**2
    other = cmp.other_flags
    c["other_empty"] += other.empty
    c["other_truncated"] += other.truncated
    c["other_refusal"] += other.refusal
    c["other_json_invalid"] += other.json_invalid
    c["other_tool_schema_invalid"] += other.tool_schema_invalid
    c["other_tool_unknown"] += other.tool_unknown
    if cmp.tool_name_agreement is not None:
        c["tool_compared_n"] += 1
        c["tool_name_disagree"] += not cmp.tool_name_agreement
        c["tool_args_disagree"] += cmp.tool_args_agreement is False
    if cmp.latency_delta_ms is not None:
        c["latency_delta_n"] += 1
        c["latency_delta_sum"] += cmp.latency_delta_ms
        c["latency_delta_sq_sum"] += cmp.latency_delta_ms**2
    if cmp.cost_delta_usd is not None:
        c["cost_delta_n"] += 1
        c["cost_delta_sum"] += cmp.cost_delta_usd
    if cmp.completion_token_delta is not None:
        c["completion_token_delta_n"] += 1
        c["completion_token_delta_sum"] += cmp.completion_token_delta


def add_paired_difference(counters: dict[str, float], difference: float) -> None:
    counters["paired_n"] += 1
    counters["paired_diff_sum"] += difference
    counters["paired_diff_sq_sum"] += difference**2


def shadow_bucket(
    buckets: dict[RollupKey, dict[str, float]],
    rollout: str | None,
    kind: ReplayKind,
    started_at: datetime,
) -> dict[str, float]:
    key = (rollout_key(rollout), kind.value, minute_of(started_at))
    return buckets.setdefault(key, _shadow_zero())


def _chunks(keys: Sequence[RollupKey]) -> Iterator[Sequence[RollupKey]]:
    for start in range(0, len(keys), _KEYS_PER_STATEMENT):
        yield keys[start : start + _KEYS_PER_STATEMENT]


def _typed(table: Table, counters: Mapping[str, float]) -> dict[str, Any]:
    # bools were summed as ints already; integer columns must not receive floats.
    return {
        name: value if table.c[name].type.python_type is float else int(value)
        for name, value in counters.items()
    }


def upsert_shadow(conn: Connection, buckets: Mapping[RollupKey, Mapping[str, float]]) -> None:
    """Add the batch's shadow counters to their minute rows (one fixed statement, see bulk)."""
    rows = [
        {"rollout": k[0], "kind": k[1], "minute": k[2], **_typed(SHADOW_TABLE, buckets[k])}
        for k in sorted(buckets)
    ]
    bulk.upsert_add(conn, SHADOW_TABLE, rows, keys=("rollout", "kind", "minute"))


def upsert_live(conn: Connection, buckets: Mapping[RollupKey, LiveBucket]) -> None:
    """Add the batch's live counters and merge its latency/TTFT sketches into their rows.

    Two fixed statements (see bulk): the counter upsert returns each row's stored
    sketches and leaves the row locked; the merged sketches are written back by key.
    """
    keys = sorted(buckets)
    empty = QuantileSketch().to_json()
    for chunk in _chunks(keys):
        rows = [
            {
                "rollout": k[0],
                "arm": k[1],
                "minute": k[2],
                **_typed(LIVE_TABLE, buckets[k].counters),
                "latency_sketch": empty,
                "ttft_sketch": empty,
            }
            for k in chunk
        ]
        stored = bulk.upsert_add(
            conn,
            LIVE_TABLE,
            rows,
            keys=_LIVE_KEY,
            insert_only=_LIVE_SKETCHES,
            returning=(*_LIVE_KEY, *_LIVE_SKETCHES),
        )
        merged = []
        for rollout, arm, minute, latency_doc, ttft_doc in sorted(stored):
            bucket = buckets[(rollout, arm, minute_of(minute))]
            latency = QuantileSketch.from_json(latency_doc).merge(
                QuantileSketch.of(bucket.latencies)
            )
            ttft = QuantileSketch.from_json(ttft_doc).merge(QuantileSketch.of(bucket.ttfts))
            merged.append(
                {
                    "rollout": rollout,
                    "arm": arm,
                    "minute": minute,
                    "latency_sketch": latency.to_json(),
                    "ttft_sketch": ttft.to_json(),
                }
            )
        bulk.update_by_key(conn, LIVE_TABLE, merged, keys=_LIVE_KEY)
