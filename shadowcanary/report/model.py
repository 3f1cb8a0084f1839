"""The figures of a rollout report: plain frozen values, rendered as HTML, Markdown or JSON.

``shadowcanary.report.data`` builds them from the store; the renderers only format
them, so every format shows the same numbers. ``None`` always means "no data yet",
never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the section's module builds on this one
    from shadowcanary.report.judge_section import JudgeSection
    from shadowcanary.report.outcomes import OutcomeSection

ARMS: tuple[str, ...] = ("baseline", "candidate")
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
DAYS_PER_MONTH = 30


@dataclass(frozen=True, slots=True)
class RolloutInfo:
    """What is migrating and where it stands."""

    name: str
    flag: str
    baseline: str
    candidate: str
    project: str
    environment: str
    status: str
    percent: int
    step_index: int
    steps: tuple[int, ...]
    started_at: datetime
    updated_at: datetime
    escalation: str | None
    # The phase in words (controller/phase_view.py): shadow gate, step, watch, complete.
    phase: str = ""
    decommission: str = ""  # when the baseline model may be turned off
    gate_rule: str = ""
    watch_rule: str = ""


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One arm's live figures over the whole report window."""

    arm: str
    model: str
    requests: int
    failures: int
    error_rate: float | None
    latency_ms: dict[float, float | None]  # quantile -> value, from the merged sketches
    latency_mean_ms: float | None
    prompt_tokens_per_request: float | None
    completion_tokens_per_request: float | None
    observed_cost_per_request_usd: float | None  # what the tap recorded, when it did


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One arm in one time bucket."""

    start: datetime
    requests: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class StepMark:
    """A change of the flag's percentage, from the audit log."""

    at: datetime
    from_percent: int | None
    to_percent: int
    action: str
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class ArmCost:
    """Cost per request of one model: tokens per request times the configured price."""

    arm: str
    model: str
    source: str  # "live" (served traffic), "shadow" (candidate replays) or "none"
    requests: int  # how many calls the token averages come from
    prompt_tokens: float | None
    completion_tokens: float | None
    input_usd_per_mtok: float | None  # None: the model has no configured price
    output_usd_per_mtok: float | None
    cost_per_request_usd: float | None
    price_source: str  # "settings" (list price x tokens), "observed" (recorded cost) or "none"


@dataclass(frozen=True, slots=True)
class CostProjection:
    """The migration guides' cost model (calls x tokens x price) at the observed traffic."""

    baseline: ArmCost
    candidate: ArmCost
    observed_requests: int
    observed_since: datetime | None
    observed_until: datetime | None
    requests_per_day: float | None
    delta_per_request_usd: float | None
    baseline_monthly_usd: float | None
    candidate_monthly_usd: float | None
    monthly_delta_usd: float | None
    assumption: str


@dataclass(frozen=True, slots=True)
class SimilarityHistogram:
    """Lexical similarity to the live answer: candidate replays vs the noise floor."""

    edges: tuple[float, ...]  # len(bins) + 1, from 0 to 1
    candidate: tuple[int, ...]
    noise: tuple[int, ...]
    candidate_n: int
    noise_n: int
    candidate_mean: float | None
    noise_mean: float | None


@dataclass(frozen=True, slots=True)
class TriggerPoint:
    """One trigger's numbers in one recorded decision."""

    at: datetime
    statistic: float
    threshold: float
    estimate: float | None
    lower: float | None
    upper: float | None
    verdict: str


@dataclass(frozen=True, slots=True)
class TriggerSeries:
    """A trigger's test statistic over the recorded decisions, against its threshold."""

    name: str
    kind: str
    mode: str
    margin: float
    alpha: float
    points: tuple[TriggerPoint, ...]

    @property
    def latest(self) -> TriggerPoint | None:
        return self.points[-1] if self.points else None


@dataclass(frozen=True, slots=True)
class LastDecision:
    at: datetime
    action: str
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class DivergentPair:
    """A live answer and the candidate's answer to the same prompt, redacted."""

    event_id: str
    route: str
    started_at: datetime
    similarity: float
    live_model: str
    candidate_model: str | None
    prompt: str
    live_answer: str
    candidate_answer: str


# What a tenant's report shows instead of the controller's reasons: they quote figures of
# the whole rollout (canary request counts, trigger estimates), i.e. of other tenants too.
REASON_WITHHELD = "not shown in a tenant's report (it quotes whole-rollout figures)"


@dataclass(frozen=True, slots=True)
class TenantScope:
    """A report made for one tenant: what its figures cover."""

    tenant: str
    calls: int  # the tenant's live calls in the report window (0: no such calls stored)
    retention_days: int  # raw calls, which a tenant's figures come from, are kept this long
    # The window starts at the retention cut-off, not at the rollout's start: earlier
    # calls may have been purged, so they are not counted at all.
    starts_at_retention: bool


@dataclass(frozen=True, slots=True)
class DecisionSpend:
    """The shadow traffic one recorded decision was made on (since the previous one)."""

    at: datetime
    action: str
    percent: int | None  # the flag's percentage the decision was taken at
    replays: int
    tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows."""

    rollout: RolloutInfo
    generated_at: datetime
    since: datetime
    until: datetime
    bucket_minutes: int
    arms: dict[str, ArmSummary]
    series: dict[str, tuple[SeriesPoint, ...]]
    steps: tuple[StepMark, ...]
    cost: CostProjection
    similarity: SimilarityHistogram
    triggers: tuple[TriggerSeries, ...]
    last_decision: LastDecision | None
    divergent: tuple[DivergentPair, ...]
    audit_truncated: bool  # the audit log had more entries than the report read
    # Set: every figure and text is this tenant's calls only (from raw rows, not the
    # rollups); the rollout's state and step history are the whole rollout's, the trigger
    # evidence and decision reasons are left out. tenant_scope says what was counted.
    tenant: str | None = None
    tenant_scope: TenantScope | None = None
    # Replays, tokens and dollars of shadow traffic behind each recorded decision.
    shadow_spend: tuple[DecisionSpend, ...] = ()
    # What services reported after the answers (shadowcanary.report.outcomes).
    outcomes: OutcomeSection | None = None
    # The LLM judge's verdicts (None: a tenant's report, or not read).
    judge: JudgeSection | None = None

    @property
    def has_live_data(self) -> bool:
        return any(summary.requests for summary in self.arms.values())
