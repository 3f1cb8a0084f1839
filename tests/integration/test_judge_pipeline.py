"""The LLM judge end to end: tap -> Redis -> Celery worker -> simulator judge -> decide().

What is real: the simulator answering as baseline, candidate and judge (the judge's
verdicts follow the profiles' known quality), the tap's OpenAI wrapper, Redis, a
Celery worker replaying and judging, Postgres (verdicts and their per-minute rollups),
the controller's evidence read and ``decide()``. Every call goes to the baseline (the
flag is at 0 %): what is judged here is what the shadow gate sees before any user is
exposed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from shadowcanary.cli.rollout import rollout_app
from shadowcanary.events import now_utc
from shadowcanary.judge.decide import DecisionKind, decide
from shadowcanary.judge.triggers import TriggerResult, Verdict
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.launcher.worker import run_worker
from shadowcanary.plan import parse_plan
from shadowcanary.report.html import render_html
from shadowcanary.report.load import load_report
from shadowcanary.report.markdown import render_markdown
from shadowcanary.rollout_records import RolloutRecord
from shadowcanary.settings import TapSettings, load_settings
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine
from shadowcanary.store.evidence_reads import load_evidence
from shadowcanary.store.judge_store import JudgeStore
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from tests.integration.conftest import FAST_PROFILES

pytestmark = pytest.mark.integration

JUDGE_PROFILES: dict[str, dict[str, Any]] = {
    **FAST_PROFILES,
    "sim-judge": {"role": "judge", "median_ms": 3, "p99_ms": 10, "input_usd_per_mtok": 0.25},
}
CALLS = 90


@pytest.fixture(scope="module")
def judge_sim() -> Iterator[SimHandle]:
    with run_simulator(JUDGE_PROFILES) as handle:
        yield handle


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def _models(base_url: str) -> str:
    prices = {"gpt-5.2": (1.75, 14.0), "gpt-5.5": (5.0, 30.0), "sim-judge": (0.25, 2.0)}
    return json.dumps(
        {
            name: {"base_url": base_url, "input_usd_per_mtok": i, "output_usd_per_mtok": o}
            for name, (i, o) in prices.items()
        }
    )


@pytest.fixture
def judging_worker(
    database_url: str, redis_url: str, judge_sim: SimHandle, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    extra: dict[str, str] = getattr(request, "param", {})
    env = {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_MODELS": _models(judge_sim.base_url),
        # Every prompt asked of the baseline twice: a noise floor of ~75 pairs from 90 calls.
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "1",
        "SHADOWCANARY_REPLAY__BACKOFF_BASE_S": "0.2",
        "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "1",
        "SHADOWCANARY_JUDGE__MODEL": "sim-judge",
        "SHADOWCANARY_JUDGE__SAMPLE_RATE": "1",
        "SHADOWCANARY_LOG_LEVEL": "info",
        **extra,
    }
    with run_worker(env):
        yield env
    # Back to the fixture's profiles for the next test of the module.
    judge_sim.set_profile("gpt-5.5", **FAST_PROFILES["gpt-5.5"], quality=0.0, quality_when={})
    judge_sim.set_profile(
        "sim-judge",
        **JUDGE_PROFILES["sim-judge"],
        judge_position_bias=0.0,
        error_rate=0.0,
        rate_limit_rate=0.0,
    )


def _run(
    engine: Engine, judge_sim: SimHandle, redis_url: str, prompts: list[str]
) -> tuple[RolloutRecord, list[TriggerResult], Any]:
    """Send ``prompts`` through the tap to the baseline; wait for every verdict; decide."""
    name = f"judge-{uuid.uuid4().hex[:8]}"
    plan = parse_plan(
        f"name: {name}\nflag: {name}-flag\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
        "triggers:\n  judge_score: act\n"
    )
    started = now_utc() - timedelta(minutes=1)
    record = RolloutStore(engine).create_rollout(plan, now=started, actor="test")
    with Tap(TapSettings(flush_interval_s=0.02), redis_url) as tap:
        for i, prompt in enumerate(prompts):
            route = "billing" if "invoice" in prompt else "support"
            client = tap_openai(
                openai.OpenAI(base_url=judge_sim.base_url, api_key="test", max_retries=0),
                tap,
                route=route,
                rollout=name,
            )
            client.chat.completions.create(
                model="gpt-5.2",
                messages=[{"role": "user", "content": prompt}],
                user=f"user-{i}",
            )
    store = JudgeStore(engine)

    def judged() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "select count(*) from judge_verdicts v join captures c using (event_id) "
                        "where c.rollout = :r and v.kind = 'candidate'"
                    ),
                    {"r": name},
                ).scalar_one()
            )

    wait_until(lambda: judged() >= len(prompts), timeout_s=120, what="every pair judged")
    now = now_utc() + timedelta(minutes=2)  # every minute of the traffic is closed
    evidence = load_evidence(engine, record, now=now)
    state = record.judge_state(None)
    # As the first step would see it: the flag moves to 10 % only if the judge allows.
    state = type(state)(0, 10, record.started_at, record.started_at, 1000.0, now)
    decision = decide(plan, state, evidence, now)
    totals = store.judge_totals(name)
    return record, list(decision.triggers), (decision, totals)


def _prompts(redacted_every: int = 6) -> list[str]:
    return [
        f"My email is jane.doe{i}@example.com, please fix order {i}"
        if i % redacted_every == 0
        else f"How do I reset password {i} for the shop account?"
        for i in range(CALLS)
    ]


def _judge(results: list[TriggerResult]) -> TriggerResult:
    return next(r for r in results if r.name == "judge_score")


def test_a_worse_but_similar_candidate_is_stopped_by_the_judge(
    engine: Engine, judge_sim: SimHandle, redis_url: str, judging_worker: dict[str, str]
) -> None:
    """Wording like the baseline's, answers worse: the judge trigger rolls back at once."""
    judge_sim.set_profile("gpt-5.5", divergence=0.05, quality=-1.0)
    record, results, (decision, totals) = _run(engine, judge_sim, redis_url, _prompts())
    result = _judge(results)
    assert result.verdict is Verdict.HARM, result.detail
    assert decision.kind is DecisionKind.ROLLBACK and "judge_score" in decision.reason
    candidate = totals[ReplayKind.CANDIDATE]
    assert candidate["losses"] > 0.6 * candidate["judged"]
    # Like with like: every prompt redaction changed was judged against the baseline
    # asked again on the redacted prompt, never against the live answer.
    assert candidate["redacted"] == sum(1 for p in _prompts() if "@" in p)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select v.reference, v.rationale, v.prompt_tokens, v.cost_usd, v.other_chars "
                "from judge_verdicts v join captures c using (event_id) "
                "where c.rollout = :r and v.kind = 'candidate' and v.prompt_redacted"
            ),
            {"r": record.name},
        ).all()
    assert rows and {r.reference for r in rows} == {"baseline_again"}
    assert all(r.rationale and r.prompt_tokens > 0 and r.cost_usd > 0 for r in rows)
    # The report's judge section: verdicts per kind and route, and the pairs it lost.
    data = load_report(engine, load_settings({}), record.name, now=now_utc() + timedelta(minutes=2))
    page = render_html(data)
    assert 'id="judge"' in page and "lost in both orders" in page
    report = render_markdown(data)
    assert "## LLM judge (pairwise, both orders)" in report
    assert "| candidate vs baseline | support |" in report
    assert "baseline again vs baseline (noise floor)" in report
    assert "### Lost pair 1" in report and "jane.doe" not in report


def test_a_better_but_different_candidate_is_certified(
    engine: Engine, judge_sim: SimHandle, redis_url: str, judging_worker: dict[str, str]
) -> None:
    """Reworded a lot (similarity drops) but better: the judge certifies it, no harm."""
    judge_sim.set_profile("gpt-5.5", divergence=0.6, quality=1.0)
    _, results, (_, totals) = _run(engine, judge_sim, redis_url, _prompts())
    result = _judge(results)
    assert result.verdict is Verdict.CERTIFIED, result.detail
    assert totals[ReplayKind.CANDIDATE]["wins"] > 0.6 * totals[ReplayKind.CANDIDATE]["judged"]


def test_a_judge_that_always_prefers_the_first_answer_gives_ties(
    engine: Engine, judge_sim: SimHandle, redis_url: str, judging_worker: dict[str, str]
) -> None:
    """Position bias is swapped away: every verdict is a tie, and no rollback follows."""
    judge_sim.set_profile("gpt-5.5", divergence=0.05, quality=-1.0)
    judge_sim.set_profile("sim-judge", judge_position_bias=1.0)
    _, results, (decision, totals) = _run(engine, judge_sim, redis_url, _prompts())
    result = _judge(results)
    assert result.verdict is not Verdict.HARM, result.detail
    assert decision.kind is not DecisionKind.ROLLBACK
    candidate = totals[ReplayKind.CANDIDATE]
    assert candidate["ties"] == candidate["judged"] > 0
    assert candidate["position_disagreements"] == candidate["judged"]


def test_a_candidate_worse_on_one_route_is_stopped_naming_the_route(
    engine: Engine, judge_sim: SimHandle, redis_url: str, judging_worker: dict[str, str]
) -> None:
    """Worse on the billing route's prompts only: rolled back, and the reason names billing."""
    judge_sim.set_profile("gpt-5.5", divergence=0.05, quality=0.0, quality_when={"invoice": -1.5})
    prompts = [
        f"Why is invoice {i} for the shop higher than last month?"
        if i % 3
        else f"How do I reset password {i} for the shop account?"
        for i in range(CALLS)
    ]
    _, results, (decision, _) = _run(engine, judge_sim, redis_url, prompts)
    result = _judge(results)
    assert result.verdict is Verdict.HARM, result.detail
    assert decision.kind is DecisionKind.ROLLBACK
    assert "route 'billing'" in decision.reason and "route 'support'" not in decision.reason


@pytest.mark.parametrize(
    ("judging_worker", "reason"),
    [
        ({}, "the judge is down"),
        ({}, "rate-limited"),
        ({"SHADOWCANARY_JUDGE__DAILY_USD_BUDGET": "0.000001"}, "the judge's daily budget is spent"),
    ],
    indirect=["judging_worker"],
    ids=["judge-down", "judge-rate-limited", "budget-spent"],
)
def test_a_judge_that_cannot_judge_holds_the_rollout_with_the_reason(
    engine: Engine,
    judge_sim: SimHandle,
    redis_url: str,
    judging_worker: dict[str, str],
    reason: str,
) -> None:
    """No verdicts because the judge fails or its budget is spent: HOLD, saying which."""
    if reason == "the judge is down":
        judge_sim.set_profile("sim-judge", error_rate=1.0)
    if reason == "rate-limited":  # every call answered 429: the judge is down too
        judge_sim.set_profile("sim-judge", rate_limit_rate=1.0, retry_after_s=0.05)
        reason = "the judge is down"
    prompts = [f"How do I reset password {i} for the shop account?" for i in range(40)]
    _, results, (decision, totals) = _run(engine, judge_sim, redis_url, prompts)
    result = _judge(results)
    assert result.verdict is Verdict.INSUFFICIENT, result.detail
    assert reason in result.detail
    # Holds (in this shadow-only state the flag check speaks first; test_judge_pairwise
    # shows the trigger's reason in a HOLD's "waiting for").
    assert decision.kind is DecisionKind.HOLD
    candidate = totals[ReplayKind.CANDIDATE]
    assert candidate["failed" if "down" in reason else "skipped_budget"] > candidate["judged"]


def test_starting_a_plan_whose_trigger_nothing_feeds_is_refused(
    database_url: str, judge_sim: SimHandle, tmp_path: Path
) -> None:
    """`rollout start` refuses judge_score with no judge model, naming the setting; then starts."""
    plan_file = tmp_path / "judged.yaml"
    plan_file.write_text(
        "name: judged\nflag: judged-flag\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
        "triggers:\n  judge_score: act\n"
    )
    env = {"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"}
    runner = CliRunner()
    refused = runner.invoke(rollout_app, ["start", str(plan_file)], env=env)
    assert refused.exit_code == 1, refused.output
    assert "triggers.judge_score" in refused.output
    assert "SHADOWCANARY_JUDGE__MODEL" in refused.output
    assert "no rollout" in runner.invoke(rollout_app, ["status"], env=env).output.lower()
    fed = {
        **env,
        "SHADOWCANARY_MODELS": _models(judge_sim.base_url),
        "SHADOWCANARY_JUDGE__MODEL": "sim-judge",
    }
    started = runner.invoke(rollout_app, ["start", str(plan_file)], env=fed)
    assert started.exit_code == 0, started.output
