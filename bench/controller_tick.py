"""A controller tick's read path with millions of captured requests in the store.

A tick is what ``shadowcanary controller run`` does before touching the flag:
``RolloutStore.get`` + ``load_evidence`` (audit timeline, live and shadow rollups)
+ ``judge.decide``. It should cost O(minutes of the rollout), not O(requests).

Side by side in one run, on one PostgreSQL started here, two databases holding the
same 3-day rollout (one bucket per minute: 4,320 per arm), one with ``--rows`` raw
captures and one with 10x fewer. Raw rows are inserted with ``generate_series`` (a
small ``event`` document each: the tick never reads them, they only make the table
as big as production's row count); the rollups are then aggregated from those very
rows in SQL, latency sketches included (the same DDSketch keys the workers write).

Before every timed tick a few requests and replays arrive through the real write
path (``Store.insert_captures`` / ``record_replays``), so each tick re-reads the
newest hour as in production; ``first_tick_ms`` is a controller's first tick after
it starts or takes over, when every minute's slow count is computed once.

A third database holds a ``--long-days`` (14) rollout with the small database's row
count, ticked in the same loop: its ``*_14d`` figures against the small (3-day) one say
whether a tick's cost grows with the rollout's length.

Last stdout line is one JSON object: tick_ms_p50, tick_ms_p99, rows (the big
database), the same for the small one, their ratio, the 14-day figures
(``decide_ms_p50_14d``, ``tick_ms_p99_14d``, ``ratio_p50_14d_over_3d``) and context.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

from shadowcanary.events import Arm
from shadowcanary.judge import decide
from shadowcanary.logging import configure_logging
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.store.evidence_reads import freeze_baseline_p99, load_evidence, newest_data_at
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import LIVE_COUNTERS, SHADOW_COUNTERS, ShadowRollupRow
from shadowcanary.store.repository import Store
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.store.sketch import MAPPING, RELATIVE_ACCURACY, QuantileSketch
from shadowcanary.testing.factories import make_event, make_flags, make_replay
from shadowcanary.testing.servers import PostgresServer

ROLLOUT = "bench-tick"
PRE_CANARY = timedelta(minutes=30)  # baseline only, to freeze the p99 from
CHUNK = 1_000_000  # raw rows per INSERT statement

# Raw captures, rows [:lo, :hi) of the whole run; the canary share follows the
# rollout's steps: 0 % before it starts, then 10 / 30 / 50 % by thirds of the span.
_CAPTURES = """
INSERT INTO captures (event_id, received_at, started_at, rollout, route, tenant, arm, model,
    status, error_class, http_status, latency_ms, ttft_ms, prompt_tokens, completion_tokens,
    cost_usd, stickiness_key, empty, truncated, refusal, json_expected, json_invalid,
    tool_schema_invalid, tool_unknown, event)
SELECT 'ev' || lpad(to_hex(i), 14, '0'), at + interval '2 seconds', at, :rollout,
    'support.chat', 'acme', arm, CASE arm WHEN 'candidate' THEN 'gpt-5.5' ELSE 'gpt-5.2' END,
    CASE WHEN failed THEN 'error' ELSE 'ok' END, CASE WHEN failed THEN 'UpstreamUnavailable' END,
    CASE WHEN failed THEN 503 ELSE 200 END, latency, CASE WHEN NOT failed THEN latency * 0.2 END,
    62, CASE WHEN NOT failed THEN 48 END, CASE WHEN NOT failed THEN 0.0012 END,
    md5(i::text), false, random() < 0.005, random() < 0.002, i % 5 = 0,
    i % 5 = 0 AND random() < 0.02, false, false, '{"bench": true}'::jsonb
FROM (
    SELECT i, at,
        CASE WHEN random() * 100 < (CASE WHEN at < :canary_at THEN 0
                                         WHEN at < :step2_at THEN 10
                                         WHEN at < :step3_at THEN 30 ELSE 50 END)
             THEN 'candidate' ELSE 'baseline' END AS arm,
        random() < 0.01 AS failed,
        -- log-normal latency, median 600 ms (Box-Muller)
        exp(ln(600) + 0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS latency
    FROM (SELECT i, :start + (i + 0.5) * :step AS at FROM generate_series(:lo, :hi - 1) AS i) t
) s
"""

# Per (arm, minute): the counters the workers add up, and the latency sketch's bins
# keyed exactly as shadowcanary.store.sketch keys them (ceil(log2(v) * multiplier)).
_ROLLUPS = """
INSERT INTO live_rollups (rollout, arm, minute, {counters}, latency_sketch, ttft_sketch)
WITH keyed AS (
    SELECT arm, date_trunc('minute', started_at) AS minute,
        ceil(ln(latency_ms) / ln(2) * :multiplier)::int AS k, count(*) AS c
    FROM captures WHERE rollout = :rollout GROUP BY 1, 2, 3
), sketches AS (
    SELECT arm, minute, jsonb_build_object('v', 1, 'alpha', :alpha, 'zero', 0,
        'bins', jsonb_object_agg(k::text, c)) AS doc
    FROM keyed GROUP BY 1, 2
), counters AS (
    SELECT arm, date_trunc('minute', started_at) AS minute,
        count(*) AS requests,
        count(*) FILTER (WHERE status <> 'ok') AS failures,
        count(*) FILTER (WHERE status = 'error') AS errors,
        0 AS timeouts, 0 AS rate_limited, 0 AS cancelled,
        count(truncated) AS assessed,
        count(*) FILTER (WHERE truncated) AS truncated,
        count(*) FILTER (WHERE refusal) AS refusals,
        count(*) FILTER (WHERE empty) AS empty,
        count(*) FILTER (WHERE json_expected) AS json_expected,
        count(*) FILTER (WHERE json_invalid) AS json_invalid,
        count(*) FILTER (WHERE tool_schema_invalid) AS tool_schema_invalid,
        count(*) FILTER (WHERE tool_unknown) AS tool_unknown,
        sum(latency_ms) AS latency_sum, sum(latency_ms ^ 2) AS latency_sq_sum,
        count(ttft_ms) AS ttft_n, coalesce(sum(ttft_ms), 0) AS ttft_sum,
        coalesce(sum(ttft_ms ^ 2), 0) AS ttft_sq_sum,
        count(completion_tokens) AS tokens_n,
        coalesce(sum(prompt_tokens) FILTER (WHERE completion_tokens IS NOT NULL), 0)
            AS prompt_tokens_sum,
        coalesce(sum(completion_tokens), 0) AS completion_tokens_sum,
        coalesce(sum(completion_tokens::float8 ^ 2), 0) AS completion_tokens_sq_sum,
        count(cost_usd) AS cost_n, coalesce(sum(cost_usd), 0) AS cost_usd_sum,
        coalesce(sum(cost_usd ^ 2), 0) AS cost_usd_sq_sum
    FROM captures WHERE rollout = :rollout GROUP BY 1, 2
)
SELECT :rollout, arm, minute, {counters}, doc, {empty_sketch}::jsonb
FROM counters JOIN sketches USING (arm, minute)
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed(what: str, work: Callable[[], Any]) -> float:
    began = time.perf_counter()
    work()
    seconds = time.perf_counter() - began
    _log(f"  {what}: {seconds:.1f} s")
    return seconds


def _create_database(server: PostgresServer, name: str) -> str:
    admin = make_engine(server.url, pool_size=1)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.url.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    return url


@dataclasses.dataclass(frozen=True)
class Span:
    start: datetime  # the first captured request; the rollout starts here at 0 %
    length: timedelta

    @property
    def canary_at(self) -> datetime:
        return self.start + PRE_CANARY

    def step_at(self, step: int) -> datetime:
        """When step 0 (10 %), 1 (30 %) and 2 (50 %) began."""
        rest = self.length - PRE_CANARY
        return self.canary_at + rest * step / 3

    @property
    def end(self) -> datetime:
        return self.start + self.length


def _seed_captures(engine: Engine, rows: int, span: Span) -> None:
    params = {
        "rollout": ROLLOUT,
        "start": span.start,
        "step": span.length / rows,
        "canary_at": span.canary_at,
        "step2_at": span.step_at(1),
        "step3_at": span.step_at(2),
    }
    for lo in range(0, rows, CHUNK):
        hi = min(rows, lo + CHUNK)
        with engine.begin() as conn:
            conn.execute(text(_CAPTURES), {**params, "lo": lo, "hi": hi})
        _log(f"    {hi:,} / {rows:,} raw rows")


def _seed_rollups(engine: Engine) -> None:
    counters = ", ".join(LIVE_COUNTERS)
    empty = json.dumps(QuantileSketch().to_json())
    statement = _ROLLUPS.format(
        counters=counters, alpha=RELATIVE_ACCURACY, empty_sketch=f"'{empty}'"
    )
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(
            text(statement),
            {"rollout": ROLLOUT, "multiplier": MAPPING._multiplier, "alpha": RELATIVE_ACCURACY},
        )
        minutes = conn.execute(
            text(
                "SELECT minute, sum(requests) FROM live_rollups WHERE rollout = :r "
                "GROUP BY minute ORDER BY minute"
            ),
            {"r": ROLLOUT},
        ).all()
        # Shadow replays of ~5 % of each minute, half of them paired with a noise replay;
        # 1 % of the answers of either model are invalid JSON (an A/A shadow).
        shadow = []
        replayed = {"candidate": 0, "noise": 0}
        for minute, requests in minutes:
            compared = max(1, int(requests) // 20)
            paired = compared // 2
            invalid = {}
            for kind, count in (("candidate", compared), ("noise", paired)):
                invalid[kind] = (replayed[kind] + count) // 100 - replayed[kind] // 100
                replayed[kind] += count
            candidate: dict[str, float] = dict.fromkeys(SHADOW_COUNTERS, 0)
            candidate.update(
                replays=compared,
                n=compared,
                lexical_sum=0.85 * compared,
                lexical_sq_sum=0.73 * compared,
                other_json_invalid=invalid["candidate"],
                paired_n=paired,
                paired_diff_sum=-0.01 * paired,
                paired_diff_sq_sum=0.0025 * paired,
            )
            noise: dict[str, float] = dict.fromkeys(SHADOW_COUNTERS, 0)
            noise.update(replays=paired, n=paired, lexical_sum=0.86 * paired)
            noise.update(lexical_sq_sum=0.74 * paired, other_json_invalid=invalid["noise"])
            shadow.append({"rollout": ROLLOUT, "kind": "candidate", "minute": minute, **candidate})
            shadow.append({"rollout": ROLLOUT, "kind": "noise", "minute": minute, **noise})
        conn.execute(insert(ShadowRollupRow), shadow)


def _seed_rollout(engine: Engine, span: Span) -> RolloutRecord:
    store = RolloutStore(engine)
    plan = RolloutPlan(name=ROLLOUT, flag="bench-model", baseline="gpt-5.2", candidate="gpt-5.5")
    record = store.create_rollout(plan, now=span.start, actor="cli:bench")
    p99 = freeze_baseline_p99(engine, ROLLOUT, since=span.start, until=span.canary_at)
    for step in range(3):
        at = span.step_at(step)
        moved = dataclasses.replace(
            record,
            step_index=step,
            percent=plan.steps[step].percent,
            step_started_at=at,
            updated_at=at,
            baseline_p99_ms=p99,
        )
        note = AuditEntry(
            id=None,
            at=at,
            rollout=ROLLOUT,
            actor="controller",
            action=AuditAction.ADVANCE,
            from_percent=record.percent,
            to_percent=moved.percent,
            reason="bench",
            decision=None,
            inputs=None,
        )
        record = store.save(moved, note)
    # A HOLD entry for every minute in between, as a ticking controller leaves them.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rollout_audit (at, rollout, actor, action, reason) "
                "SELECT at, :r, 'controller', 'hold', 'waiting for exposure' "
                "FROM generate_series(:a, :b, interval '1 minute') AS at"
            ),
            {"r": ROLLOUT, "a": span.canary_at + timedelta(seconds=30), "b": span.end},
        )
        conn.execute(text("ANALYZE"))
    return record


def _seed(server: PostgresServer, name: str, rows: int, span: Span) -> tuple[str, float]:
    _log(f"seeding {name}: {rows:,} captured requests over {span.length}")
    url = _create_database(server, name)
    engine = make_engine(url, pool_size=1)
    try:
        seconds = _timed("raw captures", lambda: _seed_captures(engine, rows, span))
        seconds += _timed("rollups from them", lambda: _seed_rollups(engine))
        seconds += _timed("rollout and audit log", lambda: _seed_rollout(engine, span))
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM captures")).scalar_one()
            size = conn.execute(
                text("SELECT pg_size_pretty(pg_total_relation_size('captures'))")
            ).scalar_one()
        _log(f"  {stored:,} rows in captures ({size})")
    finally:
        engine.dispose()
    return url, seconds


@dataclasses.dataclass
class Ticker:
    """Runs ticks on one database and keeps their timings in milliseconds."""

    url: str
    now: datetime
    total: list[float] = dataclasses.field(default_factory=list)
    load: list[float] = dataclasses.field(default_factory=list)
    judge: list[float] = dataclasses.field(default_factory=list)
    buckets: int = 0
    decision: str = ""
    cold_ms: float = 0.0  # the first tick of a fresh controller: every minute counted

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url, pool_size=2)
        self.store = RolloutStore(self.engine)
        self.writer = Store(self.engine)

    def arrive(self) -> None:
        """New traffic in the open minute, through the real write path (not timed).

        Between two ticks the newest hour's rollups change, so every tick re-reads
        that hour in full, as it does in production.
        """
        at = self.now - timedelta(seconds=10)
        events = [
            make_event(rollout=ROLLOUT, arm=arm, started_at=at, latency_ms=600.0)
            for arm in (Arm.BASELINE, Arm.CANDIDATE)
            for _ in range(5)
        ]
        self.writer.insert_captures(
            [AssessedCapture(event, make_flags(), 0.0012) for event in events], received_at=self.now
        )
        replays = [make_replay(events[0].event_id, kind) for kind in ReplayKind]
        self.writer.record_replays(replays, recorded_at=self.now)

    def tick(self, keep: bool) -> None:
        began = time.perf_counter()
        record = self.store.get(ROLLOUT)
        evidence = load_evidence(self.store, record, now=self.now)
        loaded = time.perf_counter()
        decision = decide(
            record.plan, record.judge_state(newest_data_at(evidence)), evidence, self.now
        )
        ended = time.perf_counter()
        if keep:
            self.total.append((ended - began) * 1000)
            self.load.append((loaded - began) * 1000)
            self.judge.append((ended - loaded) * 1000)
        self.buckets = len(evidence.buckets)
        self.decision = f"{decision.kind.value}: {decision.reason[:120]}"


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000, help="raw captures, big database")
    parser.add_argument("--days", type=float, default=3.0, help="span of the rollout's traffic")
    parser.add_argument("--ticks", type=int, default=100, help="timed ticks per database")
    parser.add_argument(
        "--long-days", type=float, default=14.0, help="span of the long rollout (small's rows)"
    )
    args = parser.parse_args()
    configure_logging("warning", json=False)
    directory = Path(tempfile.mkdtemp(prefix="sc-bench-tick-"))
    server = PostgresServer(directory)
    began = time.perf_counter()
    try:
        server.start()
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        span = Span(start=end - timedelta(days=args.days), length=timedelta(days=args.days))
        small_rows = args.rows // 10
        big_url, big_seed = _seed(server, "tick_big", args.rows, span)
        small_url, small_seed = _seed(server, "tick_small", small_rows, span)
        long_span = Span(
            start=end - timedelta(days=args.long_days), length=timedelta(days=args.long_days)
        )
        long_url, long_seed = _seed(server, "tick_long", small_rows, long_span)
        now = span.end + timedelta(seconds=20)
        big, small, long = Ticker(big_url, now), Ticker(small_url, now), Ticker(long_url, now)
        for ticker in (big, small, long):
            began_cold = time.perf_counter()
            ticker.tick(keep=False)
            ticker.cold_ms = (time.perf_counter() - began_cold) * 1000
        for _ in range(3):  # warm pools; not timed
            for ticker in (big, small, long):
                ticker.tick(keep=False)
        for _ in range(args.ticks):  # interleaved, so drift hits all alike
            for ticker in (big, small, long):
                ticker.arrive()
                ticker.tick(keep=True)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    p50, p50_small = statistics.median(big.total), statistics.median(small.total)
    print(
        f"rollout span {args.days:g} days: {big.buckets} buckets per arm; decision {big.decision}"
    )
    p50_long = statistics.median(long.total)
    for label, ticker, rows in (
        ("big", big, args.rows),
        ("small", small, small_rows),
        (f"{args.long_days:g}d", long, small_rows),
    ):
        print(
            f"{label:5} {rows:>12,} rows: tick p50 {statistics.median(ticker.total):6.1f} ms, "
            f"p90 {_p(ticker.total, 0.9):6.1f} ms, p99 {_p(ticker.total, 0.99):6.1f} ms "
            "(load_evidence p50 "
            f"{statistics.median(ticker.load):.1f} ms, decide p50 "
            f"{statistics.median(ticker.judge):.1f} ms); first tick {ticker.cold_ms:.0f} ms"
        )
    print(f"big / small tick time at 10x the rows: {p50 / p50_small:.2f}")
    print(
        f"{args.long_days:g}-day / {args.days:g}-day tick time at the same rows: "
        f"{p50_long / p50_small:.2f} ({long.buckets} buckets per arm)"
    )
    print(
        json.dumps(
            {
                "tick_ms_p50": round(p50, 2),
                "tick_ms_p99": round(_p(big.total, 0.99), 2),
                "tick_ms_p90": round(_p(big.total, 0.90), 2),
                "rows": args.rows,
                "rows_small": small_rows,
                "tick_ms_p50_small": round(p50_small, 2),
                "tick_ms_p99_small": round(_p(small.total, 0.99), 2),
                "ratio_p50_big_over_small": round(p50 / p50_small, 3),
                "load_evidence_ms_p50": round(statistics.median(big.load), 2),
                "decide_ms_p50": round(statistics.median(big.judge), 2),
                "first_tick_ms": round(big.cold_ms, 1),
                "first_tick_ms_small": round(small.cold_ms, 1),
                "buckets": big.buckets,
                "days": args.days,
                "ticks": args.ticks,
                "decide_ms_p50_14d": round(statistics.median(long.judge), 2),
                "tick_ms_p50_14d": round(p50_long, 2),
                "tick_ms_p99_14d": round(_p(long.total, 0.99), 2),
                "load_evidence_ms_p50_14d": round(statistics.median(long.load), 2),
                "decide_ms_p50_3d_small": round(statistics.median(small.judge), 2),
                "ratio_p50_14d_over_3d": round(p50_long / p50_small, 3),
                "first_tick_ms_14d": round(long.cold_ms, 1),
                "long_days": args.long_days,
                "seed_s": round(big_seed + small_seed + long_seed, 1),
                "total_s": round(time.perf_counter() - began, 1),
                "target_ms": 100,
                # Other work on this machine slows every figure alike; here for context.
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
