"""Which of a plan's triggers nothing in this deployment can feed. Pure.

A trigger whose evidence is never produced reads "n/a" for ever: it can never fire, a
check that cannot fail. ``unfed_triggers`` names each such trigger with the setting
that would produce its evidence, so a plan is refused when it is started, not found
harmless after the rollout.
"""

from __future__ import annotations

from shadowcanary.plan import RolloutPlan, TriggerMode
from shadowcanary.settings import ENV_PREFIX, Settings

_NOISE = f"{ENV_PREFIX}REPLAY__NOISE_FLOOR_RATE"


def unfed_triggers(plan: RolloutPlan, settings: Settings) -> list[str]:
    """One message per enabled trigger nothing produces evidence for (empty: all fed)."""
    enabled = plan.triggers.enabled()
    problems: list[str] = []
    noise_rate = settings.replay.noise_floor_rate
    if "judge_score" in enabled:
        if settings.judge.model is None:
            problems.append(
                "triggers.judge_score: no judge model is configured, so nothing produces "
                f"judge verdicts; set {ENV_PREFIX}JUDGE__MODEL to a model in "
                f"{ENV_PREFIX}MODELS, or turn the trigger off (judge_score: off)"
            )
        elif not settings.judge.samples_anything:
            problems.append(
                f"triggers.judge_score: {ENV_PREFIX}JUDGE__SAMPLE_RATE is 0 (and no route "
                f"rate in {ENV_PREFIX}JUDGE__SAMPLE_RATES is above 0), so no pair is ever "
                "judged; raise it, or turn the trigger off"
            )
        if noise_rate <= 0:
            problems.append(
                f"triggers.judge_score: {_NOISE} is 0, so the judge has no noise floor "
                "(baseline against baseline) to read the candidate against; set it above "
                "0 (e.g. 0.2), or turn the trigger off"
            )
    if "quality" in enabled and noise_rate <= 0:
        problems.append(
            f"triggers.quality: {_NOISE} is 0, so no prompt is asked of the baseline twice "
            "and the similarity noise floor is never measured; set it above 0 (e.g. 0.2), "
            "or turn the trigger off (quality: off)"
        )
    cost = enabled.get("cost")
    if cost is not None and cost.mode is TriggerMode.ACT:
        unpriced = [
            model
            for model in (plan.baseline, plan.candidate)
            if model in settings.models
            and settings.models[model].input_usd_per_mtok == 0
            and settings.models[model].output_usd_per_mtok == 0
        ]
        if unpriced:
            problems.append(
                f"triggers.cost: {', '.join(unpriced)} has no price, so every call costs "
                f"$0 and a relative cost increase cannot be measured; set input_usd_per_mtok "
                f"and output_usd_per_mtok for it in {ENV_PREFIX}MODELS, or run the trigger "
                "in dry-run"
            )
    return problems
