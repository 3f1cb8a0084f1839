"""How good is the judge? Simulated rollouts through ``decide()`` vs a fixed-threshold rule.

Every run is a stream of one-minute buckets (600 requests a minute, 1 % errors on the
baseline; truncations, refusals, JSON, latency, TTFT, tokens, cost and shadow quality
all simulated, so every default trigger is live and spends its share of alpha). The
canary percentage follows ``decide()``: ADVANCE moves it, ROLLBACK is recorded and the
stream goes on at the same percentage so both rules can be timed on the same buckets.

On the very same buckets a Flagger-style rule runs: a check per 1-minute window that
fails when the canary's error rate is above 2 % (the guides' "error_rate > 2 %") or the
window has no canary requests (Flagger's "no values found"), and a rollback after
``THRESHOLD_RULE_FAILED_CHECKS`` failed checks (Flagger's ``analysis.threshold``).

- A/A: candidate = baseline. False rollbacks over the whole rollout; canary requests
  each step needed before ADVANCE (certification).
- Regression: the candidate fails 3 % of requests from the 10 % step on. Canary
  requests until each rule rolls back.

Then the production-shaped families of ``bench/judge_families.py`` (shared slowdowns,
daily load, shared incidents, retry chains, heavy sticky users, a regression that
starts at 50 %, p99 +250 ms, an increase inside the margin), ``--family-runs`` each,
with ``examples/rollout.yaml`` as the plan, as a table with 95 % intervals.

Last stdout line: one JSON object (see ``summary`` and ``judge_families.headline``).
Runs in about 40 minutes with the defaults on the 2-vCPU VM at a load average of 8-14.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import judge_families
from shadowcanary.judge.decide import DecisionKind, decide, slow_threshold_ms
from shadowcanary.judge.evidence import (
    ArmCounts,
    Bucket,
    Evidence,
    Moments,
    RolloutState,
    ShadowCounts,
)
from shadowcanary.plan import RolloutPlan, parse_plan

REQUESTS_PER_MINUTE = 600
BASELINE_ERROR_RATE = 0.01
REGRESSED_ERROR_RATE = 0.03
DETECT_WITHIN = 1500  # canary requests (docs/judge.md target)
THRESHOLD_RULE_MAX_ERROR_RATE = 0.02
THRESHOLD_RULE_FAILED_CHECKS = 5
# Regression streams run this far (canary requests) so slow rules can be timed too.
REGRESSION_HORIZON = 6000
AA_HORIZON = timedelta(hours=8)
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
BASELINE_P99_MS = 1800.0

PLAN_YAML = """\
name: bench
flag: bench-model
baseline: gpt-5.2
candidate: gpt-5.5
"""


@dataclass(frozen=True)
class Profile:
    """Per-request behaviour of one arm."""

    error_rate: float = BASELINE_ERROR_RATE
    truncated: float = 0.02
    refusals: float = 0.005
    json_share: float = 0.2
    json_invalid: float = 0.01
    slow: float = 0.004  # share above baseline p99 + 200 ms
    latency: tuple[float, float] = (800.0, 300.0)
    ttft: tuple[float, float] = (300.0, 100.0)
    tokens: tuple[float, float] = (250.0, 120.0)
    cost: tuple[float, float] = (0.002, 0.001)


def _moments(rng: np.random.Generator, n: int, mean: float, sd: float) -> Moments:
    """Sum and square sum of n normal values, drawn from their exact distribution."""
    if n == 0:
        return Moments()
    sample_mean = rng.normal(mean, sd / math.sqrt(n))
    sum_sq_dev = sd * sd * rng.chisquare(n - 1) if n > 1 else 0.0
    return Moments(n, n * sample_mean, sum_sq_dev + n * sample_mean * sample_mean)


def _arm(rng: np.random.Generator, n: int, p: Profile) -> ArmCounts:
    failures = int(rng.binomial(n, p.error_rate))
    ok = n - failures
    json_expected = int(rng.binomial(ok, p.json_share))
    return ArmCounts(
        requests=n,
        failures=failures,
        truncated=int(rng.binomial(ok, p.truncated)),
        refusals=int(rng.binomial(ok, p.refusals)),
        json_expected=json_expected,
        json_invalid=int(rng.binomial(json_expected, p.json_invalid)),
        slow=int(rng.binomial(n, p.slow)),
        latency_ms=_moments(rng, n, *p.latency),
        ttft_ms=_moments(rng, ok, *p.ttft),
        completion_tokens=_moments(rng, ok, *p.tokens),
        cost_usd=_moments(rng, ok, *p.cost),
    )


def _bucket(rng: np.random.Generator, start: datetime, percent: int, candidate: Profile) -> Bucket:
    total = int(rng.poisson(REQUESTS_PER_MINUTE))
    canary = int(rng.binomial(total, percent / 100))
    pairs = int(rng.poisson(12))  # 2 % of traffic replayed with a noise-floor sample
    replays = int(rng.poisson(30))
    return Bucket(
        start=start,
        canary_percent=percent,
        baseline=_arm(rng, total - canary, Profile()),
        candidate=_arm(rng, canary, candidate),
        shadow=ShadowCounts(
            similarity_diff=_moments(rng, pairs, 0.0, 0.08),
            candidate_replays=replays,
            candidate_json_invalid=int(rng.binomial(replays // 5, 0.01)),
            baseline_replays=replays,
            baseline_json_invalid=int(rng.binomial(replays // 5, 0.01)),
        ),
    )


@dataclass
class RunResult:
    judge_rollback_at: float = math.inf  # cumulative canary requests at the first ROLLBACK
    # Cumulative canary requests at each failed check of the threshold rule: on its own
    # schedule (each step until its minimum exposure) and on every bucket of the stream.
    rule_failed_at: list[int] = field(default_factory=list)
    rule_failed_at_all: list[int] = field(default_factory=list)
    certified_at: list[int] = field(default_factory=list)  # canary requests in step at ADVANCE
    beyond_exposure: list[int] = field(default_factory=list)  # ... after minimum exposure was met
    completed: bool = False
    ticks: int = 0

    def rule_rollback_at(self, failed_checks: int, own_schedule: bool = True) -> float:
        failed = self.rule_failed_at if own_schedule else self.rule_failed_at_all
        return failed[failed_checks - 1] if len(failed) >= failed_checks else math.inf


def run(seed: int, regression: bool, plan: RolloutPlan) -> RunResult:
    """One rollout: decide() every minute on the growing evidence, the rule alongside."""
    rng = np.random.default_rng(seed)
    candidate = Profile(error_rate=REGRESSED_ERROR_RATE) if regression else Profile()
    state = RolloutState(0, plan.steps[0].percent, T0, T0, BASELINE_P99_MS, None)
    threshold = slow_threshold_ms(plan, state)
    buckets: list[Bucket] = []
    result = RunResult()
    canary_total = step_canary = step_minutes = 0
    exposed_at: int | None = None  # step canary requests when minimum exposure was met
    minute = 0
    while True:
        start = T0 + timedelta(minutes=minute)
        bucket = _bucket(rng, start, state.step_percent, candidate)
        buckets.append(bucket)
        canary_total += bucket.candidate.requests
        step_canary += bucket.candidate.requests
        step_minutes += 1
        # The Flagger-style rule: one check per closed 1-minute window. On its own
        # schedule it checks a step only until the step's minimum exposure is met.
        exposure = plan.exposure_at(state.step_index)
        c = bucket.candidate
        if c.requests == 0 or c.failures / c.requests > THRESHOLD_RULE_MAX_ERROR_RATE:
            result.rule_failed_at_all.append(canary_total)
            if regression or exposed_at is None:
                result.rule_failed_at.append(canary_total)
        if (
            exposed_at is None
            and step_canary >= exposure.min_canary_requests
            and (timedelta(minutes=step_minutes) >= exposure.min_duration)
        ):
            exposed_at = step_canary
        minute += 1
        now = T0 + timedelta(minutes=minute, seconds=5)
        if regression and result.judge_rollback_at < math.inf:
            # The judge has spoken; keep the stream going to time the rule on it.
            if canary_total > REGRESSION_HORIZON:
                return result
            continue
        state = RolloutState(
            state.step_index,
            state.step_percent,
            T0,
            state.step_started_at,
            BASELINE_P99_MS,
            now - timedelta(seconds=5),
        )
        decision = decide(plan, state, Evidence(tuple(buckets), threshold), now)
        result.ticks += 1
        if decision.kind is DecisionKind.ROLLBACK and result.judge_rollback_at == math.inf:
            result.judge_rollback_at = canary_total
        elif decision.kind is DecisionKind.ADVANCE:
            result.certified_at.append(step_canary)
            result.beyond_exposure.append(step_canary - (exposed_at or step_canary))
            step_canary = step_minutes = 0
            exposed_at = None
            index = state.step_index + 1
            state = RolloutState(index, plan.steps[index].percent, T0, now, BASELINE_P99_MS, None)
        elif decision.kind is DecisionKind.COMPLETE:
            result.completed = True
            return result
        if (regression and canary_total > REGRESSION_HORIZON) or now - T0 > AA_HORIZON:
            return result


def _run_batch(args: tuple[list[int], bool]) -> list[RunResult]:
    seeds, regression = args
    plan = parse_plan(PLAN_YAML)
    return [run(seed, regression, plan) for seed in seeds]


def _parallel(seeds: list[int], regression: bool, workers: int) -> list[RunResult]:
    chunks = [seeds[i :: workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        batches = pool.map(_run_batch, [(chunk, regression) for chunk in chunks])
        return [r for batch in batches for r in batch]


def _families(runs: int, seed: int, workers: int) -> dict[str, dict[str, object]]:
    """Every production-shaped family (bench/judge_families.py), ``runs`` rollouts each."""
    if runs <= 0:
        return {}
    jobs = [
        (family.name, [seed + 20_000_000 + 1_000_000 * k + i for i in range(j, runs, 4)])
        for k, family in enumerate(judge_families.FAMILIES)
        for j in range(4)
    ]
    results: dict[str, list[judge_families.Outcome]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for (name, _), outs in zip(jobs, pool.map(judge_families.run_batch, jobs), strict=True):
            results.setdefault(name, []).extend(outs)
    return judge_families.summarise(results)


def _matched_failed_checks(aa: list[RunResult], target: float) -> int:
    """The fewest failed checks for which the rule's A/A false rollbacks are <= target."""
    counts = np.array([len(r.rule_failed_at) for r in aa])
    return next(n for n in range(1, 1000) if np.mean(counts >= n) <= target)


def summary(aa: list[RunResult], reg: list[RunResult]) -> dict[str, float | int]:
    n = THRESHOLD_RULE_FAILED_CHECKS
    judge_detect = np.array([r.judge_rollback_at for r in reg])
    rule_detect = np.array([r.rule_rollback_at(n) for r in reg])
    certified = np.array([c for r in aa for c in r.certified_at], dtype=float)
    beyond = np.array([c for r in aa for c in r.beyond_exposure], dtype=float)
    # The first step is where certification waits on data; later ones reuse its evidence.
    first = np.array([r.beyond_exposure[0] for r in aa if r.beyond_exposure], dtype=float)
    judge_aa = float(np.mean([r.judge_rollback_at < math.inf for r in aa]))
    matched = _matched_failed_checks(aa, max(judge_aa, 0.01))
    matched_detect = np.array([r.rule_rollback_at(matched) for r in reg])

    def median(values: np.ndarray) -> float:
        return float(np.median(values)) if len(values) else math.inf

    def percentile(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else math.inf

    return {
        "aa_false_rollback_rate": judge_aa,
        "detect_1to3pct_power": float(np.mean(judge_detect <= DETECT_WITHIN)),
        "detect_1to3pct_median_canary_requests": median(judge_detect),
        "certify_median_canary_requests": median(certified),
        "threshold_rule_aa_false_rollback_rate": float(
            np.mean([r.rule_rollback_at(n) < math.inf for r in aa])
        ),
        "threshold_rule_detect_median_canary_requests": median(rule_detect),
        "runs": len(aa) + len(reg),
        # Context for the figures above.
        "detect_1to3pct_p90_canary_requests": float(np.percentile(judge_detect, 90)),
        "certify_median_canary_requests_beyond_min_exposure": median(beyond),
        "certify_first_step_median_beyond_min_exposure": median(first),
        "certify_first_step_p90_beyond_min_exposure": percentile(first, 90),
        "aa_completed_rate": float(np.mean([r.completed for r in aa])),
        "threshold_rule_failed_checks": n,
        "threshold_rule_detect_power": float(np.mean(rule_detect <= DETECT_WITHIN)),
        "threshold_rule_aa_false_rollback_rate_same_duration": float(
            np.mean([r.rule_rollback_at(n, own_schedule=False) < math.inf for r in aa])
        ),
        "threshold_rule_matched_failed_checks": matched,
        "threshold_rule_matched_detect_power": float(np.mean(matched_detect <= DETECT_WITHIN)),
        "threshold_rule_matched_detect_median_canary_requests": median(matched_detect),
        "aa_runs": len(aa),
        "regression_runs": len(reg),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa-runs", type=int, default=1000)
    parser.add_argument("--regression-runs", type=int, default=1000)
    parser.add_argument(
        "--family-runs", type=int, default=300, help="rollouts per production-shaped family"
    )
    parser.add_argument("--seed", type=int, default=20260701)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    started = time.perf_counter()
    aa = _parallel([args.seed + i for i in range(args.aa_runs)], False, args.workers)
    reg_seeds = [args.seed + 10_000_000 + i for i in range(args.regression_runs)]
    reg = _parallel(reg_seeds, True, args.workers)
    result = summary(aa, reg)
    families = _families(args.family_runs, args.seed, args.workers)
    elapsed = time.perf_counter() - started
    steps = np.array([r.certified_at for r in aa if len(r.certified_at) == 3], dtype=float)
    print(
        f"{len(aa)} A/A and {len(reg)} regression rollouts in {elapsed:.0f} s "
        f"({sum(r.ticks for r in aa + reg)} decide() calls)"
    )
    r = result
    print(
        f"A/A false rollbacks: judge {r['aa_false_rollback_rate']:.2%}; threshold rule "
        f"({THRESHOLD_RULE_FAILED_CHECKS} failed checks) "
        f"{r['threshold_rule_aa_false_rollback_rate']:.2%} on its own schedule, "
        f"{r['threshold_rule_aa_false_rollback_rate_same_duration']:.2%} over the judge's rollout"
    )
    print(
        f"1 % -> 3 % at 10 %: judge detects {r['detect_1to3pct_power']:.1%} within "
        f"{DETECT_WITHIN} canary requests (median {r['detect_1to3pct_median_canary_requests']:.0f}"
        f"); threshold rule {r['threshold_rule_detect_power']:.1%} "
        f"(median {r['threshold_rule_detect_median_canary_requests']:.0f})"
    )
    print(
        f"threshold rule held to <= {max(r['aa_false_rollback_rate'], 0.01):.0%} A/A false "
        f"rollbacks needs {r['threshold_rule_matched_failed_checks']} failed checks: detects "
        f"{r['threshold_rule_matched_detect_power']:.1%} within {DETECT_WITHIN} "
        f"(median {r['threshold_rule_matched_detect_median_canary_requests']:.0f})"
    )
    if len(steps):
        per_step = np.median(steps, axis=0)
        medians = ", ".join(f"{p} %: {m:.0f}" for p, m in zip((10, 30, 50), per_step, strict=True))
        print(
            f"certified after (median canary requests per step) {medians}; beyond the minimum "
            f"exposure at the first step: median "
            f"{r['certify_first_step_median_beyond_min_exposure']:.0f}, "
            f"p90 {r['certify_first_step_p90_beyond_min_exposure']:.0f}"
        )
    print(judge_families.table(families))
    for name, row in families.items():
        print(f"{name}: rolled back by {row['rolled_back_by']}")
    print(json.dumps({**result, **(judge_families.headline(families) if families else {})}))


if __name__ == "__main__":
    main()
