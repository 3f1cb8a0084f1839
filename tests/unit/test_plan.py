"""Rollout plan files: defaults, shorthands, and errors that name the line and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.plan import (
    TRIGGER_NAMES,
    PlanError,
    RolloutPlan,
    TriggerMode,
    load_plan,
    parse_plan,
)
from tests.plan_cases import MINIMAL_PLAN as MINIMAL
from tests.plan_cases import assert_plan_error

FULL = """\
name: checkout-gpt55
flag: checkout-model
unleash:
  project: payments
  environment: staging
baseline: gpt-5.2
candidate: gpt-5.5
steps:
  - {percent: 5, min_duration: 1h30m, min_canary_requests: 500}
  - 25
  - 100
exposure:
  min_canary_requests: 2000
  min_events_per_arm: 40
  min_duration: 15m
  deadline: 2d
alpha: 0.02
certify_alpha: 0.1
stickiness: conversationId
stale_after: 300
triggers:
  error_rate: {margin: 0.02, null_ratio: 1.1, alpha_share: 0.5}
  refusals: dry-run
  ttft: off
  cost: act
  judge_score: {margin: 0.15}
guardrails: {max_error_rate: 0.5, window: 10m}
notify:
  webhooks: [https://hooks.slack.com/services/T000/B000/XXX]
escalation: "#sre-oncall"
"""


def test_minimal_plan_is_four_lines_with_defaults() -> None:
    """Name, flag, baseline and candidate are enough; the rest has docs/judge.md's defaults."""
    plan = parse_plan(MINIMAL)
    assert plan.step_percents == (10, 30, 50, 100)
    assert plan.alpha == 0.01
    assert plan.stickiness == "userId"
    assert (plan.unleash.project, plan.unleash.environment) == ("default", "production")
    exposure = plan.exposure_at(0)
    assert exposure.min_canary_requests == 1000
    assert exposure.min_events_per_arm == 25
    assert exposure.min_duration == timedelta(minutes=10)
    enabled = plan.triggers.enabled()
    assert "judge_score" not in enabled  # only when a judge is configured
    # The user-outcome triggers too: only services can feed them (on when listed).
    outcome_triggers = {"completion_rate", "negative_feedback", "escalation_rate"}
    assert not outcome_triggers & set(enabled)
    assert set(enabled) == set(TRIGGER_NAMES) - {"judge_score"} - outcome_triggers
    assert plan.triggers.error_rate.margin == 0.01
    assert plan.triggers.p99_latency.margin_ms == 200
    assert plan.triggers.cost.mode is TriggerMode.DRY_RUN
    act_shares = sum(c.alpha_share for c in enabled.values() if c.mode is TriggerMode.ACT)
    assert act_shares == pytest.approx(1.0)


def test_full_plan_parses_every_section() -> None:
    """Every documented setting is read, including shorthands and per-step overrides."""
    plan = parse_plan(FULL)
    assert plan.unleash.project == "payments"
    assert plan.step_percents == (5, 25, 100)
    first, second = plan.exposure_at(0), plan.exposure_at(1)
    assert first.min_duration == timedelta(hours=1, minutes=30)
    assert first.min_canary_requests == 500
    assert first.min_events_per_arm == 40  # inherited from exposure
    assert second.min_canary_requests == 2000
    assert second.deadline == timedelta(days=2)
    assert plan.stale_after == timedelta(seconds=300)
    assert plan.stickiness == "conversationId"
    triggers = plan.triggers
    assert (triggers.error_rate.margin, triggers.error_rate.null_ratio) == (0.02, 1.1)
    assert triggers.error_rate.alpha_share == 0.5
    assert triggers.refusals.mode is TriggerMode.DRY_RUN
    assert triggers.refusals.margin == 0.01  # default kept under the shorthand
    assert not triggers.ttft.enabled
    assert triggers.cost.mode is TriggerMode.ACT
    assert triggers.judge_score.enabled and triggers.judge_score.margin == 0.15
    assert "ttft" not in triggers.enabled()
    assert plan.guardrails.window == timedelta(minutes=10)
    assert plan.notify.webhooks == ("https://hooks.slack.com/services/T000/B000/XXX",)
    assert plan.escalation == "#sre-oncall"


def test_plan_round_trips_through_json() -> None:
    """The JSON form stored in the audit log validates back to the same plan."""
    plan = parse_plan(FULL)
    assert RolloutPlan.model_validate(plan.model_dump(mode="json")) == plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("min_duration: 90s", timedelta(seconds=90)),
        ("min_duration: 1h30m", timedelta(hours=1, minutes=30)),
        ("min_duration: 2d", timedelta(days=2)),
        ("min_duration: 45", timedelta(seconds=45)),
        ("min_duration: PT10M", timedelta(minutes=10)),
        ("min_duration: 500ms", timedelta(milliseconds=500)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    """Durations read as 90s / 10m / 1h30m / 2d, seconds, or ISO 8601."""
    key, value = text.split(": ")
    plan = parse_plan(MINIMAL + f"exposure:\n  {key}: {value}\n  deadline: 3d\n")
    assert plan.exposure.min_duration == expected


INVALID = [
    pytest.param(
        MINIMAL + "triggers:\n  error_rate: dry-run\n  eror_rate: {margin: 0.1}\n",
        [
            "line 7",
            "triggers.eror_rate",
            "unknown trigger",
            "did you mean 'error_rate'",
            "known triggers: error_rate, incomplete",
        ],
        id="unknown-trigger",
    ),
    pytest.param(
        MINIMAL + "steps: [10, 50, 30, 100]\n",
        ["line 5", "steps", "must increase strictly", "30 follows 50", "increasing order"],
        id="steps-not-increasing",
    ),
    pytest.param(
        MINIMAL + "steps: [10, 30, 30, 100]\n",
        ["line 5", "must increase strictly"],
        id="steps-repeated",
    ),
    pytest.param(
        MINIMAL + "steps: [10, 50]\n",
        ["line 5", "must end at 100", "add 100"],
        id="last-step-not-100",
    ),
    pytest.param(MINIMAL + "steps: []\n", ["needs at least one step"], id="no-steps"),
    pytest.param(
        MINIMAL + "steps:\n  - 10\n  - 150\n",
        ["line 7", "steps.1.percent", "less than or equal to 100", "(0, 100]"],
        id="step-above-100",
    ),
    pytest.param(
        MINIMAL + "alpha: 0.5\n",
        ["line 5", "alpha", "got 0.5", "false-rollback budget", "(0, 0.2]"],
        id="alpha-too-large",
    ),
    pytest.param(MINIMAL + "alpha: 0\n", ["line 5", "alpha", "(0, 0.2]"], id="alpha-zero"),
    pytest.param(
        "name: checkout-gpt55\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n",
        ["line 1", "flag: missing", "add `flag: checkout-model"],
        id="missing-flag",
    ),
    pytest.param(
        MINIMAL + "triggers:\n  refusals: {margin: 3}\n",
        ["line 6", "triggers.refusals.margin", "less than 1"],
        id="margin-out-of-range",
    ),
    pytest.param(
        MINIMAL + "triggers:\n  ttft: sometimes\n",
        ["line 6", "triggers.ttft.mode", "act or dry-run"],
        id="bad-mode",
    ),
    pytest.param(
        MINIMAL + "exposure:\n  min_duration: 2x\n",
        ["line 6", "exposure.min_duration", "not a duration", "1h30m"],
        id="bad-duration",
    ),
    pytest.param(
        MINIMAL + "exposure:\n  min_duration: 2h\n  deadline: 1h\n",
        ["line 5", "deadline", "longer than min_duration"],
        id="deadline-before-minimum",
    ),
    pytest.param(
        MINIMAL + "exposure:\n  min_requests: 10\n",
        ["line 6", "exposure.min_requests", "unknown setting", "allowed here: min_canary_requests"],
        id="unknown-setting",
    ),
    pytest.param(
        MINIMAL + "notify:\n  webhooks: [not-a-url]\n",
        ["line 6", "notify.webhooks.0", "http(s) URL"],
        id="webhook-not-url",
    ),
    pytest.param(
        MINIMAL.replace("gpt-5.5", "gpt-5.2"),
        ["baseline and candidate are both 'gpt-5.2'"],
        id="same-models",
    ),
    pytest.param(
        MINIMAL + "stickiness: sessionId\n",
        ["line 5", "userId or conversationId"],
        id="bad-stickiness",
    ),
    pytest.param(
        "name: a\nflag: b\n  baseline: x\n",
        ["line 3", "not valid YAML", "indentation"],
        id="broken-yaml",
    ),
    pytest.param("- name: a\n", ["a rollout plan is a YAML mapping"], id="not-a-mapping"),
    pytest.param(
        MINIMAL.replace("checkout-model", "checkout model"),
        ["line 2", "flag"],
        id="flag-name-with-space",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), INVALID)
def test_invalid_plans_say_where_and_how_to_fix(text: str, fragments: list[str]) -> None:
    """Each invalid plan fails with a PlanError naming the line, the field and the fix."""
    assert_plan_error(text, fragments, source="rollout.yaml")


def test_every_problem_is_reported_at_once() -> None:
    """Several mistakes in one file are all listed, each with its own line."""
    text = MINIMAL + "alpha: 0.9\nsteps: [10, 5, 100]\ntriggers:\n  latency: act\n"
    with pytest.raises(PlanError) as raised:
        parse_plan(text)
    message = str(raised.value)
    assert "line 5, alpha" in message
    assert "line 6, steps" in message
    assert "line 8, triggers.latency: unknown trigger" in message


def test_plan_error_is_a_config_error() -> None:
    """Callers that catch ConfigError also catch plan problems."""
    with pytest.raises(ConfigError):
        parse_plan("name: a\n")


def test_load_plan_reads_a_file(tmp_path: Path) -> None:
    """load_plan validates the file and names it in errors."""
    good = tmp_path / "plan.yaml"
    good.write_text(MINIMAL, encoding="utf-8")
    assert load_plan(good).flag == "checkout-model"
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "alpha: 2\n", encoding="utf-8")
    with pytest.raises(PlanError, match=r"bad\.yaml is not a valid rollout plan"):
        load_plan(bad)


def test_load_plan_missing_file() -> None:
    """A missing file is a PlanError that names the path."""
    with pytest.raises(PlanError, match=r"cannot read rollout plan '/nonexistent/plan\.yaml'"):
        load_plan("/nonexistent/plan.yaml")


@pytest.mark.parametrize(
    ("value", "enabled", "mode"),
    [
        ("off", False, TriggerMode.ACT),
        ("false", False, TriggerMode.ACT),
        ("dry-run", True, TriggerMode.DRY_RUN),
        ("act", True, TriggerMode.ACT),
        ("true", True, TriggerMode.ACT),
        ("{mode: dry-run, margin: 0.05}", True, TriggerMode.DRY_RUN),
    ],
)
def test_trigger_shorthands(value: str, enabled: bool, mode: TriggerMode) -> None:
    """A trigger can be written as off / act / dry-run / true or as a mapping."""
    plan = parse_plan(MINIMAL + f"triggers:\n  refusals: {value}\n")
    assert plan.triggers.refusals.enabled is enabled
    assert plan.triggers.refusals.mode is mode
