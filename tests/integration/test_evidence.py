"""load_evidence against rollups written by the real Store: buckets, %, counts, shadow pairs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event

from shadowcanary.events import Arm, CallStatus
from shadowcanary.judge import Decision, DecisionKind, Verdict, decide
from shadowcanary.judge.decide import DecisionInputs
from shadowcanary.judge.evidence import ArmCounts, Moments
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord
from shadowcanary.shadow_results import ReplayKind, ReplayStatus
from shadowcanary.store.db import make_engine
from shadowcanary.store.evidence_reads import freeze_baseline_p99, load_evidence, newest_data_at
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.repository import Store
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.store.sketch import QuantileSketch
from shadowcanary.testing.factories import make_event, make_flags, make_replay

pytestmark = pytest.mark.integration

ROLLOUT = "support-gpt55"
T0 = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)  # the rollout starts mid-minute
MINUTE0 = T0.replace(second=0)
NOW = MINUTE0 + timedelta(minutes=5, seconds=20)  # minutes 0..5, the last one still open
P99 = 800.0  # frozen baseline p99: slow means above 800 + 200 ms (default margin)


def minute(m: int, second: float = 0.0) -> datetime:
    return MINUTE0 + timedelta(minutes=m, seconds=second)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


@pytest.fixture
def controller_store(engine: Engine) -> RolloutStore:
    return RolloutStore(engine)


def the_plan() -> RolloutPlan:
    return RolloutPlan(name=ROLLOUT, flag="support-model", baseline="gpt-5.2", candidate="gpt-5.5")


def capture(
    arm: Arm,
    at: datetime,
    latency_ms: float = 700.0,
    status: CallStatus = CallStatus.OK,
    rollout: str = ROLLOUT,
    **flags: bool,
) -> AssessedCapture:
    event = make_event(
        arm=arm, started_at=at, latency_ms=latency_ms, status=status, rollout=rollout
    )
    return AssessedCapture(event=event, flags=make_flags(**flags), cost_usd=0.002)


def set_percent(cs: RolloutStore, record: RolloutRecord, step: int, at: datetime) -> RolloutRecord:
    percent = record.plan.steps[step].percent
    moved = dataclasses.replace(
        record, step_index=step, percent=percent, step_started_at=at, updated_at=at
    )
    note = AuditEntry(
        id=None,
        at=at,
        rollout=record.name,
        actor="controller",
        action=AuditAction.ADVANCE,
        from_percent=record.percent,
        to_percent=percent,
        reason="test advance",
        decision=None,
        inputs=None,
    )
    return cs.save(moved, note)


@pytest.fixture
def rollout(controller_store: RolloutStore) -> RolloutRecord:
    """Started at 09:00:30; 10 % at 09:01:00; 30 % at 09:03:30 (mid-minute); p99 frozen."""
    record = controller_store.create_rollout(the_plan(), now=T0, actor="cli:alice")
    record = set_percent(controller_store, record, 0, minute(1))
    record = set_percent(controller_store, record, 1, minute(3, 30))
    return controller_store.save(dataclasses.replace(record, baseline_p99_ms=P99))


@pytest.fixture
def traffic(store: Store, rollout: RolloutRecord) -> dict[str, list[str]]:
    """Live traffic in minutes 0, 1, 3, 4, 5 (none in 2), some of it noise to be ignored."""
    captures = [
        # minute 0: baseline only; 1100 and 1500 ms are slow (> 1000 ms)
        *(
            capture(Arm.BASELINE, minute(0, 40 + i), latency)
            for i, latency in enumerate([500.0, 900.0, 1100.0, 1500.0])
        ),
        # minute 1: 9 baseline (one timeout), 1 candidate that is slow and truncated
        *(capture(Arm.BASELINE, minute(1, i)) for i in range(8)),
        capture(Arm.BASELINE, minute(1, 30), 3000.0, CallStatus.TIMEOUT),
        capture(Arm.CANDIDATE, minute(1, 50), 2500.0, truncated=True),
        # minute 3: 7 baseline, 3 candidate (one error, one invalid JSON)
        *(capture(Arm.BASELINE, minute(3, i)) for i in range(7)),
        capture(Arm.CANDIDATE, minute(3, 10), 650.0, CallStatus.ERROR),
        capture(Arm.CANDIDATE, minute(3, 20), 640.0, json_expected=True, json_invalid=True),
        capture(Arm.CANDIDATE, minute(3, 40), 4000.0),
        # minutes 4 and 5
        *(capture(Arm.BASELINE, minute(4, i)) for i in range(6)),
        *(capture(Arm.CANDIDATE, minute(4, 30 + i), 1200.0) for i in range(4)),
        capture(Arm.CANDIDATE, minute(5, 1)),
        # not this rollout, or before its first minute, or after now: never counted
        capture(Arm.CANDIDATE, minute(3, 5), 9000.0, rollout="other-rollout"),
        capture(Arm.BASELINE, minute(-1, 10), 9000.0),
        capture(Arm.BASELINE, minute(7), 9000.0),
    ]
    ids = store.insert_captures(captures, received_at=NOW)
    assert len(ids) == len(captures)
    by_minute: dict[str, list[str]] = {}
    for c in captures:
        by_minute.setdefault(c.event.started_at.strftime("%M"), []).append(c.event.event_id)
    return by_minute


def test_one_bucket_per_minute_with_the_flag_percent_in_force(
    controller_store: RolloutStore, rollout: RolloutRecord, traffic: dict[str, list[str]]
) -> None:
    """Six buckets 09:00..09:05; % is 0, 10, 10, 20 (half 10, half 30), 30, 30."""
    evidence = load_evidence(controller_store, rollout, now=NOW)
    assert [b.start for b in evidence.buckets] == [minute(m) for m in range(6)]
    assert [b.canary_percent for b in evidence.buckets] == [0.0, 10.0, 10.0, 20.0, 30.0, 30.0]
    assert controller_store.percent_timeline(ROLLOUT) == [
        (T0, 0),
        (minute(1), 10),
        (minute(3, 30), 30),
    ]
    assert evidence.problems() == []


def test_counts_per_arm_and_slow_requests_against_the_threshold(
    engine: Engine, rollout: RolloutRecord, traffic: dict[str, list[str]]
) -> None:
    """Requests, failures, flags and slow (> p99 + 200 ms) land in the right arm and minute."""
    evidence = load_evidence(engine, rollout, now=NOW)
    assert evidence.slow_threshold_ms == P99 + 200.0
    b = {bucket.start.minute: bucket for bucket in evidence.buckets}
    assert (b[0].baseline.requests, b[0].baseline.slow, b[0].candidate.requests) == (4, 2, 0)
    assert (b[1].baseline.requests, b[1].baseline.failures, b[1].baseline.slow) == (9, 1, 1)
    assert (b[1].candidate.requests, b[1].candidate.truncated, b[1].candidate.slow) == (1, 1, 1)
    c3 = b[3].candidate
    assert (c3.requests, c3.failures, c3.json_expected, c3.json_invalid, c3.slow) == (3, 1, 1, 1, 1)
    assert (b[4].baseline.requests, b[4].candidate.requests, b[4].candidate.slow) == (6, 4, 4)
    assert b[3].baseline.requests == 7  # the other rollout's 9 s call is not here
    assert b[5].candidate.requests == 1
    assert c3.latency_ms == Moments(3, 650.0 + 640.0 + 4000.0, 650.0**2 + 640.0**2 + 4000.0**2)
    assert b[1].candidate.ttft_ms.n == 1 and b[1].candidate.cost_usd.total == pytest.approx(0.002)


def test_an_empty_minute_is_an_empty_bucket(
    engine: Engine, rollout: RolloutRecord, traffic: dict[str, list[str]]
) -> None:
    """Minute 2 had no traffic: its bucket is there, with zero counts and the flag's %."""
    gap = load_evidence(engine, rollout, now=NOW).buckets[2]
    assert gap.start == minute(2)
    assert gap.baseline == ArmCounts() and gap.candidate == ArmCounts()
    assert gap.shadow.similarity_diff.n == 0
    assert gap.canary_percent == 10.0


def test_no_threshold_until_the_baseline_p99_is_frozen(
    engine: Engine,
    controller_store: RolloutStore,
    rollout: RolloutRecord,
    traffic: dict[str, list[str]],
) -> None:
    """Without a frozen p99 nothing is counted slow and the evidence says no threshold."""
    unfrozen = controller_store.save(dataclasses.replace(rollout, baseline_p99_ms=None))
    evidence = load_evidence(engine, unfrozen, now=NOW)
    assert evidence.slow_threshold_ms is None
    assert sum(b.baseline.slow + b.candidate.slow for b in evidence.buckets) == 0
    assert sum(b.baseline.requests for b in evidence.buckets) == 26


def test_slow_counts_agree_with_the_sketch(
    engine: Engine, store: Store, rollout: RolloutRecord
) -> None:
    """The SQL slow count equals QuantileSketch.count_above on the same latencies."""
    latencies = [50.0 * 1.037**i for i in range(120)]  # 50 ms .. 3.8 s, many near 1000 ms
    store.insert_captures(
        [capture(Arm.CANDIDATE, minute(4, i * 0.4), v) for i, v in enumerate(latencies)],
        received_at=NOW,
    )
    slow = load_evidence(engine, rollout, now=NOW).buckets[4].candidate.slow
    assert slow == QuantileSketch.of(latencies).count_above(P99 + 200.0)
    assert abs(slow - sum(v > P99 + 200.0 for v in latencies)) <= 1  # 1 % accuracy


def test_shadow_pairs_and_json_validity_per_minute(
    engine: Engine,
    store: Store,
    rollout: RolloutRecord,
    traffic: dict[str, list[str]],
) -> None:
    """D = candidate - noise similarity per paired prompt; JSON invalid per replay kind."""
    m1, m3 = traffic["01"], traffic["03"]
    replays = [
        make_replay(m1[0], ReplayKind.CANDIDATE, lexical_similarity=0.8),
        make_replay(m1[0], ReplayKind.NOISE, lexical_similarity=0.9),
        make_replay(m1[1], ReplayKind.CANDIDATE, lexical_similarity=0.7),
        make_replay(m1[1], ReplayKind.NOISE, lexical_similarity=0.95),
        # unpaired candidate replays: compared, but no D
        make_replay(m1[2], ReplayKind.CANDIDATE, other_flags=make_flags(json_invalid=True)),
        make_replay(m1[3], ReplayKind.CANDIDATE, status=ReplayStatus.FAILED),
        make_replay(m3[0], ReplayKind.CANDIDATE, lexical_similarity=0.6),
        make_replay(m3[0], ReplayKind.NOISE, lexical_similarity=0.6),
        make_replay(m3[1], ReplayKind.NOISE, other_flags=make_flags(json_invalid=True)),
    ]
    store.record_replays(replays, recorded_at=NOW)
    b = load_evidence(engine, rollout, now=NOW).buckets
    s1 = b[1].shadow
    assert s1.similarity_diff.n == 2
    assert s1.similarity_diff.total == pytest.approx(-0.1 - 0.25)
    assert s1.similarity_diff.sq_total == pytest.approx(0.1**2 + 0.25**2)
    assert (s1.candidate_replays, s1.candidate_json_invalid) == (3, 1)  # the failed one: no answer
    assert (s1.baseline_replays, s1.baseline_json_invalid) == (2, 0)
    s3 = b[3].shadow
    assert s3.similarity_diff == Moments(1, 0.0, 0.0)
    assert (s3.candidate_replays, s3.baseline_replays, s3.baseline_json_invalid) == (1, 2, 1)
    assert b[4].shadow.similarity_diff.n == 0


def test_decide_accepts_the_evidence_and_replays_from_the_audit_row(
    controller_store: RolloutStore, rollout: RolloutRecord, traffic: dict[str, list[str]]
) -> None:
    """decide() acts on the loaded evidence; recomputing from its audit row gives the same."""
    evidence = load_evidence(controller_store, rollout, now=NOW)
    assert newest_data_at(evidence) == minute(5)
    state = rollout.judge_state(newest_data_at(evidence))
    decision = decide(rollout.plan, state, evidence, NOW)
    # The 30 % step's closed minutes (3, where the flag changed, and 4; not the open 5):
    # 5 of 7 canary requests above 1000 ms against 0 of 13 baseline ones. Far too few
    # slow requests for the two-arm tail test to roll back (E = 15 of 3,000): it holds.
    assert decision.kind is DecisionKind.HOLD
    tail = next(t for t in decision.triggers if t.name == "p99_latency")
    assert (tail.n_candidate, tail.n_baseline) == (3 + 4, 7 + 6)
    assert tail.verdict is Verdict.INSUFFICIENT
    assert "canary 5/7 (71.43 %) vs baseline 0/13 (0.00 %) slower than 1000 ms" in tail.detail
    inputs = DecisionInputs(rollout.plan, state, evidence, NOW)
    controller_store.append_audit(
        AuditEntry(
            id=None,
            at=NOW,
            rollout=ROLLOUT,
            actor="controller",
            action=AuditAction.HOLD,
            from_percent=rollout.percent,
            to_percent=None,
            reason=decision.reason,
            decision=decision.to_dict(),
            inputs=json.loads(inputs.to_json()),
        )
    )
    row = controller_store.history(ROLLOUT, limit=1)[0]
    assert row.inputs is not None and row.decision is not None
    replayed = DecisionInputs.from_json(json.dumps(row.inputs)).decide()
    assert replayed == Decision.from_dict(row.decision) == decision


class Statements:
    """The SELECTs an engine runs while the block is open."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.seen.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def test_a_tick_reads_rollup_ranges_and_never_raw_captures(
    engine: Engine,
    controller_store: RolloutStore,
    rollout: RolloutRecord,
    traffic: dict[str, list[str]],
) -> None:
    """A tick reads audit and rollup ranges only; an unchanged hour is not read again."""
    with Statements(engine) as first:
        load_evidence(controller_store, rollout, now=NOW)
    assert not any("captures" in s or "comparisons" in s for s in first)
    assert sum("rollout_audit" in s for s in first) == 1
    assert sum("live_rollups" in s for s in first) == 2  # hourly signatures, then the rows
    assert sum("shadow_rollups" in s for s in first) == 2
    assert sum("jsonb_each_text" in s for s in first) == 1
    with Statements(engine) as second:
        load_evidence(controller_store, rollout, now=NOW)
    # Timeline, the two signature queries and the judge rollups (one small range read,
    # rows only where the judge ran): nothing changed, nothing else is read.
    assert len(second) == 4
    assert sum("judge_rollups" in s for s in second) == 1
    assert not any("jsonb_each_text" in s for s in second)


def test_only_changed_hours_are_read_again(
    engine: Engine,
    store: Store,
    controller_store: RolloutStore,
    rollout: RolloutRecord,
    traffic: dict[str, list[str]],
) -> None:
    """Late data in an old minute is seen; hours without changes are reused, not re-read."""
    later = minute(150)  # hours 0 (minutes 0-59), 1 (60-119) and 2 (120-150, open)
    store.insert_captures(
        [capture(Arm.CANDIDATE, minute(70), 1500.0), capture(Arm.BASELINE, minute(130))],
        received_at=later,
    )
    before = load_evidence(controller_store, rollout, now=later)
    store.insert_captures([capture(Arm.CANDIDATE, minute(1, 55), 5000.0)], received_at=later)
    with Statements(engine) as seen:
        after = load_evidence(controller_store, rollout, now=later)
    assert after == load_evidence(engine, rollout, now=later)  # same as an uncached read
    assert (after.buckets[1].candidate.requests, after.buckets[1].candidate.slow) == (2, 2)
    assert after.buckets[70] is before.buckets[70] and after.buckets[130] is before.buckets[130]
    assert after.buckets[1] is not before.buckets[1]
    (rows,) = [s for s in seen if "jsonb_each_text" in s]
    assert rows.count("live_rollups.minute >=") == 2  # the whole range, and hour 0 alone
    next_minute = load_evidence(controller_store, rollout, now=later + timedelta(minutes=1))
    assert len(next_minute.buckets) == len(after.buckets) + 1
    assert next_minute.buckets[70] is after.buckets[70]


def test_a_new_threshold_recounts_every_minute(
    controller_store: RolloutStore, rollout: RolloutRecord, traffic: dict[str, list[str]]
) -> None:
    """Re-freezing the baseline p99 changes the threshold: slow counts follow at once."""
    load_evidence(controller_store, rollout, now=NOW)
    refrozen = controller_store.save(dataclasses.replace(rollout, baseline_p99_ms=4000.0))
    recounted = load_evidence(controller_store, refrozen, now=NOW)
    assert recounted.slow_threshold_ms == 4200.0
    assert [b.candidate.slow for b in recounted.buckets] == [0, 0, 0, 0, 0, 0]
    assert [b.baseline.slow for b in recounted.buckets] == [0, 0, 0, 0, 0, 0]
    again = controller_store.save(dataclasses.replace(refrozen, baseline_p99_ms=P99))
    assert [b.candidate.slow for b in load_evidence(controller_store, again, now=NOW).buckets] == [
        0,
        1,
        0,
        1,
        4,
        0,
    ]


def test_before_the_first_minute_there_is_no_evidence(
    engine: Engine, rollout: RolloutRecord
) -> None:
    """A clock before the rollout's first minute gives no buckets (never a negative range)."""
    assert load_evidence(engine, rollout, now=MINUTE0).buckets == ()
    assert newest_data_at(load_evidence(engine, rollout, now=MINUTE0)) is None


def test_freeze_baseline_p99_from_pre_canary_traffic(engine: Engine, store: Store) -> None:
    """The frozen p99 is the baseline sketch's p99 over the window; None below min_requests."""
    latencies = [200.0 + 3.0 * i for i in range(600)]
    store.insert_captures(
        [capture(Arm.BASELINE, minute(-10, i * 0.5), v) for i, v in enumerate(latencies)]
        + [capture(Arm.CANDIDATE, minute(-9), 9000.0), capture(Arm.BASELINE, minute(1), 9000.0)],
        received_at=NOW,
    )
    p99 = freeze_baseline_p99(engine, ROLLOUT, since=minute(-10), until=minute(0))
    assert p99 == QuantileSketch.of(latencies).quantile(0.99)
    assert p99 is not None and abs(p99 - 1994.0) / 1994.0 < 0.02
    assert freeze_baseline_p99(engine, ROLLOUT, since=minute(-10), until=minute(-9)) is None
    tiny = freeze_baseline_p99(
        engine, ROLLOUT, since=minute(-10), until=minute(-9), min_requests=50
    )
    assert tiny == QuantileSketch.of(latencies[:120]).quantile(0.99)
