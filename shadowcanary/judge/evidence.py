"""What the judge decides from: per-minute counts per arm, shadow figures, rollout state.

Independent of the store: the controller converts its rollups into these values. They
are plain frozen data and serialise to JSON (``to_jsonable`` / ``from_jsonable``) so an
audit row holds everything needed to recompute a decision exactly.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import types
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of a measure: mergeable, enough for mean and variance."""

    n: int = 0
    total: float = 0.0
    sq_total: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.sq_total + other.sq_total)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance; None below two values."""
        if self.n < 2:
            return None
        # max(): rounding can push a zero variance a hair below zero.
        return max(0.0, (self.sq_total - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """Live outcomes of one arm (baseline or candidate) in one minute."""

    requests: int = 0
    failures: int = 0  # status not ok: errors, timeouts, rate limits, cancellations
    truncated: int = 0  # finish_reason == "length"
    refusals: int = 0
    json_expected: int = 0
    json_invalid: int = 0
    tool_schema_invalid: int = 0
    # Requests slower than Evidence.slow_threshold_ms, among the latency_ms.n measured.
    slow: int = 0
    latency_ms: Moments = Moments()
    ttft_ms: Moments = Moments()
    completion_tokens: Moments = Moments()
    cost_usd: Moments = Moments()
    # User outcomes reported for this minute's calls (shadowcanary.outcomes): calls with
    # any report, with a task outcome, abandoned tasks, thumbs down or retried, escalated.
    outcomes: int = 0
    tasks: int = 0
    abandoned: int = 0
    negative: int = 0
    escalated: int = 0


@dataclass(frozen=True, slots=True)
class ShadowCounts:
    """Shadow replays of one minute, compared against the live baseline answer B1."""

    # D = sim(C, B1) - sim(B2, B1) per prompt sampled for the noise floor.
    similarity_diff: Moments = Moments()
    # Pairwise LLM judge (judge/pairwise.py), per judged pair: +1 loss, 0 tie, -1 win of
    # the candidate against the baseline (net loss rate = mean) ...
    judge_diff: Moments = Moments()
    # ... and of the baseline asked again against the baseline: the judge's noise floor.
    judge_noise: Moments = Moments()
    # Judge calls that failed (judge down, unparseable reply) or were not made (budget).
    judge_failed: int = 0
    judge_skipped_budget: int = 0
    # JSON validity of candidate replays against the baseline on the same kind of prompts.
    candidate_replays: int = 0
    candidate_json_invalid: int = 0
    baseline_replays: int = 0
    baseline_json_invalid: int = 0
    # Candidate-arm live calls replayed to the baseline model (the rollback target) during
    # the watch after 100 %: attempts, failures, and latency minus the live answer's.
    rollback_replays: int = 0
    rollback_failed: int = 0
    rollback_latency_delta_ms: Moments = Moments()


@dataclass(frozen=True, slots=True)
class RouteJudgement:
    """The LLM judge's per-pair net losses of one route since the rollout started."""

    route: str
    candidate: Moments = Moments()


@dataclass(frozen=True, slots=True)
class Bucket:
    """One minute of evidence. ``canary_percent`` is what the flag said in that minute."""

    start: datetime
    canary_percent: float
    baseline: ArmCounts = ArmCounts()
    candidate: ArmCounts = ArmCounts()
    shadow: ShadowCounts = ShadowCounts()


@dataclass(frozen=True, slots=True)
class Evidence:
    """Buckets since the rollout started, oldest first."""

    buckets: tuple[Bucket, ...] = ()
    # The latency the controller counted ``slow`` requests against (its sketch, this value).
    slow_threshold_ms: float | None = None
    # Per route, so the judge can name the route a candidate is worse on.
    judge_routes: tuple[RouteJudgement, ...] = ()

    def problems(self, table: EvidenceTable | None = None) -> list[str]:
        """Why these numbers cannot be trusted (empty when they can).

        ``table`` is ``EvidenceTable.of(self.buckets)`` when the caller has built it.
        """
        found: list[str] = []
        table = EvidenceTable.of(self.buckets) if table is None else table
        naive = np.flatnonzero(np.isnan(table.starts))
        if len(naive):
            return [f"bucket {self.buckets[naive[0]].start.isoformat()}: start has no timezone"]
        for row in np.flatnonzero(np.diff(table.starts) <= 0) + 1:
            found.append(
                f"bucket {self.buckets[row].start.isoformat()}: not after the bucket before it"
            )
        if self.slow_threshold_ms is not None and not math.isfinite(self.slow_threshold_ms):
            found.append(f"slow_threshold_ms is {self.slow_threshold_ms}")
        bad_rows = np.flatnonzero(table.bad_rows())
        for row in bad_rows[:3]:
            found.append(f"bucket {self.buckets[row].start.isoformat()}: {table.describe(row)}")
        if len(bad_rows) > 3:
            found.append(f"and {len(bad_rows) - 3} more buckets with impossible numbers")
        return found


_MOMENTS = ("n", "total", "sq_total")
_ARM_COUNTS = (
    "requests",
    "failures",
    "truncated",
    "refusals",
    "json_expected",
    "json_invalid",
    "tool_schema_invalid",
    "slow",
    "outcomes",
    "tasks",
    "abandoned",
    "negative",
    "escalated",
)
_ARM_MOMENTS = ("latency_ms", "ttft_ms", "completion_tokens", "cost_usd")
_SHADOW_COUNTS = (
    "candidate_replays",
    "candidate_json_invalid",
    "baseline_replays",
    "baseline_json_invalid",
    "rollback_replays",
    "rollback_failed",
    "judge_failed",
    "judge_skipped_budget",
)
_SHADOW_MOMENTS = ("similarity_diff", "judge_diff", "rollback_latency_delta_ms", "judge_noise")


def _arm_columns(arm: str) -> tuple[str, ...]:
    return tuple(f"{arm}.{c}" for c in _ARM_COUNTS) + tuple(
        f"{arm}.{m}.{p}" for m in _ARM_MOMENTS for p in _MOMENTS
    )


COLUMNS: tuple[str, ...] = (
    "canary_percent",
    *_arm_columns("baseline"),
    *_arm_columns("candidate"),
    *(f"shadow.{c}" for c in _SHADOW_COUNTS),
    *(f"shadow.{m}.{p}" for m in _SHADOW_MOMENTS for p in _MOMENTS),
)
_INDEX = {name: i for i, name in enumerate(COLUMNS)}
# Columns that hold counts (never negative); the others are sums, finite but any sign
# (a quality difference D sums to a negative total when the candidate is worse).
_COUNT_COLUMNS = np.array([not name.endswith((".total",)) for name in COLUMNS], dtype=bool)
# (numerator, denominator) column pairs that cannot exceed one another.
_AT_MOST = (
    tuple(
        (f"{arm}.{part}", f"{arm}.requests")
        for arm in ("baseline", "candidate")
        for part in ("failures", "truncated", "refusals", "json_expected")
    )
    + tuple(
        (f"{arm}.{a}", f"{arm}.{b}")
        for arm in ("baseline", "candidate")
        for a, b in (
            ("json_invalid", "json_expected"),
            ("slow", "latency_ms.n"),
            ("tasks", "outcomes"),
            ("abandoned", "tasks"),
            ("negative", "outcomes"),
            ("escalated", "outcomes"),
        )
    )
    + (
        ("shadow.candidate_json_invalid", "shadow.candidate_replays"),
        ("shadow.baseline_json_invalid", "shadow.baseline_replays"),
        ("shadow.rollback_failed", "shadow.rollback_replays"),
    )
)


def _moments(m: Moments) -> tuple[float, float, float]:
    return (m.n, m.total, m.sq_total)


def _arm_row(a: ArmCounts) -> tuple[float, ...]:
    return (
        a.requests,
        a.failures,
        a.truncated,
        a.refusals,
        a.json_expected,
        a.json_invalid,
        a.tool_schema_invalid,
        a.slow,
        a.outcomes,
        a.tasks,
        a.abandoned,
        a.negative,
        a.escalated,
        *_moments(a.latency_ms),
        *_moments(a.ttft_ms),
        *_moments(a.completion_tokens),
        *_moments(a.cost_usd),
    )


def _row(b: Bucket) -> tuple[float, ...]:
    s = b.shadow
    return (
        b.canary_percent,
        *_arm_row(b.baseline),
        *_arm_row(b.candidate),
        s.candidate_replays,
        s.candidate_json_invalid,
        s.baseline_replays,
        s.baseline_json_invalid,
        s.rollback_replays,
        s.rollback_failed,
        s.judge_failed,
        s.judge_skipped_budget,
        *_moments(s.similarity_diff),
        *_moments(s.judge_diff),
        *_moments(s.rollback_latency_delta_ms),
        *_moments(s.judge_noise),
    )


# The last few tables built, keyed by the id of their first bucket (one per rollout the
# process judges); each entry holds its buckets, so an id is never reused while cached.
_ROW_CACHE: dict[int, tuple[tuple[Bucket, ...], EvidenceTable]] = {}
_ROW_CACHE_SIZE = 16


def _start_seconds(bucket: Bucket) -> float:
    """A bucket's start in POSIX seconds; NaN when it has no timezone."""
    return math.nan if bucket.start.tzinfo is None else bucket.start.timestamp()


def _remember(buckets: tuple[Bucket, ...], table: EvidenceTable) -> None:
    _ROW_CACHE.pop(id(buckets[0]), None)
    _ROW_CACHE[id(buckets[0])] = (buckets, table)
    while len(_ROW_CACHE) > _ROW_CACHE_SIZE:
        del _ROW_CACHE[next(iter(_ROW_CACHE))]  # the oldest entry (dicts keep order)


@dataclass(frozen=True, slots=True, eq=False)
class EvidenceTable:
    """Every number of a run of buckets as one float matrix: a row per bucket.

    Built once per decision so each trigger sums columns instead of walking objects.
    """

    values: npt.NDArray[np.float64]
    starts: npt.NDArray[np.float64]  # each bucket's start in POSIX seconds (NaN: naive)
    bad: npt.NDArray[np.bool_] | None = None  # ``bad_rows``, when already known

    @classmethod
    def of(cls, buckets: Sequence[Bucket]) -> EvidenceTable:
        """The table of these buckets; rows of buckets seen by the last call are reused.

        The controller hands every tick the same Bucket objects for the minutes that did
        not change (``store.evidence_reads`` caches them per hour), so only the newest
        minutes are converted: a tick's conversion cost does not grow with the rollout.
        Rows follow the objects (a changed minute is a new Bucket), so the table is the
        same as one built from scratch.
        """
        buckets = tuple(buckets)
        reused = _ROW_CACHE.get(id(buckets[0])) if buckets else None
        kept = 0
        if reused is not None:
            same = list(map(operator.is_, reused[0], buckets))
            kept = same.index(False) if False in same else len(same)
            if kept == len(buckets) == len(reused[0]):
                return reused[1]
        fresh_rows = np.array([_row(b) for b in buckets[kept:]], dtype=np.float64)
        fresh = cls(
            fresh_rows.reshape(len(buckets) - kept, len(COLUMNS)),
            np.array([_start_seconds(b) for b in buckets[kept:]], dtype=np.float64),
        )
        fresh = replace(fresh, bad=fresh.bad_rows())
        if reused is not None and kept:
            old = reused[1]
            fresh = cls(
                np.vstack((old.values[:kept], fresh.values)),
                np.concatenate((old.starts[:kept], fresh.starts)),
                np.concatenate((old.bad_rows()[:kept], fresh.bad_rows())),
            )
        if buckets:
            _remember(buckets, fresh)
        return fresh

    def span(self, first: float, last: float) -> tuple[int, int]:
        """Row range [i, j) of the buckets starting in [first, last] (POSIX seconds).

        Only for strictly increasing starts (``Evidence.problems`` checks them).
        """
        i = int(np.searchsorted(self.starts, first, side="left"))
        j = int(np.searchsorted(self.starts, last, side="right"))
        return i, max(i, j)

    def rows(self, keep: npt.NDArray[np.bool_] | slice) -> EvidenceTable:
        """The table of the buckets where ``keep`` is true (a slice: a view, no copy)."""
        return EvidenceTable(self.values[keep], self.starts[keep], self.bad_rows()[keep])

    def last(self, count: int) -> EvidenceTable:
        """The table of the last ``count`` buckets."""
        start = max(0, len(self.values) - count)
        return EvidenceTable(self.values[start:], self.starts[start:], self.bad_rows()[start:])

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[:, _INDEX[name]]

    def total(self, name: str) -> float:
        return float(self.column(name).sum())

    def moments(self, prefix: str) -> Moments:
        """The merged Moments of a measure, e.g. ``candidate.ttft_ms``."""
        n, total, sq = (self.total(f"{prefix}.{p}") for p in _MOMENTS)
        return Moments(int(n), total, sq)

    def bad_rows(self) -> npt.NDArray[np.bool_]:
        """Rows with a non-finite number, a negative count or a part above its whole."""
        if self.bad is not None:
            return self.bad
        v = self.values
        bad = ~np.isfinite(v).all(axis=1) | (v[:, _COUNT_COLUMNS] < 0).any(axis=1)
        bad |= v[:, 0] > 100.0
        for part, whole in _AT_MOST:
            bad |= self.column(part) > self.column(whole)
        return np.asarray(bad)

    def describe(self, row: int) -> str:
        """What is wrong with one row, in words."""
        v = self.values[row]
        wrong = [f"{name} is {v[i]}" for i, name in enumerate(COLUMNS) if not math.isfinite(v[i])]
        wrong += [
            f"{name} is negative ({v[i]:g})"
            for i, name in enumerate(COLUMNS)
            if _COUNT_COLUMNS[i] and v[i] < 0
        ]
        if v[0] > 100.0:
            wrong.append(f"canary_percent {v[0]:g} is above 100")
        wrong += [
            f"{part} ({v[_INDEX[part]]:g}) exceeds {whole} ({v[_INDEX[whole]]:g})"
            for part, whole in _AT_MOST
            if v[_INDEX[part]] > v[_INDEX[whole]]
        ]
        return "; ".join(wrong)


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where the rollout stands, as the controller last recorded it."""

    step_index: int  # index into plan.steps
    step_percent: int  # the canary percentage the controller set for this step
    rollout_started_at: datetime
    step_started_at: datetime
    # Baseline p99 latency: frozen before the first canary step, placed again at every
    # ADVANCE by the controller; it places the tail comparison (None until measured).
    baseline_p99_ms: float | None = None
    last_data_at: datetime | None = None  # newest data the controller has seen
    paused: bool = False
    overridden: bool = False  # someone changed the flag outside the controller


# JSON codec for frozen dataclasses (and the pydantic plan inside them). Floats that are
# not finite travel as the strings "NaN" / "Infinity" so the JSON stays standard.
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible form of ``value`` that ``from_jsonable`` turns back into it."""
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: to_jsonable(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    return value


def from_jsonable(cls: type[_T], data: Any) -> _T:
    """Rebuild a dataclass (or pydantic model) written by ``to_jsonable``."""
    return _load(cls, data)  # type: ignore[no-any-return]


def _load(kind: Any, data: Any) -> Any:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(kind) if arg is not type(None)]
        return None if data is None else _load(options[0], data)
    if origin is tuple:
        return tuple(_load(get_args(kind)[0], item) for item in data)
    if origin is dict:
        return {key: _load(get_args(kind)[1], item) for key, item in data.items()}
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind.model_validate(data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = get_type_hints(kind)
        known = {item.name for item in fields(kind)}
        return kind(
            **{name: _load(hints[name], value) for name, value in data.items() if name in known}
        )
    if kind is datetime:
        return datetime.fromisoformat(data)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(data)
    if kind is float:
        return _NON_FINITE[data] if isinstance(data, str) else float(data)
    if kind is int:
        return int(data)
    return data
