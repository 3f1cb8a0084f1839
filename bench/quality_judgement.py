"""Does the LLM judge decide quality right? Simulated shadow gates through the real ``decide()``.

Every run is a stream of one-minute buckets of shadow evidence: ``REPLAYS_PER_MINUTE``
replayed prompts, of which ``JUDGE_SAMPLE`` are judged against the live baseline answer
and ``NOISE_SAMPLE`` have the baseline asked again (the noise floor, all judged). Each
pair is judged in both orders by the simulator's judge rule (``sim/judging.py``:
``draw_preference``, vectorised here: position bias, Gaussian reading noise, a tie
band) on the profiles' latent quality, and combined as the worker combines them
(``judge/pairwise.combine``: decisive only when it survives the swap). A similarity
score per pair is drawn too, for the similarity-only rule.

The same streams go through two plans, each with one act trigger:

- judge: ``judge_score`` (net loss rate beyond the noise floor, margin 5 points);
- similarity only: ``quality`` (similarity to the baseline beyond the noise floor).

Scenarios (candidate quality relative to the baseline's 0):

- judge A/A: a candidate as good as the baseline (the judge with 10 % position bias);
- better-but-different: better (+1) and reworded (similarity 0.45 instead of 0.97);
- worse by 10 points: a quality chosen so the candidate's net loss rate is 10 points
  above the noise floor.

A run ends at a rollback or at the horizon (``HORIZON_MINUTES``). Reported: rollback
rates, the power and median judged pairs to detect the worse candidate, and the
judge's dollars spent per decision (until the trigger certifies or rolls back).

Last stdout line: one JSON object. ``--runs 1000`` (the default) takes a few minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shadowcanary.judge.decide import DecisionKind, decide
from shadowcanary.judge.evidence import Bucket, Evidence, Moments, RolloutState, ShadowCounts
from shadowcanary.judge.triggers import Verdict
from shadowcanary.plan import RolloutPlan, parse_plan
from shadowcanary.sim.profiles import load_profiles

REPLAYS_PER_MINUTE = 500  # a busy route; a tick per 100 judged pairs
JUDGE_SAMPLE = 0.2  # SHADOWCANARY_JUDGE__SAMPLE_RATE
NOISE_SAMPLE = 0.2  # SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE
HORIZON_MINUTES = 72  # 7,200 judged candidate pairs
POSITION_BIAS = 0.1
WORSE_NET_LOSS = 0.10
# What one judge call costs at the simulated judge's prices: the system prompt, the
# prompt and two answers in, a one-line verdict out.
JUDGE_PROMPT_TOKENS = 900
JUDGE_COMPLETION_TOKENS = 30
SIMILARITY = {"baseline_again": (0.97, 0.03), "different": (0.45, 0.08), "similar": (0.95, 0.03)}
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
BASE = "name: bench\nflag: bench-model\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
OFF = "  ".join(
    f"{n}: off\n"
    for n in (
        "error_rate",
        "incomplete",
        "refusals",
        "invalid_json",
        "p99_latency",
        "ttft",
        "output_tokens",
        "cost",
        "shadow_invalid_json",
    )
)
JUDGE_PLAN = BASE + "triggers:\n  judge_score: act\n  quality: off\n  " + OFF
SIMILARITY_PLAN = BASE + "triggers:\n  quality: act\n  " + OFF


@dataclass(frozen=True)
class Judge:
    position_bias: float
    noise: float
    tie_margin: float

    def prefer_first(
        self, first_minus_second: float, rng: np.random.Generator, n: int
    ) -> np.ndarray:
        """Per call: 0 = A, 1 = B, 2 = tie (draw_preference's rule, vectorised)."""
        biased = rng.random(n) < self.position_bias
        reading = first_minus_second + rng.normal(0.0, self.noise, n)
        out = np.where(np.abs(reading) < self.tie_margin, 2, np.where(reading > 0, 0, 1))
        return np.where(biased, 0, out)

    def net_losses(self, other_minus_ref: float, rng: np.random.Generator, n: int) -> np.ndarray:
        """Per pair of the judged answer vs the reference: +1 loss, 0 tie, -1 win."""
        ref_first = self.prefer_first(-other_minus_ref, rng, n)  # A = reference
        other_first = self.prefer_first(other_minus_ref, rng, n)  # A = judged answer
        loss = (ref_first == 0) & (other_first == 1)
        win = (ref_first == 1) & (other_first == 0)
        return loss.astype(np.int64) - win.astype(np.int64)

    def expected_net_loss(self, other_minus_ref: float) -> float:
        def prefs(d: float) -> tuple[float, float]:  # P(A), P(B) for first - second = d
            a = self.position_bias + (1 - self.position_bias) * norm.sf(
                self.tie_margin, d, self.noise
            )
            b = (1 - self.position_bias) * norm.cdf(-self.tie_margin, d, self.noise)
            return a, b

        ra, rb = prefs(-other_minus_ref)
        oa, ob = prefs(other_minus_ref)
        return float(ra * ob - rb * oa)

    def quality_for_net_loss(self, target: float) -> float:
        lo, hi = -5.0, 0.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.expected_net_loss(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def _judge_profile() -> Judge:
    profile = load_profiles()["sim-judge"]
    return Judge(POSITION_BIAS, profile.judge_noise, profile.judge_tie_margin)


def _moments(values: np.ndarray) -> Moments:
    return Moments(len(values), float(values.sum()), float((values * values).sum()))


@dataclass(frozen=True)
class Scenario:
    name: str
    quality: float
    similarity: str


@dataclass(frozen=True)
class RunResult:
    judge_rolled_back: bool
    judge_pairs_at_decision: int  # candidate pairs judged when certified or rolled back
    judge_calls_at_decision: int
    similarity_rolled_back: bool


def _run(scenario: Scenario, seed: int) -> RunResult:
    rng = np.random.default_rng(seed)
    judge = _judge_profile()
    plans = {"judge": parse_plan(JUDGE_PLAN), "similarity": parse_plan(SIMILARITY_PLAN)}
    buckets: list[Bucket] = []
    rolled = {"judge": False, "similarity": False}
    decided_at: tuple[int, int] | None = None
    pairs = calls = 0
    for minute in range(HORIZON_MINUTES):
        n_c = rng.binomial(REPLAYS_PER_MINUTE, JUDGE_SAMPLE)
        n_n = rng.binomial(REPLAYS_PER_MINUTE, NOISE_SAMPLE)
        candidate = judge.net_losses(scenario.quality, rng, n_c)
        noise = judge.net_losses(0.0, rng, n_n)
        floor_mean, floor_sd = SIMILARITY["baseline_again"]
        other_mean, other_sd = SIMILARITY[scenario.similarity]
        similarity = rng.normal(other_mean, other_sd, n_n) - rng.normal(floor_mean, floor_sd, n_n)
        pairs += n_c
        calls += 2 * (n_c + n_n)
        buckets.append(
            Bucket(
                start=T0 + timedelta(minutes=minute),
                canary_percent=10.0,
                shadow=ShadowCounts(
                    similarity_diff=_moments(np.clip(similarity, -1, 1)),
                    judge_diff=_moments(candidate),
                    judge_noise=_moments(noise),
                ),
            )
        )
        now = T0 + timedelta(minutes=minute + 1, seconds=5)
        state = RolloutState(0, 10, T0, T0, baseline_p99_ms=1000.0, last_data_at=now)
        evidence = Evidence(tuple(buckets), slow_threshold_ms=1200.0)
        for rule, plan in plans.items():
            if rolled[rule] or (rule == "judge" and decided_at is not None):
                continue
            decision = decide(plan, state, evidence, now)
            if decision.kind is DecisionKind.ROLLBACK:
                rolled[rule] = True
            if rule == "judge":
                verdict = next(r for r in decision.triggers if r.name == "judge_score").verdict
                if rolled["judge"] or verdict is Verdict.CERTIFIED:
                    decided_at = (pairs, calls)
        if rolled["similarity"] and decided_at is not None:
            break
    at = decided_at or (pairs, calls)
    return RunResult(rolled["judge"], at[0], at[1], rolled["similarity"])


def _batch(args: tuple[Scenario, list[int]]) -> list[RunResult]:
    scenario, seeds = args
    return [_run(scenario, seed) for seed in seeds]


def _plan_check(plan: RolloutPlan) -> None:
    enabled = plan.triggers.enabled()
    assert len(enabled) == 1, sorted(enabled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per scenario")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    _plan_check(parse_plan(JUDGE_PLAN))
    _plan_check(parse_plan(SIMILARITY_PLAN))
    judge = _judge_profile()
    worse_quality = judge.quality_for_net_loss(WORSE_NET_LOSS)
    scenarios = [
        Scenario("judge_aa", 0.0, "similar"),
        Scenario("better_different", 1.0, "different"),
        Scenario("worse_10pct", worse_quality, "similar"),
    ]
    started = time.perf_counter()
    results: dict[str, list[RunResult]] = {}
    chunk = max(1, args.runs // (4 * args.workers))
    with ProcessPoolExecutor(args.workers) as pool:
        for scenario in scenarios:
            jobs = [
                (scenario, list(range(start, min(args.runs, start + chunk))))
                for start in range(0, args.runs, chunk)
            ]
            results[scenario.name] = [r for batch in pool.map(_batch, jobs) for r in batch]
    elapsed = time.perf_counter() - started

    def rate(name: str, judge_rule: bool = True) -> float:
        runs = results[name]
        hits = sum(r.judge_rolled_back if judge_rule else r.similarity_rolled_back for r in runs)
        return hits / len(runs)

    worse = results["worse_10pct"]
    detected = [r.judge_pairs_at_decision for r in worse if r.judge_rolled_back]
    call_usd = (JUDGE_PROMPT_TOKENS * 0.25 + JUDGE_COMPLETION_TOKENS * 2.0) / 1e6
    all_runs = [r for runs in results.values() for r in runs]
    summary = {
        "runs_per_scenario": args.runs,
        "horizon_candidate_pairs": int(HORIZON_MINUTES * REPLAYS_PER_MINUTE * JUDGE_SAMPLE),
        "worse_quality_offset": round(worse_quality, 3),
        "judge_aa_false_rollback_rate": rate("judge_aa"),
        "better_different_false_rollback_rate": rate("better_different"),
        "worse_10pct_detect_power": rate("worse_10pct"),
        "worse_10pct_median_judged_pairs": float(np.median(detected)) if detected else None,
        "similarity_only_better_different_rollback_rate": rate("better_different", False),
        "similarity_only_worse_10pct_detect_power": rate("worse_10pct", False),
        "judge_usd_per_decision": round(
            call_usd * float(np.mean([r.judge_calls_at_decision for r in all_runs])), 4
        ),
        "seconds": round(elapsed, 1),
    }
    similarity_false = summary["similarity_only_better_different_rollback_rate"]
    judge_false = summary["better_different_false_rollback_rate"]
    ratio = similarity_false / max(judge_false, 1.0 / args.runs)
    print(
        f"better-but-different rolled back: similarity-only {100 * similarity_false:.1f} % vs "
        f"judge {100 * judge_false:.1f} % (ratio >= {ratio:.0f}x, same streams); judge A/A "
        f"{100 * summary['judge_aa_false_rollback_rate']:.2f} %; worse by 10 points detected "
        f"{100 * summary['worse_10pct_detect_power']:.1f} % (similarity-only "
        f"{100 * summary['similarity_only_worse_10pct_detect_power']:.1f} %), median "
        f"{summary['worse_10pct_median_judged_pairs']} judged pairs"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
