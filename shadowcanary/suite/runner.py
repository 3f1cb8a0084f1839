"""Send every case to the baseline and the candidate, ``repeats`` times each.

Calls go through the same ``openai`` SDK adapter the shadow replays use
(``replay.openai_call.call_model``), concurrently up to a bound, and never raise
for a model's error: a failed call is a result too (it counts against the arm's
success rate). Cases recorded from live traffic already carry the baseline's answer,
so only the candidate is called for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import openai
import structlog

from shadowcanary.errors import ConfigError, ShadowCanaryError
from shadowcanary.judge.types import CallOutput
from shadowcanary.replay.openai_call import call_model
from shadowcanary.settings import Settings
from shadowcanary.suite.cases import SuiteCase

log = structlog.get_logger(__name__)

# The SDK's own retries smooth over a transient 429/5xx: an offline suite has no
# queue to retry from, and one blip should not read as a regression.
_SDK_RETRIES = 2
_MAX_ERROR_CHARS = 300


class SuiteArm(StrEnum):
    BASELINE = "baseline"
    CANDIDATE = "candidate"


@dataclass(frozen=True, slots=True)
class CallResult:
    """One answer (or failure) of one arm to one case, for one repeat."""

    case_id: str
    arm: SuiteArm
    repeat: int
    output: CallOutput | None
    error: str | None = None  # "UpstreamTimeout: gpt-5.5: timed out"


@dataclass(frozen=True, slots=True)
class _Job:
    case: SuiteCase
    arm: SuiteArm
    model: str
    repeat: int


def planned_calls(cases: Sequence[SuiteCase], repeats: int) -> int:
    """How many model calls ``run_cases`` will make (for a progress bar)."""
    return sum(repeats * (1 if case.recorded_baseline else 2) for case in cases)


def require_answers(results: Sequence[CallResult], models: Mapping[SuiteArm, str]) -> None:
    """Raise when an arm answered nothing: a broken endpoint, not a verdict on the model.

    Raises:
        ConfigError: naming the arm, its model and its first error.
    """
    for arm, model in models.items():
        mine = [r for r in results if r.arm is arm]
        if mine and all(r.output is None for r in mine):
            raise ConfigError(
                f"{arm.value} {model} answered none of {len(mine)} calls: {mine[0].error}",
                hint=f"check the endpoint of {model} in SHADOWCANARY_MODELS",
            )


def _jobs(cases: Sequence[SuiteCase], baseline: str, candidate: str, repeats: int) -> list[_Job]:
    # Interleaved arms: both see the same stretch of provider latency.
    jobs = []
    for repeat in range(repeats):
        for case in cases:
            if case.recorded_baseline is None:
                jobs.append(_Job(case, SuiteArm.BASELINE, baseline, repeat))
            jobs.append(_Job(case, SuiteArm.CANDIDATE, candidate, repeat))
    return jobs


def _client(settings: Settings, model: str) -> openai.AsyncOpenAI:
    endpoint = settings.endpoint(model)
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key.get_secret_value(),
        timeout=endpoint.timeout_s,
        max_retries=_SDK_RETRIES,
    )


async def run_cases(
    cases: Sequence[SuiteCase],
    *,
    settings: Settings,
    baseline: str,
    candidate: str,
    repeats: int,
    concurrency: int,
    on_result: Callable[[CallResult], None] | None = None,
) -> list[CallResult]:
    """Every call's result, recorded baselines included (as repeat 0).

    Raises:
        UnknownModel: ``baseline`` or ``candidate`` has no configured endpoint.
    """
    if repeats < 1 or concurrency < 1:
        raise ValueError("repeats and concurrency must be at least 1")
    jobs = _jobs(cases, baseline, candidate, repeats)
    models = {job.model for job in jobs}
    clients = {model: _client(settings, model) for model in sorted(models)}
    limit = asyncio.Semaphore(concurrency)
    results = [
        CallResult(case.case_id, SuiteArm.BASELINE, 0, case.recorded_baseline)
        for case in cases
        if case.recorded_baseline is not None
    ]

    async def run(job: _Job) -> CallResult:
        endpoint = settings.endpoint(job.model)
        async with limit:
            try:
                output = await call_model(
                    clients[job.model],
                    model=job.model,
                    upstream_model=endpoint.upstream_model or job.model,
                    request=job.case.request,
                    stream=False,
                    cost_per_token=(
                        endpoint.input_usd_per_mtok / 1e6,
                        endpoint.output_usd_per_mtok / 1e6,
                    ),
                )
                result = CallResult(job.case.case_id, job.arm, job.repeat, output)
            except ShadowCanaryError as exc:
                error = f"{type(exc).__name__}: {exc.message}"[:_MAX_ERROR_CHARS]
                result = CallResult(job.case.case_id, job.arm, job.repeat, None, error)
        if on_result is not None:
            on_result(result)
        return result

    try:
        results.extend(await asyncio.gather(*(run(job) for job in jobs)))
    finally:
        for client in clients.values():
            await client.close()
    failed = sum(1 for r in results if r.output is None)
    log.info("suite calls done", calls=len(jobs), failed=failed, models=sorted(models))
    return results
