"""Replay captured prompts against the candidate and compare with the live answer.

For each captured baseline call the candidate model gets the same request (C). On a
deterministic sample the baseline gets it a second time too (B2): the noise floor, so
a candidate difference only counts beyond the baseline's difference from itself.
A sample of candidate-arm live calls goes to the baseline model (the rollback target),
so the watch after 100 % knows the model a rollback would return to still answers.
Tool calls in either answer are recorded and compared, never executed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from shadowcanary.errors import (
    NotReplayable,
    PermanentError,
    TransientError,
    UpstreamRateLimited,
)
from shadowcanary.events import Arm, CapturedCall, now_utc
from shadowcanary.judge import compare, output_from_capture
from shadowcanary.judge.types import CallOutput
from shadowcanary.replay.event_loop import ReplayResources, ReplayRuntime
from shadowcanary.replay.openai_call import call_model
from shadowcanary.settings import Settings
from shadowcanary.shadow_results import DeadLetter, ReplayKind, ReplayRecord, ReplayStatus
from shadowcanary.store.candidates import RolloutCandidates
from shadowcanary.store.repository import Store

log = structlog.get_logger(__name__)

_DEFAULT_OUTPUT_TOKENS = 256


def in_noise_sample(event_id: str, rate: float) -> bool:
    """Deterministic: the same event is in the noise-floor sample on every delivery."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < rate


def estimate_tokens(event: CapturedCall) -> int:
    """Tokens a replay will likely use, for the shared TPM limiter (before we know)."""
    prompt = event.prompt_tokens or max(1, len(event.prompt_text()) // 4)
    parameters = event.request.parameters
    max_tokens = (
        parameters.get("max_tokens")
        or parameters.get("max_completion_tokens")
        or parameters.get("max_output_tokens")
    )
    output = event.completion_tokens or (max_tokens if isinstance(max_tokens, int) else None)
    return prompt + (output or _DEFAULT_OUTPUT_TOKENS)


def _skipped(event_id: str, kind: ReplayKind, attempt: int, reason: str | None) -> ReplayRecord:
    return ReplayRecord(
        event_id=event_id,
        kind=kind,
        status=ReplayStatus.SKIPPED_BUDGET,
        output=None,
        comparison=None,
        attempts=attempt,
        error_class="BudgetExhausted",
        error_message=reason,
    )


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one replay task achieved; ``retry`` holds the events a later attempt may fix."""

    recorded: int
    skipped_budget: int
    missing: tuple[str, ...]
    retry: Mapping[str, TransientError] = field(default_factory=dict)
    # Every finished replay of the batch (recorded now or raced by a redelivery).
    records: tuple[ReplayRecord, ...] = ()
    # Events of ``retry`` whose candidate answered (now or before): only their
    # noise-floor replay failed, which is evidence about the baseline, not their outcome.
    noise_only: frozenset[str] = frozenset()
    # Events of ``retry`` that were rollback-target replays (a live candidate call sent to
    # the baseline): given up, their failure is stored as evidence, never dead-lettered.
    target_only: frozenset[str] = frozenset()

    @property
    def retry_after_s(self) -> float | None:
        """The longest Retry-After the provider asked for among the events to retry."""
        waits = [
            e.retry_after_s
            for e in self.retry.values()
            if isinstance(e, UpstreamRateLimited) and e.retry_after_s is not None
        ]
        return max(waits) if waits else None


class ReplayService:
    """Replays batches of captured events; synchronous facade over the async runtime."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: ReplayRuntime,
        *,
        candidates: RolloutCandidates | None = None,
        clock: Callable[[], datetime] = now_utc,
        baseline_again: Callable[[CapturedCall], bool] | None = None,
    ) -> None:
        self._settings = settings
        # Events that need the baseline asked again besides the noise sample (the judge's
        # redacted prompts: replay/judging.py).
        self._baseline_again = baseline_again
        self._store = store
        self._runtime = runtime
        self._candidates = candidates
        self._clock = clock

    def replay(self, event_ids: Sequence[str], *, attempt: int) -> BatchOutcome:
        """Replay every event not yet replayed, record results, report what to retry."""
        captures, done = self._store.replay_work(event_ids)
        missing = tuple(i for i in event_ids if i not in captures)
        if missing:
            # Purged by retention before its replay ran, or never ingested: nothing to compare.
            log.warning("replay.captures_missing", count=len(missing))
        work = {
            event_id: kinds
            for event_id, event in captures.items()
            if (kinds := self._kinds_needed(event, done))
        }
        candidate_of = (
            self._candidates.models_for(e.rollout for e in captures.values())
            if self._candidates is not None
            else {}
        )
        records, failed = self._runtime.run(self._replay_all(captures, work, attempt, candidate_of))
        retry: dict[str, TransientError] = {}
        noise_only: set[str] = set()
        target_only: set[str] = set()
        for (event_id, kind), error in failed.items():
            # The candidate's error is the one to report when both failed.
            if kind is ReplayKind.CANDIDATE or event_id not in retry:
                retry[event_id] = error
            if kind is ReplayKind.ROLLBACK_TARGET:
                target_only.add(event_id)
        for event_id in retry:
            if (event_id, ReplayKind.NOISE) in failed and (
                event_id,
                ReplayKind.CANDIDATE,
            ) not in failed:
                noise_only.add(event_id)
        recorded = self._store.record_replays(records, recorded_at=self._clock())
        skipped = sum(1 for r in records if r.status is ReplayStatus.SKIPPED_BUDGET)
        return BatchOutcome(
            recorded=recorded,
            skipped_budget=skipped,
            missing=missing,
            retry=retry,
            records=tuple(records),
            noise_only=frozenset(noise_only),
            target_only=frozenset(target_only),
        )

    def give_up(self, outcome: BatchOutcome, *, attempts: int) -> int:
        """After the last attempt: dead-letter the events still to retry; returns how many.

        An event whose candidate answered is not dead-lettered for its noise-floor
        replay: that replay is stored as failed (the noise sample misses it), and the
        candidate comparison stays the event's one outcome. An event that already has
        its outcome (a redelivered copy settled it) gets no second one.
        """
        now = self._clock()
        evidence_only = {e: ReplayKind.NOISE for e in outcome.noise_only} | {
            e: ReplayKind.ROLLBACK_TARGET for e in outcome.target_only
        }
        failed_noise = [
            ReplayRecord(
                event_id=event_id,
                kind=evidence_only[event_id],
                status=ReplayStatus.FAILED,
                output=None,
                comparison=None,
                attempts=attempts,
                error_class=type(error).__name__,
                error_message=error.message,
            )
            for event_id, error in outcome.retry.items()
            if event_id in evidence_only
        ]
        if failed_noise:
            self._store.record_replays(failed_noise, recorded_at=now)
        letters = [
            DeadLetter(
                stage="replay",
                error_class=type(error).__name__,
                message=error.message,
                attempts=attempts,
                event_id=event_id,
            )
            for event_id, error in outcome.retry.items()
            if event_id not in evidence_only
        ]
        return self._store.record_replay_dead_letters(letters, recorded_at=now)

    def _kinds_needed(
        self, event: CapturedCall, done: set[tuple[str, ReplayKind]]
    ) -> tuple[ReplayKind, ...]:
        if event.arm is Arm.CANDIDATE:  # only sampled ones get here (ingest.needs_replay)
            kinds = [ReplayKind.ROLLBACK_TARGET]
            return tuple(k for k in kinds if (event.event_id, k) not in done)
        kinds = [ReplayKind.CANDIDATE]
        if in_noise_sample(event.event_id, self._settings.replay.noise_floor_rate) or (
            self._baseline_again is not None and self._baseline_again(event)
        ):
            kinds.append(ReplayKind.NOISE)
        return tuple(k for k in kinds if (event.event_id, k) not in done)

    async def _replay_all(
        self,
        captures: Mapping[str, CapturedCall],
        work: Mapping[str, tuple[ReplayKind, ...]],
        attempt: int,
        candidate_of: Mapping[str | None, str],
    ) -> tuple[list[ReplayRecord], dict[tuple[str, ReplayKind], TransientError]]:
        res = self._runtime.resources
        pairs = [
            (event_id, kind, self._model_for(kind, captures[event_id].rollout, candidate_of))
            for event_id, kinds in work.items()
            for kind in kinds
        ]
        # The budget is checked and charged once per batch, not per call: a batch can
        # overshoot the daily limit by at most its own size, and it saves two Redis
        # round trips per replay.
        budget = await res.budget.exhausted(self._clock())
        if budget.exhausted:
            log.warning("replay.budget_exhausted", skipped=len(pairs))
            return [_skipped(e, k, attempt, budget.reason) for e, k, _ in pairs], {}
        # A model with no RPM/TPM limit only has the shared 429 pause to respect. The
        # batch's calls all start together, so one check of it covers them all (and
        # saves a Redis round trip per call).
        paced: set[str] = set()
        for model in {m for _, _, m in pairs if m in res.limiters}:
            limit = res.limiters[model].limit
            if limit.requests_per_minute is None and limit.tokens_per_minute is None:
                await res.limiters[model].acquire(0)
            else:
                paced.add(model)
        outcomes = await asyncio.gather(
            *(self._replay_one(res, captures[e], k, m, attempt, paced) for e, k, m in pairs)
        )
        records: list[ReplayRecord] = []
        retry: dict[tuple[str, ReplayKind], TransientError] = {}
        for (event_id, kind, _model), outcome in zip(pairs, outcomes, strict=True):
            if isinstance(outcome, TransientError):
                retry[(event_id, kind)] = outcome
            else:
                records.append(outcome)
        spent = [r.output for r in records if r.output is not None]
        if spent:
            await res.budget.charge(
                sum((o.prompt_tokens or 0) + (o.completion_tokens or 0) for o in spent),
                sum(o.cost_usd or 0.0 for o in spent),
                self._clock(),
            )
        return records, retry

    def _model_for(
        self, kind: ReplayKind, rollout: str | None, candidate_of: Mapping[str | None, str]
    ) -> str:
        if kind in (ReplayKind.NOISE, ReplayKind.ROLLBACK_TARGET):
            return self._settings.baseline_model
        return candidate_of.get(rollout) or self._settings.candidate_model

    async def _replay_one(
        self,
        res: ReplayResources,
        event: CapturedCall,
        kind: ReplayKind,
        model: str,
        attempt: int,
        paced: set[str],
    ) -> ReplayRecord | TransientError:
        settings = self._settings
        try:
            # A rollout whose candidate has no endpoint here: a permanent failure.
            endpoint = settings.endpoint(model)
            async with res.in_flight:
                if model in paced:
                    await res.limiters[model].acquire(estimate_tokens(event))
                output = await call_model(
                    res.clients[model],
                    model=model,
                    upstream_model=endpoint.upstream_model or model,
                    request=event.request,
                    stream=settings.replay.stream,
                    cost_per_token=(
                        endpoint.input_usd_per_mtok / 1e6,
                        endpoint.output_usd_per_mtok / 1e6,
                    ),
                    poster=res.poster,
                    cached_cost_per_token=(
                        None
                        if endpoint.cached_input_usd_per_mtok is None
                        else endpoint.cached_input_usd_per_mtok / 1e6
                    ),
                )
        except UpstreamRateLimited as exc:
            if exc.retry_after_s:
                # Every worker should back off, not only the one that was told.
                await res.limiters[model].penalize(exc.retry_after_s)
            return exc
        except TransientError as exc:
            return exc
        except PermanentError as exc:
            return ReplayRecord(
                event_id=event.event_id,
                kind=kind,
                status=(
                    ReplayStatus.NOT_REPLAYABLE
                    if isinstance(exc, NotReplayable)
                    else ReplayStatus.FAILED
                ),
                output=None,
                comparison=None,
                attempts=attempt,
                error_class=type(exc).__name__,
                error_message=exc.message,
            )
        reference = output_from_capture(event, self._live_cost(event))
        embeddings = await self._embeddings(res, reference, output)
        return ReplayRecord(
            event_id=event.event_id,
            kind=kind,
            status=ReplayStatus.OK,
            output=output,
            comparison=compare(reference, output, event.request, embeddings=embeddings),
            attempts=attempt,
        )

    def _live_cost(self, event: CapturedCall) -> float | None:
        if event.prompt_tokens is None or event.completion_tokens is None:
            return None
        if event.model not in self._settings.models:
            return None
        return self._settings.cost_usd(
            event.model, event.prompt_tokens, event.completion_tokens, event.cached_tokens
        )

    async def _embeddings(
        self, res: ReplayResources, reference: CallOutput, other: CallOutput
    ) -> tuple[list[float], list[float]] | None:
        model = self._settings.embeddings_model
        if model is None or not reference.text or not other.text:
            return None
        endpoint = self._settings.endpoint(model)
        try:
            result = await res.clients[model].embeddings.create(
                model=endpoint.upstream_model or model, input=[reference.text, other.text]
            )
        except Exception as exc:  # noqa: BLE001 - similarity is optional; the replay stands
            log.warning("replay.embeddings_failed", error_class=type(exc).__name__)
            return None
        return list(result.data[0].embedding), list(result.data[1].embedding)
