"""Evaluate each rollback trigger of a plan on the evidence: a verdict with its numbers.

Every trigger measures *harm* so that larger is worse: a rate increase (canary minus
baseline), a tail share, a mean increase, or a quality drop below the noise floor.

- ``harm``: the anytime-valid test rejected "harm <= null" at the trigger's alpha
  (E >= 1/alpha_m). An act-mode trigger with this verdict rolls back.
- ``certified``: the confidence sequence at ``certify_alpha`` puts harm below the
  margin, with at least the minimum events per arm.
- ``inconclusive`` / ``insufficient``: neither yet (too few events or a burn-in).
- ``not_applicable``: no observations at all on either arm (e.g. no JSON traffic),
  unless the trigger is ``required``.

Rates: the rollback test is the count e-process on the rate *ratio* (valid however
the split moves); the ADVANCE bound is the normal-mixture confidence sequence on the
rate *difference* p_C - p_B (smoothed variances), because a margin in points stays
meaningful at rare rates, where a ratio cannot be bounded by a few thousand requests.
Events are counted per request, and the e-process is tempered by how clustered they
are, as measured on the data (``seq.share_dispersion``: a failed call and its SDK
retries land in one arm together and make each minute's split swing more than
binomial). Heavy users pinned to one arm are not covered: a heavy user's own rate is
a steady difference between the arms that per-minute, per-arm counts cannot tell from
the model's; that needs outcomes per stickiness key (docs/guarantees.md 7.6).

Tail latency: "p99 + margin" counts, minute by minute, the requests of *both* arms
slower than T = (baseline p99, placed again at every step) + margin, and compares the two
arms (``_tail``): a slowdown that hits both arms is no evidence of harm.

Live triggers (rates of live requests, tail, means) judge the current step's minutes
only, at ``step_alpha``: their share of alpha spent across the judged steps, so a
regression that starts at 50 % meets a fresh test and a step is certified on its own
evidence. Shadow triggers (quality, judge score, shadow JSON) keep the whole rollout:
the shadow does not change with the step. docs/guarantees.md section 7 has the account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from shadowcanary.judge import sequential as seq
from shadowcanary.judge.evidence import EvidenceTable, RouteJudgement
from shadowcanary.judge.outcome_rates import NO_OUTCOMES, OUTCOME_RATES, outcome_rate_columns
from shadowcanary.plan import (
    MeanDeltaTrigger,
    QualityTrigger,
    RateTrigger,
    RelativeMeanTrigger,
    RolloutPlan,
    TailLatencyTrigger,
    TriggerConfig,
    TriggerMode,
)

# Plug-in variances need this many observations per arm before a mean is tested.
MEAN_BURN_IN = 100
QUALITY_BURN_IN = 50


class Verdict(StrEnum):
    HARM = "harm"
    CERTIFIED = "certified"
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT = "insufficient"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class TriggerResult:
    """One trigger's verdict and the numbers behind it (stored in the audit log)."""

    name: str
    kind: str  # rate | tail | mean | relative | quality
    mode: TriggerMode
    verdict: Verdict
    n_baseline: int
    n_candidate: int
    baseline_value: float | None  # the arm's rate or mean
    candidate_value: float | None
    estimate: float | None  # harm: larger is worse
    statistic: float  # e-value (count e-process) or mixture likelihood ratio (mSPRT)
    threshold: float  # 1 / alpha_m: harm when statistic >= threshold
    alpha: float
    margin: float  # ADVANCE needs upper < margin (same scale as estimate)
    lower: float | None  # confidence sequence on harm at certify_alpha
    upper: float | None
    detail: str

    @property
    def blocks_advance(self) -> bool:
        """An act trigger without a certificate (or n/a) keeps the step where it is."""
        return self.mode is TriggerMode.ACT and self.verdict not in (
            Verdict.CERTIFIED,
            Verdict.NOT_APPLICABLE,
        )


@dataclass(frozen=True, slots=True)
class TriggerContext:
    """What every trigger evaluation needs besides its own configuration."""

    table: EvidenceTable  # closed buckets: this step's (live triggers) or the rollout's
    alpha: float  # this trigger's share of the false-rollback budget (per step if live)
    certify_alpha: float
    min_events: int  # per arm, from the current step's exposure
    slow_threshold_ms: float | None  # what the plan and state ask slow requests against
    counted_threshold_ms: float | None  # what the controller counted against
    judge_routes: tuple[RouteJudgement, ...] = ()  # the judge's pairs per route
    # Closed buckets of the whole rollout and the step each belongs to: only how events
    # cluster (``seq.share_dispersion``) is learnt from them, never harm or a certificate.
    history: EvidenceTable | None = None
    history_steps: npt.NDArray[np.float64] | None = None


_Array = npt.NDArray[np.float64]
_SIMPLE_RATES = {"error_rate": "failures", "incomplete": "truncated", "refusals": "refusals"}
_MEANS = {"ttft": "ttft_ms", "output_tokens": "completion_tokens", "cost": "cost_usd"}
_QUALITY = {"quality": "shadow.similarity_diff"}


def _rate_columns(name: str, t: EvidenceTable) -> tuple[_Array, _Array, _Array, _Array]:
    """Per bucket: candidate events and trials, baseline events and trials."""
    if name in OUTCOME_RATES:
        return outcome_rate_columns(name, t)
    if name == "shadow_invalid_json":
        return (
            t.column("shadow.candidate_json_invalid"),
            t.column("shadow.candidate_replays"),
            t.column("shadow.baseline_json_invalid"),
            t.column("shadow.baseline_replays"),
        )
    out: list[_Array] = []
    for arm in ("candidate", "baseline"):
        if name == "invalid_json":
            expected = t.column(f"{arm}.json_expected")
            invalid = t.column(f"{arm}.json_invalid") + t.column(f"{arm}.tool_schema_invalid")
            out += [np.minimum(invalid, expected), expected]
        else:
            out += [t.column(f"{arm}.{_SIMPLE_RATES[name]}"), t.column(f"{arm}.requests")]
    return out[0], out[1], out[2], out[3]


def trigger_alpha(plan: RolloutPlan, name: str) -> float:
    """The trigger's share of the plan's false-rollback budget alpha.

    Act-mode shares are normalised when they sum past 1, so the act triggers never
    spend more than alpha together (Bonferroni over e-processes: P(any false rollback)
    <= sum alpha_m <= alpha). A dry-run trigger gets the alpha it would have if it
    were switched to act, so what it records is what it would have done.
    """
    enabled = plan.triggers.enabled()
    config = enabled[name]
    shares = sum(c.alpha_share for c in enabled.values() if c.mode is TriggerMode.ACT)
    if config.mode is not TriggerMode.ACT:
        shares += config.alpha_share
    return plan.alpha * config.alpha_share / max(1.0, shares)


# Triggers on the shadow replays: the shadow sample does not depend on the step.
SHADOW_TRIGGERS = frozenset({"quality", "judge_score", "shadow_invalid_json"})


def is_live(name: str) -> bool:
    """A trigger on live canary traffic: restarted at every step (``step_alpha``)."""
    return name not in SHADOW_TRIGGERS


def judged_steps(plan: RolloutPlan) -> int:
    """Steps with canary traffic and a baseline left to compare against (0 < % < 100)."""
    return max(1, sum(1 for step in plan.steps if 0 < step.percent < 100))


def step_alpha(plan: RolloutPlan, name: str) -> float:
    """The trigger's alpha for one step: live triggers spend their share across steps.

    A live trigger's harm test restarts at every judged step on that step's minutes,
    each restart at ``trigger_alpha / judged_steps``. Each restart is an e-process of
    its own, started at a stopping time (the ADVANCE), so by Ville's inequality and the
    union bound P(any false rollback over the steps) <= trigger_alpha. Shadow triggers
    run once over the whole rollout at their full share.
    """
    alpha = trigger_alpha(plan, name)
    return alpha / judged_steps(plan) if is_live(name) else alpha


def evaluate(name: str, config: TriggerConfig, ctx: TriggerContext) -> TriggerResult:
    """The verdict of one trigger on the evidence it is handed (``ctx.table``)."""
    if isinstance(config, RateTrigger):
        return _rate(name, config, ctx)
    if isinstance(config, TailLatencyTrigger):
        return _tail(name, config, ctx)
    if isinstance(config, MeanDeltaTrigger | RelativeMeanTrigger):
        return _mean(name, config, ctx)
    if name == "judge_score":
        # Imported here: judge_score builds on this module's TriggerResult.
        from shadowcanary.judge.judge_score import evaluate_judge_score

        return evaluate_judge_score(name, config, ctx)
    return _quality(name, config, ctx)


@dataclass(frozen=True, slots=True)
class _Base:
    """The fields every result of one trigger shares."""

    name: str
    kind: str
    config: TriggerConfig
    ctx: TriggerContext
    n_baseline: int
    n_candidate: int
    margin: float
    baseline_value: float | None = None
    candidate_value: float | None = None

    def result(
        self,
        verdict: Verdict,
        detail: str,
        estimate: float | None = None,
        log_statistic: float = 0.0,
        lower: float | None = None,
        upper: float | None = None,
    ) -> TriggerResult:
        return TriggerResult(
            name=self.name,
            kind=self.kind,
            mode=self.config.mode,
            verdict=verdict,
            n_baseline=self.n_baseline,
            n_candidate=self.n_candidate,
            baseline_value=self.baseline_value,
            candidate_value=self.candidate_value,
            estimate=estimate,
            statistic=seq.e_value(log_statistic),
            threshold=1.0 / self.ctx.alpha,
            alpha=self.ctx.alpha,
            margin=self.margin,
            lower=lower,
            upper=upper,
            detail=detail,
        )

    def no_data(self, detail: str) -> TriggerResult:
        required = self.config.required
        return self.result(Verdict.INSUFFICIENT if required else Verdict.NOT_APPLICABLE, detail)

    def harm_threshold(self) -> float:
        return -math.log(self.ctx.alpha)


def _ratio(x: float, n: float) -> float | None:
    return x / n if n else None


def _rate(name: str, config: RateTrigger, ctx: TriggerContext) -> TriggerResult:
    cxs, cns, bxs, bns = _rate_columns(name, ctx.table)
    cx, cn, bx, bn = (int(a.sum()) for a in (cxs, cns, bxs, bns))
    pc, pb = _ratio(cx, cn), _ratio(bx, bn)
    base = _Base(name, "rate", config, ctx, bn, cn, config.margin, pb, pc)
    if cn == 0 and bn == 0:
        return base.no_data(NO_OUTCOMES if name in OUTCOME_RATES else "no observations")
    trials = cns + bns
    share = np.divide(cns, trials, out=np.zeros_like(trials), where=trials > 0)
    dispersion = _dispersion(name, ctx)
    log_e = seq.count_log_e(cxs, bxs, share, config.null_ratio, dispersion=dispersion)
    estimate = lower = upper = None
    if pc is not None and pb is not None:
        estimate = pc - pb
        # Clustered events carry less information: the variance grows with phi too.
        variance = dispersion * seq.rate_difference_variance(cx, cn, bx, bn)
        radius = seq.mixture_radius(variance, config.margin, ctx.certify_alpha)
        lower, upper = estimate - radius, estimate + radius
    if log_e >= base.harm_threshold():
        verdict = Verdict.HARM
    elif min(cn, bn) < ctx.min_events or upper is None:
        verdict = Verdict.INSUFFICIENT
    else:
        verdict = Verdict.CERTIFIED if upper < config.margin else Verdict.INCONCLUSIVE
    detail = (
        f"canary {cx}/{cn} ({_pct(pc)}) vs baseline {bx}/{bn} ({_pct(pb)}); "
        f"E={seq.e_value(log_e):.3g} vs {1 / ctx.alpha:.3g} for ratio > {config.null_ratio:g} "
        f"(clustering phi {dispersion:.2f}); "
        f"increase {_pct(estimate)} in [{_pct(lower)}, {_pct(upper)}], margin {_pct(config.margin)}"
    )
    return base.result(verdict, detail, estimate, log_e, lower, upper)


def _dispersion(name: str, ctx: TriggerContext) -> float:
    """How clustered this trigger's events are, learnt from the whole rollout so far."""
    table = ctx.table if ctx.history is None else ctx.history
    cxs, cns, bxs, bns = _rate_columns(name, table)
    trials = cns + bns
    share = np.divide(cns, trials, out=np.zeros_like(trials), where=trials > 0)
    groups = ctx.history_steps if ctx.history is not None else None
    return seq.share_dispersion(cxs, bxs, share, groups)


def _tail(name: str, config: TailLatencyTrigger, ctx: TriggerContext) -> TriggerResult:
    """ "p99 + margin" against the concurrent baseline: both arms' requests slower than T.

    T = the baseline quantile (frozen before the canary, placed again at every ADVANCE
    by the controller from the baseline arm's recent traffic) + ``margin_ms``; it only fixes
    *where* the arms are compared, and both arms are counted against the same T in the
    same minutes, so a slowdown of both (provider, load, incident) moves both shares
    together and is no evidence of harm, and the frozen quantile's own sampling error
    does not enter the test's alpha.

    - Rollback: the canary's share above T is shown larger than the baseline's (the
      two-arm count e-process at ratio 1, each minute at its observed split): more of
      the canary's requests than the baseline's are slower than p99 + margin.
    - Certify: the canary's excess share above T, P_C(>T) - P_B(>T), is shown below
      ``tail_excess_margin`` (0.6 point for p99) by the confidence sequence.

    A candidate whose whole tail is slower by less than the margin still has a small
    excess above T; it is usually certified before the rollback test can tell it apart
    (README, family ``p99_plus_100ms_inside_margin``), while one slower by more than
    the margin is usually rolled back first (``p99_plus_250ms``): the margin places the
    comparison, it is not an indifference zone (docs/guarantees.md 7.9).
    """
    t = ctx.table
    cxs, cns = t.column("candidate.slow"), t.column("candidate.latency_ms.n")
    bxs, bns = t.column("baseline.slow"), t.column("baseline.latency_ms.n")
    cx, cn, bx, bn = (int(a.sum()) for a in (cxs, cns, bxs, bns))
    allowed = tail_excess_margin(config)
    base = _Base(name, "tail", config, ctx, bn, cn, allowed, _ratio(bx, bn), _ratio(cx, cn))
    wanted, counted = ctx.slow_threshold_ms, ctx.counted_threshold_ms
    if wanted is None:
        return base.result(Verdict.INSUFFICIENT, "no baseline p99 frozen yet")
    if counted is None or abs(counted - wanted) > 1e-6:
        return base.result(
            Verdict.INSUFFICIENT, f"slow requests counted at {counted} ms, need {wanted:.1f} ms"
        )
    if cn == 0 and bn == 0:
        return base.no_data("no latencies")
    trials = cns + bns
    share = np.divide(cns, trials, out=np.zeros_like(trials), where=trials > 0)
    log_e = seq.count_log_e(cxs, bxs, share, 1.0)
    estimate = lower = upper = None
    if cn and bn:
        estimate = cx / cn - bx / bn
        variance = seq.shrunk_difference_variance(cx, cn, bx, bn)
        radius = seq.mixture_radius(variance, allowed, ctx.certify_alpha)
        lower, upper = estimate - radius, estimate + radius
    if log_e >= base.harm_threshold():
        verdict = Verdict.HARM
    elif min(cn, bn) < ctx.min_events or upper is None:
        verdict = Verdict.INSUFFICIENT
    else:
        verdict = Verdict.CERTIFIED if upper < allowed else Verdict.INCONCLUSIVE
    detail = (
        f"canary {cx}/{cn} ({_pct(_ratio(cx, cn))}) vs baseline {bx}/{bn} "
        f"({_pct(_ratio(bx, bn))}) slower than {wanted:.0f} ms (baseline p99 + "
        f"{config.margin_ms:g} ms); "
        f"excess {_pct(estimate)} in [{_pct(lower)}, {_pct(upper)}], allowed {_pct(allowed)}; "
        f"E={seq.e_value(log_e):.3g} vs {1 / ctx.alpha:.3g} for canary share > baseline's"
    )
    return base.result(verdict, detail, estimate, log_e, lower, upper)


def tail_excess_margin(config: TailLatencyTrigger) -> float:
    """How much larger the canary's share above p99 + margin may be shown to be.

    0.6 of the quantile's tail (0.6 point for p99). With log-normal latencies (p99
    2.6 s, README) a canary 100 ms slower is certified and completes in 92 % of
    rollouts (``p99_plus_100ms_inside_margin``, 8 % rolled back), and one 250 ms slower
    (half a point of excess) is rolled back in 98 % (``p99_plus_250ms``).
    """
    return 0.6 * (1.0 - config.quantile)


def _mean(
    name: str, config: MeanDeltaTrigger | RelativeMeanTrigger, ctx: TriggerContext
) -> TriggerResult:
    c = ctx.table.moments(f"candidate.{_MEANS[name]}")
    b = ctx.table.moments(f"baseline.{_MEANS[name]}")
    relative = isinstance(config, RelativeMeanTrigger)
    margin = config.margin if isinstance(config, RelativeMeanTrigger) else config.margin_ms
    base = _Base(
        name, "relative" if relative else "mean", config, ctx, b.n, c.n, margin, b.mean, c.mean
    )
    if c.n == 0 and b.n == 0:
        return base.no_data("no observations")
    burn_in = max(ctx.min_events, MEAN_BURN_IN)
    if min(c.n, b.n) < burn_in or c.mean is None or b.mean is None:
        return base.result(Verdict.INSUFFICIENT, f"burn-in: {min(c.n, b.n)} of {burn_in} per arm")
    if relative and b.mean <= 0:
        return base.result(
            Verdict.INSUFFICIENT, "baseline mean is not positive; a relative margin is undefined"
        )
    # Relative margin r: test the contrast m_C - (1 + r) m_B <= 0 (linear in the means,
    # so the normal mixture applies unchanged); absolute: m_C - m_B - margin <= 0.
    scale = 1.0 + margin if relative else 1.0
    contrast = c.mean - scale * b.mean - (0.0 if relative else margin)
    variance = (c.variance or 0.0) / c.n + scale * scale * (b.variance or 0.0) / b.n
    tau = margin * b.mean if relative else margin
    log_lambda = seq.msprt_one_sided_log_lambda(contrast, variance, 0.0, tau)
    radius = seq.mixture_radius(variance, tau, ctx.certify_alpha)
    # Back on the display scale: relative increase, or milliseconds of increase.
    unit = b.mean if relative else 1.0
    estimate = c.mean / b.mean - 1.0 if relative else c.mean - b.mean
    lower, upper = margin + (contrast - radius) / unit, margin + (contrast + radius) / unit
    if log_lambda >= base.harm_threshold():
        verdict = Verdict.HARM
    else:
        verdict = Verdict.CERTIFIED if upper < margin else Verdict.INCONCLUSIVE
    shown = _pct if relative else _ms
    detail = (
        f"canary mean {c.mean:.4g} (n={c.n}) vs baseline {b.mean:.4g} (n={b.n}); increase "
        f"{shown(estimate)} in [{shown(lower)}, {shown(upper)}], margin {shown(margin)}; "
        f"Lambda={seq.e_value(log_lambda):.3g} vs {1 / ctx.alpha:.3g}"
    )
    return base.result(verdict, detail, estimate, log_lambda, lower, upper)


def _quality(name: str, config: QualityTrigger, ctx: TriggerContext) -> TriggerResult:
    d = ctx.table.moments(_QUALITY[name])
    base = _Base(name, "quality", config, ctx, d.n, d.n, config.margin, None, d.mean)
    if d.n == 0:
        return base.no_data("no shadow pairs")
    burn_in = max(ctx.min_events, QUALITY_BURN_IN)
    if d.n < burn_in or d.mean is None:
        return base.result(Verdict.INSUFFICIENT, f"burn-in: {d.n} of {burn_in} pairs")
    # Harm is the drop below the noise floor, -mean(D); H0: drop <= margin (delta).
    # ROLLBACK <=> the CS on mean D lies below -delta; certified <=> above -delta.
    drop = -d.mean
    variance = (d.variance or 0.0) / d.n
    log_lambda = seq.msprt_one_sided_log_lambda(drop, variance, config.margin, config.margin)
    radius = seq.mixture_radius(variance, config.margin, ctx.certify_alpha)
    if log_lambda >= base.harm_threshold():
        verdict = Verdict.HARM
    else:
        verdict = Verdict.CERTIFIED if drop + radius < config.margin else Verdict.INCONCLUSIVE
    detail = (
        f"mean D = sim(C,B1) - sim(B2,B1) = {d.mean:+.4f} over {d.n} pairs; drop below the "
        f"noise floor {drop:+.4f} in [{drop - radius:+.4f}, {drop + radius:+.4f}], margin "
        f"{config.margin:g}; Lambda={seq.e_value(log_lambda):.3g} vs {1 / ctx.alpha:.3g}"
    )
    return base.result(verdict, detail, drop, log_lambda, drop - radius, drop + radius)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} ms"
