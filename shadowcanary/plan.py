"""The rollout plan: the YAML file an SRE writes, validated at the edge by pydantic.

A minimal plan is four lines; everything else has a default chosen from docs/judge.md and
the migration guides in ``shared/seeds`` ("error_rate > 2 % OR completion_rate_drop
> 5 %", "p99 latency increase > 200 ms", "quality score drop > 10 %")::

    name: checkout-gpt55
    flag: checkout-model
    baseline: gpt-5.2
    candidate: gpt-5.5

Every error names the YAML line and field and says how to fix it: pydantic's error
locations are mapped back to the node marks of ``yaml.compose``.
"""

from __future__ import annotations

import difflib
import itertools
import re
import reprlib
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from shadowcanary.errors import ConfigError
from shadowcanary.events import Name as ModelName


class PlanError(ConfigError):
    """A rollout plan file is invalid; the message names the line and the fix."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_duration(value: Any) -> Any:
    """'90s', '10m', '1h30m', '2d' or a number of seconds; anything else goes to pydantic."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
        elif not text.upper().startswith("P"):  # ISO 8601 ("PT10M") is how plans serialise
            raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 10m, 1h30m or 2d")
    if seconds is None:
        return value
    if not 0 <= seconds <= _MAX_DURATION_S:  # also NaN; timedelta overflows past ~2.7M years
        raise ValueError(f"{value!r} is out of range: a duration is between 0s and 3650d")
    return timedelta(seconds=seconds)


def _in_range(value: timedelta) -> timedelta:
    """The same bounds for ISO 8601 durations, which pydantic parses itself."""
    if not timedelta(0) <= value <= timedelta(seconds=_MAX_DURATION_S):
        raise ValueError(f"{value} is out of range: a duration is between 0s and 3650d")
    return value


_MAX_DURATION_S = 3650 * 86400.0  # ten years: longer is a typo
Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_in_range)]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.~-]*$"  # URL-friendly, as Unleash requires of flag names
# Plan names end up in Unleash API paths, file names and the shell commands printed in
# runbooks; free text (escalation) in Markdown: one line, no control characters, so a
# plan cannot smuggle a line into a runbook's code block.
_UnleashName = Annotated[str, Field(pattern=_NAME, max_length=100)]
_OneLine = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
# A plan is a page of YAML; anything far bigger is a mistake (or an attack on the parser).
MAX_PLAN_CHARS = 256_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerMode(StrEnum):
    ACT = "act"  # a verdict of harm rolls back; a missing certificate holds
    DRY_RUN = "dry-run"  # computed and recorded, never acts


class _Trigger(_Model):
    enabled: bool = True
    mode: TriggerMode = TriggerMode.ACT
    # Fraction of the plan's alpha this trigger may spend on false rollbacks.
    alpha_share: float = Field(gt=0, le=1)
    # When no observations at all arrive: required -> hold, otherwise not applicable.
    required: bool = False


class RateTrigger(_Trigger):
    """A failure rate, canary against the concurrent baseline (count e-process).

    Two numbers, two meanings: the step advances only once the canary's rate is shown
    to be at most ``margin`` points above the baseline's; it rolls back once the
    canary's rate is shown to be above ``null_ratio`` times the baseline's. With the
    default ratio 1 a candidate inside the margin may still be rolled back (README,
    family ``error_1to1.5_within_margin``): raise ``null_ratio`` to tolerate more, at
    the cost of slower detection (docs/guarantees.md 7.8).
    """

    margin: float = Field(
        gt=0, lt=1, description="advance: increase shown below this many points (0.01 = +1 pt)"
    )
    null_ratio: float = Field(
        default=1.0, ge=1, le=10, description="roll back: canary/baseline ratio shown above this"
    )


class TailLatencyTrigger(_Trigger):
    """ "p99 + margin_ms", judged against the concurrent baseline.

    Both arms count their requests slower than T = (baseline quantile) + ``margin_ms``,
    in the same minutes; the quantile is frozen before the canary and placed again from
    the baseline arm's last 30 minutes at every ADVANCE. Roll back: the canary's share above T
    is shown larger than the baseline's. Advance: it is shown at most 0.6 of the
    quantile's tail larger (0.6 point for p99). A slowdown of both arms moves both
    shares together; the frozen quantile only places T.
    """

    margin_ms: float = Field(gt=0, description="where the tail is compared: baseline p99 + this")
    quantile: float = Field(default=0.99, ge=0.5, lt=1)


class MeanDeltaTrigger(_Trigger):
    """A mean in milliseconds (TTFT); harm is an absolute increase."""

    margin_ms: float = Field(gt=0)


class RelativeMeanTrigger(_Trigger):
    """A mean per request (output tokens, cost); harm is a relative increase."""

    margin: float = Field(gt=0, le=10, description="tolerated relative increase, 0.25 = +25 %")


class QualityTrigger(_Trigger):
    """Shadow similarity or judge score against the noise floor (paired differences)."""

    margin: float = Field(gt=0, le=1, description="tolerated drop below the noise floor")


TriggerConfig = (
    RateTrigger | TailLatencyTrigger | MeanDeltaTrigger | RelativeMeanTrigger | QualityTrigger
)

_OUTCOME_TRIGGER: dict[str, Any] = {"alpha_share": 0.1, "enabled": False, "required": True}
# One table of defaults; act-mode shares sum to 1 so the triggers split alpha exactly.
_TRIGGER_DEFAULTS: dict[str, dict[str, Any]] = {
    # "error_rate > 2 %" at a ~1 % baseline: +1 point over the concurrent baseline.
    "error_rate": {"margin": 0.01, "null_ratio": 1.0, "alpha_share": 0.4},
    # Truncated answers (finish_reason=length), measured on every call. Not the guides'
    # "completion_rate_drop": that is completion_rate below, reported by the service.
    "incomplete": {"margin": 0.02, "null_ratio": 1.2, "alpha_share": 0.1},
    "refusals": {"margin": 0.01, "null_ratio": 1.2, "alpha_share": 0.1},
    "invalid_json": {"margin": 0.02, "null_ratio": 1.2, "alpha_share": 0.1},
    "p99_latency": {"margin_ms": 200.0, "alpha_share": 0.1},
    "ttft": {"margin_ms": 200.0, "alpha_share": 0.05},
    "output_tokens": {"margin": 0.25, "alpha_share": 0.05, "mode": "dry-run"},
    "cost": {"margin": 0.25, "alpha_share": 0.05, "mode": "dry-run"},
    "quality": {"margin": 0.05, "alpha_share": 0.1},
    "shadow_invalid_json": {"margin": 0.02, "null_ratio": 1.2, "alpha_share": 0.05},
    # Pairwise LLM judge (judge/judge_score.py): the candidate's net loss rate (losses -
    # wins per judged pair) beyond the baseline-vs-itself noise floor, 5 points tolerated.
    # On when listed in the plan; needs SHADOWCANARY_JUDGE__MODEL (plan validation says so).
    "judge_score": {"margin": 0.05, "alpha_share": 0.1, "enabled": False},
    # User outcomes the services report (shadowcanary.outcomes); on when listed in the
    # plan, and required: with no outcome reported the step holds (fail closed).
    # "completion_rate_drop > 5 %": abandoned / (completed + abandoned) up 5 points.
    "completion_rate": _OUTCOME_TRIGGER | {"margin": 0.05, "null_ratio": 1.1},
    # thumbs down or retried / calls with any outcome reported.
    "negative_feedback": _OUTCOME_TRIGGER | {"margin": 0.05, "null_ratio": 1.2},
    # escalated to a person / calls with any outcome reported.
    "escalation_rate": _OUTCOME_TRIGGER | {"margin": 0.02, "null_ratio": 1.2},
}
TRIGGER_NAMES: tuple[str, ...] = tuple(_TRIGGER_DEFAULTS)


class Triggers(_Model):
    """Every known trigger; a plan lists only the ones it changes."""

    error_rate: RateTrigger
    incomplete: RateTrigger
    refusals: RateTrigger
    invalid_json: RateTrigger
    p99_latency: TailLatencyTrigger
    ttft: MeanDeltaTrigger
    output_tokens: RelativeMeanTrigger
    cost: RelativeMeanTrigger
    quality: QualityTrigger
    shadow_invalid_json: RateTrigger
    judge_score: QualityTrigger
    completion_rate: RateTrigger
    negative_feedback: RateTrigger
    escalation_rate: RateTrigger

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """Overlay what the plan says on the defaults; 'off', 'dry-run', 'act' are shorthands."""
        if not isinstance(data, dict | None):
            return data
        merged: dict[str, Any] = {name: dict(value) for name, value in _TRIGGER_DEFAULTS.items()}
        for name, value in (data or {}).items():
            if name not in _TRIGGER_DEFAULTS or not isinstance(value, bool | str | dict | None):
                merged[name] = value  # pydantic reports what is wrong with it
            elif value is False or value in ("off", "disabled"):
                merged[name]["enabled"] = False
            else:
                given = {"mode": value} if isinstance(value, str) else value
                merged[name].update({"enabled": True, **(given if isinstance(given, dict) else {})})
        return merged

    def enabled(self) -> dict[str, TriggerConfig]:
        """The enabled triggers by name, in declaration order."""
        configs: dict[str, TriggerConfig] = {n: getattr(self, n) for n in TRIGGER_NAMES}
        return {name: config for name, config in configs.items() if config.enabled}


class Exposure(_Model):
    """What a step must see before it may advance, and when a person must look."""

    min_canary_requests: int = Field(default=1000, ge=0)
    min_events_per_arm: int = Field(default=25, ge=0)
    min_duration: Duration = timedelta(minutes=10)
    deadline: Duration = timedelta(hours=24)

    @model_validator(mode="after")
    def _deadline_after_minimum(self) -> Exposure:
        if self.deadline <= self.min_duration:
            raise ValueError(
                f"deadline ({self.deadline}) must be longer than min_duration "
                f"({self.min_duration}); raise the deadline or shorten min_duration"
            )
        return self


class Step(_Model):
    """One canary percentage; unset exposure fields come from the plan's ``exposure``."""

    percent: int = Field(gt=0, le=100)
    min_canary_requests: int | None = Field(default=None, ge=0)
    min_events_per_arm: int | None = Field(default=None, ge=0)
    min_duration: Duration | None = None
    deadline: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_percent(cls, data: Any) -> Any:
        return {"percent": data} if isinstance(data, int | float | str) else data


# The shadow gate's defaults (docs/phases.md). Sized so the gate has the power to
# certify the default quality margin: the quality trigger certifies when drop + r(n) <
# margin, r the half-width of its normal-mixture confidence sequence (tau = margin 0.05,
# certify_alpha 0.05) at V = sd^2 / n. A candidate losing half the margin (0.025) to
# the noise floor, with a per-pair SD of D of 0.2 (a wide spread), needs n = 637 pairs
# (shadowcanary.judge.shadow_gate.pairs_to_certify; 148 for a candidate at the floor).
DEFAULT_SHADOW_COMPARISONS = 640
# Seed 004: "shadow traffic executed for at least one week".
DEFAULT_SHADOW_DURATION = timedelta(days=7)


class ShadowGate(_Model):
    """Before the first step: no user sees the candidate until shadow evidence certifies it.

    The gate passes when the minimums are met and every act-mode shadow trigger
    (``quality``, ``shadow_invalid_json``, ``judge_score``) certified "no harm beyond the
    margin"; an act-mode shadow trigger that finds harm rolls back before anyone is exposed.
    """

    # Compared candidate replays (the candidate's answer scored against the live one).
    min_comparisons: int = Field(default=DEFAULT_SHADOW_COMPARISONS, ge=0)
    # Pairs the LLM judge scored; needs the judge_score trigger (a judge model) on.
    min_judged_pairs: int = Field(default=0, ge=0)
    min_duration: Duration = DEFAULT_SHADOW_DURATION
    # Past this without a verdict the gate holds and escalates to a person.
    deadline: Duration = timedelta(days=14)

    @model_validator(mode="after")
    def _deadline_after_minimum(self) -> ShadowGate:
        if self.deadline <= self.min_duration:
            raise ValueError(
                f"deadline ({self.deadline}) must be longer than min_duration "
                f"({self.min_duration}); raise the deadline or shorten min_duration"
            )
        return self


class Watch(_Model):
    """After 100 %: triggers stay armed and the old model is kept warm before COMPLETE.

    A sample of the candidate's live calls is replayed to the baseline model (the
    rollback target); its failures and latency are checked on their own. A failing
    rollback target is an alert and a hold, never a rollback.
    """

    duration: Duration = timedelta(hours=24)
    # Replays of live calls to the baseline model needed before COMPLETE ("warm").
    min_baseline_replays: int = Field(default=200, ge=0)
    # The rollback target is unhealthy when its replays certainly fail more than this.
    baseline_max_error_rate: float = Field(default=0.05, gt=0, lt=1)
    # ... or are certainly slower than the candidate's live answers by more than this.
    baseline_latency_margin_ms: float = Field(default=2000.0, gt=0)
    # False-alarm budget of the watch's own tests (candidate regression and target health).
    alpha: float = Field(default=0.001, gt=0, le=0.05)


class ReplaySampling(_Model):
    """Spend only what the decision needs: once every act-mode shadow trigger is certified
    for the current step, replay only ``maintenance_rate`` of the baseline's answers.

    Back to every answer on a step change and when a shadow trigger is no longer
    certified or its upper bound comes within ``near_margin`` of its margin.
    """

    maintenance_rate: float = Field(default=0.1, gt=0, le=1)
    near_margin: float = Field(default=0.8, gt=0, lt=1)
    # The first minutes of each step replay everything, whatever the pooled evidence says.
    step_warmup: Duration = timedelta(minutes=10)


class Unleash(_Model):
    project: _UnleashName = "default"
    environment: _UnleashName = "production"


class Guardrails(_Model):
    """Catastrophe limits: roll back at once when the canary is certainly broken."""

    max_error_rate: float = Field(default=0.25, gt=0, le=1)
    window: Duration = timedelta(minutes=5)


class SampleRatio(_Model):
    """How far the canary's share of requests may stray from the flag before holding."""

    max_odds_ratio: float = Field(default=1.5, gt=1)
    alpha: float = Field(default=1e-4, gt=0, le=0.01)
    # Buckets this soon after a step change are skipped: SDKs refresh flags lazily.
    grace: Duration = timedelta(minutes=2)


def _http_url(value: Any) -> Any:
    TypeAdapter(HttpUrl).validate_python(value)  # raises a ValidationError pydantic reports
    return value


DEFAULT_JUDGE_RUBRIC: tuple[str, ...] = (
    "correctness",
    "helpfulness",
    "instruction and format adherence",
    "safety",
)
_Criterion = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class JudgeRubric(_Model):
    """What the pairwise LLM judge compares answers on, in order of importance."""

    rubric: tuple[_Criterion, ...] = Field(default=DEFAULT_JUDGE_RUBRIC, min_length=1)
    # route -> its own rubric (e.g. a JSON-extraction route judged on format first).
    routes: dict[str, tuple[_Criterion, ...]] = Field(default_factory=dict)

    def for_route(self, route: str) -> tuple[str, ...]:
        return self.routes.get(route) or self.rubric


class Notify(_Model):
    webhooks: tuple[Annotated[str, BeforeValidator(_http_url)], ...] = ()


class RolloutPlan(_Model):
    """A validated rollout plan. ``model_dump(mode="json")`` round-trips through it."""

    name: str = Field(pattern=_NAME, max_length=120)
    flag: str = Field(pattern=_NAME, max_length=100)
    baseline: ModelName
    candidate: ModelName
    unleash: Unleash = Unleash()
    steps: tuple[Step, ...] = tuple(Step(percent=p) for p in (10, 30, 50, 100))
    exposure: Exposure = Exposure()
    alpha: float = Field(default=0.01, gt=0, le=0.2)
    # Level of the confidence sequences that must clear every margin before ADVANCE.
    certify_alpha: float = Field(default=0.05, gt=0, le=0.5)
    triggers: Triggers = Field(default_factory=lambda: Triggers.model_validate({}))
    guardrails: Guardrails = Guardrails()
    sample_ratio: SampleRatio = SampleRatio()
    stale_after: Duration = timedelta(minutes=10)
    stickiness: Literal["userId", "conversationId"] = "userId"
    notify: Notify = Notify()
    escalation: _OneLine | None = None
    # None: no gate / no watch. A plan *file* without these keys gets the defaults
    # (parse_plan fills them in); a plan stored before they existed has neither, so its
    # audit log replays exactly as it was decided.
    shadow: ShadowGate | None = None
    watch: Watch | None = None
    # None: every baseline answer is replayed (adaptive sampling is opt-in).
    replay_sampling: ReplaySampling | None = None

    @field_validator("shadow", "watch", "replay_sampling", mode="before")
    @classmethod
    def _off_or_defaults(cls, value: Any) -> Any:
        """'off' / false disable the phase; 'on' / true / {} take the defaults."""
        if value is False or value in ("off", "disabled"):
            return None
        if value is True or value == "on":
            return {}
        return value

    judge: JudgeRubric = JudgeRubric()

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        if not steps:
            raise ValueError("needs at least one step; e.g. steps: [10, 30, 50, 100]")
        for before, after in itertools.pairwise(steps):
            if after.percent <= before.percent:
                raise ValueError(
                    f"must increase strictly, but {after.percent} follows {before.percent}; "
                    "list each percentage once in increasing order, e.g. [10, 30, 50, 100]"
                )
        if steps[-1].percent != 100:
            raise ValueError(f"must end at 100, not {steps[-1].percent}; add 100 as the last step")
        return steps

    @model_validator(mode="after")
    def _models_differ(self) -> RolloutPlan:
        if self.baseline == self.candidate:
            raise ValueError(f"baseline and candidate are both {self.baseline!r}; name two models")
        return self

    @model_validator(mode="after")
    def _judged_pairs_need_a_judge(self) -> RolloutPlan:
        if self.shadow is not None and self.shadow.min_judged_pairs:
            judge = self.triggers.judge_score
            if not judge.enabled:
                raise ValueError(
                    f"shadow.min_judged_pairs is {self.shadow.min_judged_pairs} but the "
                    "judge_score trigger is off, so nothing judges pairs; turn judge_score on "
                    "(with a judge model in SHADOWCANARY_MODELS) or set min_judged_pairs: 0"
                )
        return self

    @property
    def step_percents(self) -> tuple[int, ...]:
        return tuple(step.percent for step in self.steps)

    def exposure_at(self, index: int) -> Exposure:
        """The step's minimum exposure and deadline, plan defaults filled in."""
        given = self.steps[index].model_dump(include=set(Exposure.model_fields), exclude_none=True)
        return self.exposure.model_copy(update=given)


# How to fix an out-of-range value, by field name.
_FIXES = {
    "alpha": "the false-rollback budget; use a value in (0, 0.2], e.g. 0.01",
    "certify_alpha": "use a value in (0, 0.5], e.g. 0.05",
    "percent": "a step is a percentage of users in (0, 100]",
    "alpha_share": "a fraction of alpha in (0, 1]",
    "margin": "rates and quality take a fraction, e.g. 0.02 for 2 points",
    "margin_ms": "a positive number of milliseconds, e.g. 200",
    "stickiness": "use userId or conversationId",
    "mode": "use act or dry-run (or off to disable the trigger)",
    "webhooks": "each webhook is an http(s) URL, e.g. a Slack incoming webhook",
    "baseline": "a model name as in SHADOWCANARY_MODELS (letters, digits, _ . : / @ + -)",
    "candidate": "a model name as in SHADOWCANARY_MODELS (letters, digits, _ . : / @ + -)",
    "project": "an Unleash project id: letters, digits, _ . ~ -",
    "environment": "an Unleash environment name: letters, digits, _ . ~ -",
    "escalation": "one line of at most 200 characters, e.g. '#sre-oncall'",
    "shadow": "a mapping (min_comparisons, min_judged_pairs, min_duration, deadline) or off",
    "watch": "a mapping (duration, min_baseline_replays, ...) or off",
    "replay_sampling": "a mapping (maintenance_rate, near_margin, step_warmup), on or off",
}

# Offending values are quoted in errors, but never whole: a YAML alias bomb or a
# megabyte string must not turn into a megabyte message.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = 4
_SHORT.maxlevel = 2

# What to write when a top-level field is missing.
_EXAMPLES = {
    "name": "name: checkout-gpt55  # a name for this rollout",
    "flag": "flag: checkout-model  # the Unleash feature flag that picks the model",
    "baseline": "baseline: gpt-5.2  # the model serving users today",
    "candidate": "candidate: gpt-5.5  # the model to roll out",
}


def _node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node on the path ``loc`` (a key node for a mapping entry)."""
    node, found = root, root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if entry is None:
                return found
            found, node = entry[0], entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return found
            found = node = node.value[part]
        else:
            return found
    return found


def _describe(error: ErrorDetails, loc: tuple[int | str, ...]) -> str:
    """One error as 'field: what is wrong; how to fix it'."""
    field = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden" and loc[:1] == ("triggers",) and len(loc) == 2:
        close = difflib.get_close_matches(str(loc[1]), TRIGGER_NAMES, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{field}: unknown trigger{guess}; known triggers: {', '.join(TRIGGER_NAMES)}"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{field}: unknown setting {loc[-1]!r}{hint}"
    if error["type"] == "missing":
        example = _EXAMPLES.get(str(loc[-1]), f"{loc[-1]}: <value>")
        return f"{field}: missing; add `{example}`"
    message = error["msg"].removeprefix("Value error, ")
    fix = _FIXES.get(next((str(p) for p in reversed(loc) if isinstance(p, str)), ""))
    got = _SHORT.repr(error["input"])
    return f"{field}: {message} (got {got})" + (f"; {fix}" if fix else "")


def _allowed_keys(parent: tuple[int | str, ...]) -> list[str]:
    """The settings a nested plan section accepts, for "unknown setting" errors."""
    model: Any = RolloutPlan
    for part in (p for p in parent if isinstance(p, str)):
        known = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        options = getattr(known.annotation, "__args__", (known.annotation,)) if known else ()
        model = next((o for o in options if hasattr(o, "model_fields")), None)
    return list(model.model_fields) if model is not None else []


def parse_plan(text: str, source: str = "<string>") -> RolloutPlan:
    """Validate the YAML text of a rollout plan.

    Raises:
        PlanError: naming the line and field of each problem and how to fix it.
    """
    if len(text) > MAX_PLAN_CHARS:
        raise PlanError(
            f"{source}: {len(text)} characters is far too long for a rollout plan "
            f"(limit {MAX_PLAN_CHARS})",
            hint="a plan is a page of YAML; check that this is the right file",
        )
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError as exc:
        raise _too_deep(source) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark else source
        raise PlanError(
            f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
            hint="check the indentation and quoting around that line",
        ) from exc
    if not isinstance(data, dict):
        raise PlanError(
            f"{source}: a rollout plan is a YAML mapping, got {type(data).__name__}",
            hint="start from: name, flag, baseline and candidate, one `key: value` per line",
        )
    for phase in ("shadow", "watch"):
        data.setdefault(phase, {})  # a plan file gets the gate and the watch unless it says off
    try:
        return RolloutPlan.model_validate(data)
    except RecursionError as exc:
        raise _too_deep(source) from exc
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            # Union/shorthand validators add their own names to loc; keep the YAML path.
            loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
            node = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else 1
            lines.append(f"  line {line}, {_describe(error, loc)}")
        raise PlanError(
            f"{source} is not a valid rollout plan:\n" + "\n".join(lines),
            hint="fix the lines above; every other setting has a default",
        ) from exc


def _too_deep(source: str) -> PlanError:
    return PlanError(
        f"{source}: nested too deeply to be a rollout plan",
        hint="a plan is a few levels deep; check the brackets and the indentation",
    )


def load_plan(path: str | Path) -> RolloutPlan:
    """Read and validate a rollout plan file.

    Raises:
        PlanError: the file cannot be read or is not a valid plan.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(
            f"cannot read rollout plan {str(path)!r}: {exc.strerror}",
            hint="pass the path of a YAML plan file",
        ) from exc
    except UnicodeDecodeError as exc:
        raise PlanError(
            f"rollout plan {str(path)!r} is not UTF-8 text (invalid byte at offset {exc.start})",
            hint="save the plan as UTF-8; is this the right file?",
        ) from exc
    return parse_plan(text, source=str(path))
