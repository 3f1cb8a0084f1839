"""The ``judge_score`` trigger: the candidate's net loss rate to the LLM judge, beyond noise.

Per judged pair (both orders, judge/pairwise.py) the candidate scores +1 for a loss,
0 for a tie and -1 for a win against the baseline; its mean is the *net loss rate*.
The same judge scores the baseline asked again against the baseline (the noise floor):
by symmetry its net loss rate is zero when the two baseline answers are like with
like, and anything else is a bias of the comparison itself, which must not be blamed
on the candidate. Harm is the difference of the two means:

    harm = netloss(C vs B) - netloss(B2 vs B),   V = var_C / n_C + var_N / n_N

tested with the one-sided normal-mixture mSPRT against ``margin`` (H0: harm <= margin)
and certified when the confidence sequence's upper bound is below the margin: the same
machinery as the other mean-type triggers (judge/sequential.py). Variances are
smoothed, (decisive + 1) / (n + 2) - mean^2, so a run of early ties cannot look certain.

Routes: half of the trigger's alpha tests the rollout as a whole, the other half is
split over up to ``ROUTE_TESTS`` routes, each tested the same way against the
rollout's noise floor, so a candidate worse on one route only is rolled back with that
route named in the reason.

A judge that is down or out of budget makes the trigger ``insufficient`` with that
reason (an act-mode trigger then holds the rollout); evidence of harm gathered before
it went down still rolls back.
"""

from __future__ import annotations

import math

import numpy as np

from shadowcanary.judge import sequential as seq
from shadowcanary.judge.evidence import Moments
from shadowcanary.judge.triggers import TriggerContext, TriggerResult, Verdict
from shadowcanary.plan import QualityTrigger

# Judged candidate pairs, and noise-floor pairs, before the test is run at all.
JUDGE_BURN_IN = 50
NOISE_BURN_IN = 20
# Judge health is read over this many of the newest closed minutes with judge activity.
HEALTH_MINUTES = 3
# The trigger's alpha is split in advance (Bonferroni over a fixed family): half for
# the rollout as a whole, half over at most this many routes (by name), so a candidate
# worse on one route is caught and named without a route adding false rollbacks.
ROUTE_TESTS = 10
OVERALL_ALPHA_SHARE = 0.5


def _smoothed_variance(m: Moments) -> float:
    mean = m.mean or 0.0
    return max(1e-12, (m.sq_total + 1.0) / (m.n + 2.0) - mean * mean)


def wins_ties_losses(m: Moments) -> tuple[int, int, int]:
    """Back from the moments of +1/0/-1 scores: sum = L - W, sum of squares = L + W."""
    losses = round((m.sq_total + m.total) / 2)
    wins = round((m.sq_total - m.total) / 2)
    return wins, m.n - wins - losses, losses


def judge_health(ctx: TriggerContext) -> str | None:
    """Why the judge cannot be relied on right now (None when it can)."""
    t = ctx.table
    judged = t.column("shadow.judge_diff.n") + t.column("shadow.judge_noise.n")
    failed = t.column("shadow.judge_failed")
    skipped = t.column("shadow.judge_skipped_budget")
    active = np.flatnonzero(judged + failed + skipped > 0)
    if not len(active):
        return None
    recent = active[-HEALTH_MINUTES:]
    ok, bad, spent = (int(c[recent].sum()) for c in (judged, failed, skipped))
    # A pair skipped for budget means the day's budget ran out (it only resets at 00:00
    # UTC); failures outnumbering verdicts mean the judge cannot be relied on.
    if spent:
        return (
            f"the judge's daily budget is spent ({spent} pairs not judged in the last "
            f"{len(recent)} minutes with judge activity); raise "
            "SHADOWCANARY_JUDGE__DAILY_USD_BUDGET or SHADOWCANARY_JUDGE__DAILY_TOKEN_BUDGET, "
            "or wait for tomorrow's budget"
        )
    if bad > ok:
        return (
            f"the judge is down ({bad} pairs failed to be judged, {ok} were, in the last "
            f"{len(recent)} minutes with judge activity); check the endpoint of "
            "SHADOWCANARY_JUDGE__MODEL"
        )
    return None


def evaluate_judge_score(name: str, config: QualityTrigger, ctx: TriggerContext) -> TriggerResult:
    """The judge trigger's verdict on the evidence since the rollout started."""
    c = ctx.table.moments("shadow.judge_diff")
    noise = ctx.table.moments("shadow.judge_noise")
    # The rollout-wide test spends its share of alpha; the routes spend the rest.
    threshold = 1.0 / (ctx.alpha * OVERALL_ALPHA_SHARE)

    def result(
        verdict: Verdict,
        detail: str,
        estimate: float | None = None,
        log_lambda: float = 0.0,
        lower: float | None = None,
        upper: float | None = None,
    ) -> TriggerResult:
        return TriggerResult(
            name=name,
            kind="judge",
            mode=config.mode,
            verdict=verdict,
            n_baseline=noise.n,
            n_candidate=c.n,
            baseline_value=noise.mean,
            candidate_value=c.mean,
            estimate=estimate,
            statistic=seq.e_value(log_lambda),
            threshold=threshold,
            alpha=ctx.alpha,
            margin=config.margin,
            lower=lower,
            upper=upper,
            detail=detail,
        )

    down = judge_health(ctx)
    if c.n == 0 and noise.n == 0:
        if down is not None:
            return result(Verdict.INSUFFICIENT, down)
        required = config.required
        return result(
            Verdict.INSUFFICIENT if required else Verdict.NOT_APPLICABLE, "no judged pairs"
        )
    burn_in = max(ctx.min_events, JUDGE_BURN_IN)
    if c.n < burn_in or noise.n < NOISE_BURN_IN or c.mean is None or noise.mean is None:
        waiting = (
            f"burn-in: {c.n} of {burn_in} judged pairs, {noise.n} of {NOISE_BURN_IN} "
            "noise-floor pairs"
        )
        return result(Verdict.INSUFFICIENT, f"{down}; {waiting}" if down else waiting)
    harm = c.mean - noise.mean
    noise_variance = _smoothed_variance(noise) / noise.n
    variance = _smoothed_variance(c) / c.n + noise_variance
    log_lambda = seq.msprt_one_sided_log_lambda(harm, variance, config.margin, config.margin)
    radius = seq.mixture_radius(variance, config.margin, ctx.certify_alpha)
    lower, upper = harm - radius, harm + radius
    routes = _harmful_routes(config, ctx, noise.mean, noise_variance, burn_in)
    w, t, loss = wins_ties_losses(c)
    nw, nt, nl = wins_ties_losses(noise)
    detail = (
        f"candidate vs baseline {w} wins / {t} ties / {loss} losses (net loss "
        f"{100 * c.mean:+.1f} %); baseline again vs baseline {nw}/{nt}/{nl} (noise floor "
        f"{100 * noise.mean:+.1f} %); net loss beyond the noise floor {100 * harm:+.1f} % in "
        f"[{100 * lower:+.1f} %, {100 * upper:+.1f} %], margin {100 * config.margin:g} %; "
        f"Lambda={seq.e_value(log_lambda):.3g} vs {threshold:.3g}"
    )
    if routes:
        detail = "; ".join(routes) + f" (whole rollout: {detail})"
    if log_lambda >= math.log(threshold) or routes:
        return result(Verdict.HARM, detail, harm, log_lambda, lower, upper)
    if down is not None:
        return result(Verdict.INSUFFICIENT, f"{down}; {detail}", harm, log_lambda, lower, upper)
    verdict = Verdict.CERTIFIED if upper < config.margin else Verdict.INCONCLUSIVE
    return result(verdict, detail, harm, log_lambda, lower, upper)


def _harmful_routes(
    config: QualityTrigger,
    ctx: TriggerContext,
    noise_mean: float,
    noise_variance: float,
    burn_in: int,
) -> list[str]:
    """The routes whose own net loss beyond the (rollout's) noise floor is proven harmful."""
    alpha = ctx.alpha * (1.0 - OVERALL_ALPHA_SHARE) / ROUTE_TESTS
    found = []
    for route in sorted(ctx.judge_routes, key=lambda r: r.route)[:ROUTE_TESTS]:
        m = route.candidate
        if m.n < burn_in or m.mean is None:
            continue
        harm = m.mean - noise_mean
        variance = _smoothed_variance(m) / m.n + noise_variance
        log_lambda = seq.msprt_one_sided_log_lambda(harm, variance, config.margin, config.margin)
        if log_lambda >= -math.log(alpha):
            w, t, loss = wins_ties_losses(m)
            found.append(
                f"route {route.route!r}: {w} wins / {t} ties / {loss} losses, net loss beyond "
                f"the noise floor {100 * harm:+.1f} % (margin {100 * config.margin:g} %, "
                f"Lambda={seq.e_value(log_lambda):.3g} vs {1 / alpha:.3g})"
            )
    return found
