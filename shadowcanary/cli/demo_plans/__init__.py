"""The demo's two rollouts: simulated models, plans and the scenario of each.

Built in code rather than shipped as YAML because the sizes depend on ``--fast`` and
each run gets fresh rollout names (the audit log keeps every earlier run).

The simulated models are fast (tens of milliseconds) so that a simulated minute of
traffic takes about a second; the regressing candidate starts out healthy, exactly
like ``gpt-5.5``, and only fails once the demo turns its error rate up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shadowcanary.plan import RolloutPlan, parse_plan
from shadowcanary.rollout_records import RolloutStatus

BASELINE = "gpt-5.2"
HEALTHY = "gpt-5.5"
REGRESSING = "gpt-5.5-regressing"
JUDGE = "sim-judge"
REGRESSED_ERROR_RATE = 0.15  # HTTP 500s from the regressing candidate once it regresses
REGRESS_AT_PERCENT = 30  # the regression starts once this step is reached

_PRICES = {
    BASELINE: (1.75, 14.0),
    HEALTHY: (5.0, 30.0),
    REGRESSING: (5.0, 30.0),
    JUDGE: (0.25, 2.0),
}


def _candidate_profile(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "median_ms": 12,
        "p99_ms": 45,
        "diverge_from": BASELINE,
        "divergence": 0.02,
        "verbosity": 1.1,
        # Somewhat better answers than the baseline's, as the judge sees them.
        "quality": 0.5,
        "input_usd_per_mtok": _PRICES[HEALTHY][0],
        "output_usd_per_mtok": _PRICES[HEALTHY][1],
    }


def sim_profiles() -> dict[str, dict[str, Any]]:
    """The simulator's models: fast baseline, a healthy candidate, a soon-to-regress one."""
    return {
        BASELINE: {
            "description": "baseline (simulated)",
            "median_ms": 10,
            "p99_ms": 40,
            "input_usd_per_mtok": _PRICES[BASELINE][0],
            "output_usd_per_mtok": _PRICES[BASELINE][1],
        },
        HEALTHY: _candidate_profile("healthy candidate (simulated)"),
        REGRESSING: _candidate_profile("candidate that regresses mid-rollout (simulated)"),
        JUDGE: {
            "description": "pairwise LLM judge (simulated): prefers the better answer",
            "role": "judge",
            "median_ms": 15,
            "p99_ms": 60,
            "judge_position_bias": 0.1,
            "judge_noise": 0.5,
            "judge_tie_margin": 0.25,
            "input_usd_per_mtok": _PRICES[JUDGE][0],
            "output_usd_per_mtok": _PRICES[JUDGE][1],
        },
        "text-embedding-3-small": {"median_ms": 2, "p99_ms": 10},
    }


def models_json(base_url: str) -> str:
    """``SHADOWCANARY_MODELS``: the models and the judge, all served by the simulator."""
    return json.dumps(
        {
            name: {"base_url": base_url, "input_usd_per_mtok": i, "output_usd_per_mtok": o}
            for name, (i, o) in _PRICES.items()
        }
    )


@dataclass(frozen=True, slots=True)
class Scenario:
    """One rollout of the demo and what happens to its candidate."""

    name: str
    flag: str
    candidate: str
    story: str
    expected: RolloutStatus  # where the rollout should end
    regress_at_percent: int | None = None  # None: stays healthy


def scenarios(run_id: str) -> tuple[Scenario, Scenario]:
    """The healthy rollout and the regressing one, named for this run."""
    return (
        Scenario(
            name=f"demo-healthy-{run_id}",
            flag=f"demo-healthy-{run_id}-flag",
            candidate=HEALTHY,
            story="healthy: should go 10 -> 30 -> 50 -> 100 % and complete",
            expected=RolloutStatus.COMPLETED,
        ),
        Scenario(
            name=f"demo-regressing-{run_id}",
            flag=f"demo-regressing-{run_id}-flag",
            candidate=REGRESSING,
            story=f"errors jump to {REGRESSED_ERROR_RATE:.0%} at {REGRESS_AT_PERCENT} %: "
            "should roll back to 0 %",
            expected=RolloutStatus.ROLLED_BACK,
            regress_at_percent=REGRESS_AT_PERCENT,
        ),
    )


def demo_plan(scenario: Scenario, *, min_canary: int) -> RolloutPlan:
    """A plan sized for the demo: ``min_canary`` canary requests and 10 s per step, a
    one-minute shadow gate and a two-minute watch.

    Margins are wide (5 points, 10 for JSON, 300 ms: the simulator's latency is noisy under
    the demo's load) so that a healthy candidate certifies with a
    few hundred requests; a real plan uses tighter margins and far more traffic.
    """
    text = f"""
name: {scenario.name}
flag: {scenario.flag}
baseline: {BASELINE}
candidate: {scenario.candidate}
unleash: {{environment: development}}
exposure: {{min_canary_requests: {min_canary}, min_events_per_arm: 25, min_duration: 10s,
            deadline: 1h}}
sample_ratio: {{grace: 0s}}
triggers:
  error_rate: {{margin: 0.05}}
  incomplete: {{margin: 0.05}}
  refusals: {{margin: 0.05}}
  invalid_json: {{margin: 0.10}}  # only the extraction route asks for JSON: few events
  shadow_invalid_json: {{margin: 0.10}}
  p99_latency: {{margin_ms: 300, quantile: 0.95}}
  quality: {{margin: 0.05}}
  judge_score: dry-run  # the LLM judge's verdicts, recorded and shown, not acted on
# Time-compressed: a real plan keeps the defaults (7 d of shadow traffic, a 24 h watch).
shadow: {{min_comparisons: 100, min_duration: 1m, deadline: 1h}}
watch: {{duration: 2m, min_baseline_replays: 20}}
escalation: "#llm-oncall (demo)"
"""
    return parse_plan(text, source=f"demo:{scenario.name}")
