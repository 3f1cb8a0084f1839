"""A tenant's report counts that tenant's calls only: every figure, in every format.

Two tenants share one rollout with clearly different traffic: alpha fails 10 % of its
calls, is slow and its candidate answers diverge; bravo never fails, is fast and its
candidate answers match. Each tenant's report must give the numbers its own calls give
(computed here from the generated inputs) and hold nothing of the other tenant.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
from sqlalchemy import Double, Engine, column, select, values
from typer.testing import CliRunner

from shadowcanary.cli.report import report_command
from shadowcanary.events import Arm, CallStatus
from shadowcanary.judge.decide import Decision, DecisionKind
from shadowcanary.judge.triggers import TriggerResult, Verdict
from shadowcanary.plan import RolloutPlan, TriggerMode
from shadowcanary.report import load_report, render_html, render_json, render_markdown
from shadowcanary.report.model import REASON_WITHHELD, ReportData
from shadowcanary.rollout_records import AuditAction, AuditEntry
from shadowcanary.settings import load_settings
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.repository import Store
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.store.rollups import minute_of
from shadowcanary.store.sketch import QuantileSketch
from shadowcanary.store.sketch_sql import sketch_key
from shadowcanary.testing.factories import make_event, make_flags, make_replay
from tests.integration.test_report import seed_rollout

pytestmark = pytest.mark.integration

ROLLOUT = "two-tenant-rollout"
REASON_MARKER = "WHOLE-ROLLOUT-4711 canary requests"
PRICE = {Arm.BASELINE: (1.75, 14.0), Arm.CANDIDATE: (5.0, 30.0)}  # the default settings'
BINS = 20


@dataclass(frozen=True, slots=True)
class Call:
    event_id: str
    arm: Arm
    started_at: datetime
    latency_ms: float
    failed: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None


@dataclass(slots=True)
class Tenant:
    """One tenant's traffic as generated: the expected figures come from these inputs."""

    name: str
    marker: str
    calls: list[Call] = field(default_factory=list)
    similarity: dict[str, list[float]] = field(
        default_factory=lambda: {"candidate": [], "noise": []}
    )
    compared_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Profile:
    per_minute: int
    fail_every: int | None  # every n-th call fails
    latency: tuple[float, float]
    tokens: tuple[int, int]  # prompt, completion
    candidate_similarity: tuple[float, float]
    noise_similarity: tuple[float, float]


PROFILES = {
    "alpha": Profile(2, 10, (1500.0, 3000.0), (120, 90), (0.05, 0.45), (0.6, 0.8)),
    "bravo": Profile(3, None, (80.0, 250.0), (30, 20), (0.85, 1.0), (0.9, 1.0)),
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def _trigger() -> TriggerResult:
    return TriggerResult(
        name="error_rate",
        kind="rate",
        mode=TriggerMode.ACT,
        verdict=Verdict.INCONCLUSIVE,
        n_baseline=4711,
        n_candidate=471,
        baseline_value=0.047,
        candidate_value=0.071,
        estimate=0.024,
        statistic=4.7,
        threshold=250.0,
        alpha=0.004,
        margin=0.01,
        lower=0.001,
        upper=0.05,
        detail="test",
    )


def seed_two_tenants(engine: Engine, now: datetime, minutes: int = 30) -> dict[str, Tenant]:
    """Both tenants' calls interleaved in every minute, an advance with a telling reason."""
    rng = random.Random(11)
    t0 = minute_of(now - timedelta(minutes=minutes + 10))
    controller, store = RolloutStore(engine), Store(engine)
    plan = RolloutPlan(name=ROLLOUT, flag="shared", baseline="gpt-5.2", candidate="gpt-5.5")
    record = controller.create_rollout(plan, now=t0, actor="cli:sre")
    at = t0 + timedelta(minutes=2)
    decision = Decision(
        kind=DecisionKind.ADVANCE,
        reason=f"minimum exposure met ({REASON_MARKER})",
        from_percent=0,
        to_percent=10,
        decided_at=at,
        triggers=(_trigger(),),
    )
    controller.save(
        record,
        AuditEntry(
            None, at, ROLLOUT, "controller", AuditAction.ADVANCE, 0, 10, decision.reason,
            decision.to_dict(),
        ),
    )  # fmt: skip

    tenants = {name: Tenant(name, f"{name.upper()}-ONLY-TEXT") for name in PROFILES}
    captures, replays = [], []
    for minute in range(minutes):
        start = t0 + timedelta(minutes=5 + minute)
        for name, profile in PROFILES.items():
            tenant = tenants[name]
            for i in range(profile.per_minute):
                n = len(tenant.calls)
                arm = Arm.CANDIDATE if n % 4 == 3 else Arm.BASELINE
                failed = profile.fail_every is not None and n % profile.fail_every == 5
                prompt, completion = profile.tokens
                completion += 10 if arm is Arm.CANDIDATE else 0
                price_in, price_out = PRICE[arm]
                call = Call(
                    event_id="",
                    arm=arm,
                    started_at=start + timedelta(seconds=7 * i + 3),
                    latency_ms=round(rng.uniform(*profile.latency), 3),
                    failed=failed,
                    prompt_tokens=None if failed else prompt,
                    completion_tokens=None if failed else completion,
                    cost_usd=None if failed else (prompt * price_in + completion * price_out) / 1e6,
                )
                event = make_event(
                    tenant=name,
                    rollout=ROLLOUT,
                    arm=arm,
                    started_at=call.started_at,
                    latency_ms=call.latency_ms,
                    status=CallStatus.ERROR if failed else CallStatus.OK,
                    request={
                        "messages": [{"role": "user", "content": f"{tenant.marker} question {n}"}]
                    },
                    **(
                        {}
                        if failed
                        else {
                            "response": {"text": f"{tenant.marker} {n}", "finish_reason": "stop"},
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                        }
                    ),
                )
                call = replace(call, event_id=event.event_id)
                tenant.calls.append(call)
                captures.append(AssessedCapture(event, make_flags(), call.cost_usd))
                if failed:
                    continue
                similarity = round(rng.uniform(*profile.candidate_similarity), 4)
                tenant.similarity["candidate"].append(similarity)
                tenant.compared_ids.append(event.event_id)
                replays.append(make_replay(event.event_id, lexical_similarity=similarity))
                if n % 3 == 0:
                    noise = round(rng.uniform(*profile.noise_similarity), 4)
                    tenant.similarity["noise"].append(noise)
                    replays.append(
                        make_replay(event.event_id, ReplayKind.NOISE, lexical_similarity=noise)
                    )
    store.insert_captures(captures, received_at=now)
    store.record_replays(replays, recorded_at=now)
    return tenants


def _outputs(data: ReportData) -> dict[str, str]:
    return {"html": render_html(data), "md": render_markdown(data), "json": render_json(data)}


def _exact_quantile_bounds(values: list[float], q: float) -> tuple[float, float]:
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    return ordered[math.floor(rank)], ordered[math.ceil(rank)]


def _assert_report_is_tenants(report: dict[str, Any], tenant: Tenant, data: ReportData) -> None:
    """Every figure of ``report`` equals what ``tenant``'s generated calls give."""
    calls = tenant.calls
    for arm in Arm:
        mine = [c for c in calls if c.arm is arm]
        got = report["arms"][arm.value]
        assert got["requests"] == len(mine) > 0
        assert got["failures"] == sum(c.failed for c in mine)
        assert got["error_rate"] == pytest.approx(sum(c.failed for c in mine) / len(mine))
        latencies = [c.latency_ms for c in mine]
        assert got["latency_mean_ms"] == pytest.approx(sum(latencies) / len(latencies))
        sketch = QuantileSketch.of(latencies)  # what the rollups would hold for these alone
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            assert got["latency_ms"][key] == sketch.quantile(q)
            low, high = _exact_quantile_bounds(latencies, q)
            assert low * 0.99 <= got["latency_ms"][key] <= high * 1.01
        with_tokens = [c for c in mine if c.completion_tokens is not None]
        prompt = sum(c.prompt_tokens or 0 for c in with_tokens) / len(with_tokens)
        completion = sum(c.completion_tokens or 0 for c in with_tokens) / len(with_tokens)
        assert got["prompt_tokens_per_request"] == pytest.approx(prompt)
        assert got["completion_tokens_per_request"] == pytest.approx(completion)
        costs = [c.cost_usd for c in mine if c.cost_usd is not None]
        assert got["observed_cost_per_request_usd"] == pytest.approx(sum(costs) / len(costs))
        cost = report["cost"][arm.value]
        assert cost["source"] == "live" and cost["requests"] == len(with_tokens)
        price_in, price_out = PRICE[arm]
        assert cost["cost_per_request_usd"] == pytest.approx(
            (prompt * price_in + completion * price_out) / 1e6
        )

        # The time series: requests and error rate in every chart bucket.
        width = timedelta(minutes=data.bucket_minutes)
        expected: dict[int, list[Call]] = {}
        for c in mine:
            expected.setdefault((minute_of(c.started_at) - data.since) // width, []).append(c)
        series = report["series"][arm.value]
        for index, point in enumerate(series):
            bucket = expected.get(index, [])
            assert point["requests"] == len(bucket), (arm, index)
            if bucket:
                assert point["error_rate"] == pytest.approx(
                    sum(c.failed for c in bucket) / len(bucket)
                )
                assert point["p99_ms"] == QuantileSketch.of(
                    [c.latency_ms for c in bucket]
                ).quantile(0.99)
            else:
                assert point["error_rate"] is None and point["p50_ms"] is None

    # Projected from the span of the tenant's own calls, first to last (not whole minutes).
    first = min(c.started_at for c in calls)
    last = max(c.started_at for c in calls)
    per_day = len(calls) / ((last - first) / timedelta(days=1))
    assert report["cost"]["observed_requests"] == len(calls)
    assert report["cost"]["requests_per_day"] == pytest.approx(per_day)
    delta = (
        report["cost"]["candidate"]["cost_per_request_usd"]
        - (report["cost"]["baseline"]["cost_per_request_usd"])
    )
    assert report["cost"]["monthly_delta_usd"] == pytest.approx(per_day * 30 * delta)
    assert f"of tenant {tenant.name}" in report["cost"]["assumption"]

    similarity = report["similarity"]
    for kind in ("candidate", "noise"):
        scores = tenant.similarity[kind]
        assert similarity[f"{kind}_n"] == len(scores) > 0
        assert similarity[f"{kind}_mean"] == pytest.approx(sum(scores) / len(scores))
        histogram = [0] * BINS
        for s in scores:
            histogram[min(BINS, max(1, math.floor(s * BINS) + 1)) - 1] += 1
        assert similarity[kind] == histogram

    assert report["divergent"], "the worst pairs are shown"
    worst = sorted(tenant.similarity["candidate"])[: len(report["divergent"])]
    assert [p["similarity"] for p in report["divergent"]] == pytest.approx(worst)
    assert {p["event_id"] for p in report["divergent"]} <= set(tenant.compared_ids)


def test_each_tenants_report_counts_its_own_calls_only(engine: Engine) -> None:
    """alpha's and bravo's reports give each tenant's own figures and nothing of the other."""
    now = datetime.now(UTC)
    tenants = seed_two_tenants(engine, now)
    settings = load_settings({})
    for name, tenant in tenants.items():
        data = load_report(engine, settings, ROLLOUT, now=now, pairs=10, tenant=name)
        report = json.loads(render_json(data))
        _assert_report_is_tenants(report, tenant, data)
        assert report["tenant"] == name
        assert report["tenant_scope"]["calls"] == len(tenant.calls)
        assert report["triggers"] == [], "whole-rollout trigger evidence is left out"
        assert [m["reason"] for m in report["steps"]] == [REASON_WITHHELD] * 2
        assert report["last_decision"]["reason"] == REASON_WITHHELD

        other = next(t for n, t in tenants.items() if n != name)
        other_ids = [c.event_id for c in other.calls]
        for fmt, text in _outputs(data).items():
            assert tenant.marker in text, fmt
            assert other.marker not in text, f"{other.name}'s text in {name}'s {fmt} report"
            leaked = [i for i in other_ids if i in text]
            assert not leaked, f"{other.name}'s event ids in {name}'s {fmt} report: {leaked}"
            assert REASON_MARKER not in text and "4711" not in text, fmt
        md = _outputs(data)["md"]
        assert f"Tenant {name}: every figure" in md
        assert "## Step history (whole rollout)" in md
        assert "Status (whole rollout)" in md
        assert "triggers' statistics are computed over every tenant's calls" in md

    # The operator's report still counts everyone (from the rollups) and shows the evidence.
    whole = json.loads(render_json(load_report(engine, settings, ROLLOUT, now=now, pairs=10)))
    for arm in Arm:
        everyone = sum(1 for t in tenants.values() for c in t.calls if c.arm is arm)
        assert whole["arms"][arm.value]["requests"] == everyone
    assert whole["tenant_scope"] is None and whole["triggers"]
    assert REASON_MARKER in whole["steps"][1]["reason"]


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}[{i}]").items()
        }
    return {path: value}


def test_a_lone_tenants_report_equals_the_rollup_report(engine: Engine) -> None:
    """With one tenant, raw-row figures and rollup figures are the same numbers.

    The two code paths (SQL aggregates over captures vs merged rollup rows) meet here:
    counts, error rates, sketch percentiles per bucket, tokens, cost, similarity.
    """
    now = datetime.now(UTC)
    seeded = seed_rollout(engine, now=now)  # every call is tenant "acme"
    settings = load_settings({})
    whole = json.loads(render_json(load_report(engine, settings, seeded.name, now=now)))
    alone = json.loads(
        render_json(load_report(engine, settings, seeded.name, now=now, tenant="acme"))
    )
    assert alone["arms"]["candidate"]["failures"] > 0
    for section in ("arms", "series", "similarity", "cost", "divergent"):
        expected, got = _flat(whole[section]), _flat(alone[section])
        expected.pop(".assumption", None), got.pop(".assumption", None)
        assert got.keys() == expected.keys(), section
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9), f"{section}{key}"
            else:
                assert got[key] == value, f"{section}{key}"


def test_sql_sketch_bins_are_the_rollups_bins(engine: Engine) -> None:
    """sketch_key in Postgres puts every value in QuantileSketch.of's bin, edges included."""
    from shadowcanary.store.sketch import MAPPING
    from shadowcanary.store.sketch_sql import _MULTIPLIER

    rng = random.Random(5)
    samples = [0.0, MAPPING.min_possible, 1e-300, 1e-9, 0.5, 1.0, 850.0, 1e9]
    for k in range(-200, 2000, 3):  # bin edges gamma^k and the doubles either side
        edge = math.pow(2.0, k / _MULTIPLIER)
        samples += [edge, math.nextafter(edge, 0.0), math.nextafter(edge, math.inf)]
    samples += [rng.uniform(0.01, 60_000.0) for _ in range(3_000)]
    table = values(column("v", Double), name="samples").data([(v,) for v in samples])
    with engine.connect() as conn:
        keys = conn.execute(select(table.c.v, sketch_key(table.c.v))).all()
    assert len(keys) == len(samples)
    mismatched = [
        (v, key, next(iter(QuantileSketch.of([v]).bins), None))
        for v, key in keys
        if key != next(iter(QuantileSketch.of([v]).bins), None)
    ]
    assert not mismatched, mismatched[:5]


def test_an_unknown_tenant_gets_an_empty_report_that_says_so(
    engine: Engine, database_url: str
) -> None:
    """No figure, no text of anyone; the note and the CLI's warning name the missing tenant."""
    now = datetime.now(UTC)
    tenants = seed_two_tenants(engine, now, minutes=3)
    data = load_report(engine, load_settings({}), ROLLOUT, now=now, pairs=10, tenant="charlie")
    assert data.tenant_scope is not None and data.tenant_scope.calls == 0
    assert not data.has_live_data and not data.divergent
    assert data.similarity.candidate_n == data.similarity.noise_n == 0
    assert data.cost.observed_requests == 0 and data.cost.monthly_delta_usd is None
    for fmt, text in _outputs(data).items():
        assert "No calls from tenant charlie are stored for this rollout" in text, fmt
        for tenant in tenants.values():
            assert tenant.marker not in text, fmt

    code, out, err = _run_cli(database_url, ROLLOUT, "--tenant", "charlie", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["tenant_scope"]["calls"] == 0
    assert "warning: no calls from tenant 'charlie'" in err
    assert "match exactly" in err


def test_before_the_first_step_the_candidate_cost_is_the_tenants_shadow_replays(
    engine: Engine,
) -> None:
    """No candidate live traffic yet: its cost comes from replays of this tenant's prompts."""
    now = datetime.now(UTC)
    plan = RolloutPlan(name=ROLLOUT, flag="shared", baseline="gpt-5.2", candidate="gpt-5.5")
    RolloutStore(engine).create_rollout(plan, now=now - timedelta(hours=1), actor="cli:sre")
    store = Store(engine)
    tokens = {"alpha": (400, 300), "bravo": (20, 10)}  # prompt, completion of the candidate
    for tenant, (prompt, completion) in tokens.items():
        events = [
            make_event(tenant=tenant, rollout=ROLLOUT, started_at=now - timedelta(minutes=m))
            for m in range(1, 5)
        ]
        captures = [AssessedCapture(e, make_flags(), None) for e in events]
        store.insert_captures(captures, received_at=now)
        replays = []
        for event in events:
            replay = make_replay(event.event_id)
            assert replay.output is not None
            output = replace(replay.output, prompt_tokens=prompt, completion_tokens=completion)
            replays.append(replace(replay, output=output))
        store.record_replays(replays, recorded_at=now)
    for tenant, (prompt, completion) in tokens.items():
        data = load_report(engine, load_settings({}), ROLLOUT, now=now, tenant=tenant)
        candidate = data.cost.candidate
        assert (candidate.source, candidate.requests) == ("shadow", 4)
        assert (candidate.prompt_tokens, candidate.completion_tokens) == (prompt, completion)
        assert candidate.cost_per_request_usd == pytest.approx(
            (prompt * 5.0 + completion * 30.0) / 1e6
        )


def test_a_name_no_call_can_carry_is_a_usage_error(database_url: str) -> None:
    """--tenant 'acme corp' (a space) exits 2 and says what a tenant name is."""
    code, _, err = _run_cli(database_url, ROLLOUT, "--tenant", "acme corp")
    assert code == 2
    assert "'acme corp' is not a tenant name" in err
    assert "Traceback" not in err


def test_a_tenant_report_starts_at_the_raw_rows_retention(engine: Engine) -> None:
    """Raw calls are purged after retention_days: the window says so instead of undercounting."""
    now = datetime.now(UTC)
    plan = RolloutPlan(name=ROLLOUT, flag="shared", baseline="gpt-5.2", candidate="gpt-5.5")
    RolloutStore(engine).create_rollout(plan, now=now - timedelta(days=3), actor="cli:sre")
    old = make_event(tenant="alpha", rollout=ROLLOUT, started_at=now - timedelta(days=2))
    recent = [
        make_event(tenant="alpha", rollout=ROLLOUT, started_at=now - timedelta(minutes=m))
        for m in range(5, 15)
    ]
    Store(engine).insert_captures(
        [AssessedCapture(e, make_flags(), None) for e in (old, *recent)], received_at=now
    )
    settings = load_settings({"SHADOWCANARY_RETENTION_DAYS": "1"})
    data = load_report(engine, settings, ROLLOUT, now=now, tenant="alpha")
    assert data.since == minute_of(now - timedelta(days=1))
    assert data.arms["baseline"].requests == 10  # the two-day-old call is outside the window
    assert data.tenant_scope is not None and data.tenant_scope.starts_at_retention
    md = render_markdown(data)
    assert "Raw calls are kept for 1 day (retention_days)" in md
    # The operator's report reads the rollups, which are kept: it starts at the rollout.
    whole = load_report(engine, settings, ROLLOUT, now=now)
    assert whole.since == minute_of(now - timedelta(days=3))
    assert whole.arms["baseline"].requests == 11


def _run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command()(report_command)
    result = CliRunner().invoke(
        app,
        list(args),
        env={"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"},
    )
    return result.exit_code, result.stdout, result.stderr
