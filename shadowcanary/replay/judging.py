"""Run the pairwise LLM judge on a sample of shadow pairs, within its own budget and rate.

For each sampled event (deterministic in the event id, rate per route) the judge model
compares, in both orders (judge/pairwise.py):

- candidate: the candidate's answer against the live baseline answer; where redaction
  changed the prompt (the candidate saw ``[EMAIL]`` where the live call saw an address)
  against the baseline asked again on the same redacted prompt instead: like with like;
- noise: the baseline asked again against the live answer, on the replays that already
  ask the baseline twice (the noise floor), on prompts redaction left alone.

The judge gets the texts as data, no tools, and its reply is parsed, never executed.
Its spend is charged to its own daily budget (``SHADOWCANARY_JUDGE__DAILY_*``); calls
are paced by its own shared rate limit. A pair that cannot be judged is recorded as
failed (judge down, unreadable reply) or skipped (budget spent): the judge_score
trigger holds on those, with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import openai
import structlog

from shadowcanary.events import CapturedCall, now_utc
from shadowcanary.judge.pairwise import (
    PairVerdict,
    ParsedVerdict,
    combine,
    judge_messages,
    parse_verdict,
)
from shadowcanary.limits.budget import DailyBudget
from shadowcanary.limits.ratelimit import RateLimit, RedisRateLimiter
from shadowcanary.plan import DEFAULT_JUDGE_RUBRIC, JudgeRubric
from shadowcanary.replay.event_loop import ReplayRuntime
from shadowcanary.settings import Settings
from shadowcanary.shadow_results import JudgeRecord, JudgeReference, JudgeStatus, ReplayKind
from shadowcanary.store.judge_store import JudgeInputs, JudgeStore, answer_text

log = structlog.get_logger(__name__)

# The tap's typed placeholders (tap/redaction.py): a prompt holding one was changed.
_PLACEHOLDER = re.compile(
    r"\[(?:EMAIL|PHONE|CARD|SSN|IBAN|IP|NATIONAL_ID|SECRET|REDACTED|PERSON|LOCATION)\]"
)
JUDGE_SCOPE = "judge"


def prompt_was_redacted(event: CapturedCall) -> bool:
    """True when redaction replaced something in the prompt the replays were sent."""
    return _PLACEHOLDER.search(event.prompt_text()) is not None


def in_judge_sample(event_id: str, rate: float) -> bool:
    """Deterministic, and independent of the noise-floor sample (another hash)."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=b"sc-judge").digest()
    return int.from_bytes(digest) / 2**64 < rate


@dataclass(frozen=True, slots=True)
class DuePair:
    event: CapturedCall
    kind: ReplayKind
    reference: str
    other: str
    reference_kind: JudgeReference
    redacted: bool


@dataclass(frozen=True, slots=True)
class _Call:
    verdict: ParsedVerdict | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    error_class: str | None = None


class JudgeService:
    """Judges the sampled pairs of a batch of replayed events (runs on the replay loop)."""

    def __init__(
        self,
        settings: Settings,
        store: JudgeStore,
        runtime: ReplayRuntime,
        *,
        plans: PlanJudging | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        model = settings.judge.model
        if model is None:
            raise ValueError("JudgeService needs settings.judge.model")
        self._settings = settings
        self._model = model
        self._endpoint = settings.endpoint(model)
        self._store = store
        self._runtime = runtime
        # None: every rollout's events are judged with the default rubric (tests, tools).
        self._plans = plans
        self._clock = clock
        redis = runtime.resources.redis
        judge = settings.judge
        self._budget = DailyBudget(
            redis,
            token_limit=judge.daily_token_budget,
            usd_limit=judge.daily_usd_budget,
            scope=JUDGE_SCOPE,
        )
        self._limiter = RedisRateLimiter(
            redis,
            f"{JUDGE_SCOPE}-{model}",
            RateLimit(requests_per_minute=judge.requests_per_minute, tokens_per_minute=None),
        )

    def covers(self, event: CapturedCall) -> bool:
        """Whether the event's rollout uses the judge and its route is sampled at all."""
        if self._settings.judge.rate_for(event.route) <= 0 or event.rollout is None:
            return False
        return self._plans is None or self._plans.judged(event.rollout)

    def wants(self, event: CapturedCall) -> bool:
        """Whether this event's candidate pair is judged (its route's judge sample rate)."""
        return self.covers(event) and in_judge_sample(
            event.event_id, self._settings.judge.rate_for(event.route)
        )

    def needs_baseline_again(self, event: CapturedCall) -> bool:
        """A judged event whose prompt redaction changed needs the baseline asked again."""
        return self.wants(event) and prompt_was_redacted(event)

    def judge(self, event_ids: Sequence[str]) -> int:
        """Judge what is due among ``event_ids``; returns how many verdicts were new."""
        inputs = self._store.judge_inputs(event_ids)
        pairs = [
            pair
            for item in inputs.values()
            if self.covers(item.event)
            for pair in due_pairs(item, candidate=self.wants(item.event))
        ]
        if not pairs:
            return 0
        records = self._runtime.run(self._judge_all(pairs))
        return self._store.record_verdicts(records, recorded_at=self._clock())

    async def _judge_all(self, pairs: Sequence[DuePair]) -> list[JudgeRecord]:
        status = await self._budget.exhausted(self._clock())
        if status.exhausted:
            log.warning("judge.budget_exhausted", skipped=len(pairs))
            return [self._record(p, JudgeStatus.SKIPPED_BUDGET, error=status.reason) for p in pairs]
        records = await asyncio.gather(*(self._judge_pair(p) for p in pairs))
        await self._budget.charge(
            sum(r.prompt_tokens + r.completion_tokens for r in records),
            sum(r.cost_usd for r in records),
            self._clock(),
        )
        return list(records)

    async def _judge_pair(self, pair: DuePair) -> JudgeRecord:
        event = pair.event
        rubric = (
            self._plans.rubric(event.rollout, event.route)
            if self._plans is not None
            else DEFAULT_JUDGE_RUBRIC
        )
        prompt = pair.event.prompt_text()
        first, second = await asyncio.gather(
            self._call(judge_messages(prompt, pair.reference, pair.other, rubric)),
            self._call(judge_messages(prompt, pair.other, pair.reference, rubric)),
        )
        tokens = (
            first.prompt_tokens + second.prompt_tokens,
            first.completion_tokens + second.completion_tokens,
        )
        if first.verdict is None or second.verdict is None:
            failed = first if first.verdict is None else second
            return self._record(
                pair,
                JudgeStatus.FAILED,
                tokens=tokens,
                error=failed.error or "the judge's reply was not a verdict",
                error_class=failed.error_class or "UnreadableVerdict",
            )
        verdict = combine(first.verdict.preference, second.verdict.preference)
        rationale = f"A=baseline: {first.verdict.rationale} | A=judged: {second.verdict.rationale}"
        return self._record(
            pair, JudgeStatus.OK, tokens=tokens, verdict=verdict, rationale=rationale
        )

    async def _call(self, messages: list[dict[str, str]]) -> _Call:
        client = self._runtime.resources.clients[self._model]
        try:
            await self._limiter.acquire(sum(len(m["content"]) for m in messages) // 4)
            response = await client.chat.completions.create(
                model=self._endpoint.upstream_model or self._model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=self._settings.judge.max_output_tokens,
                temperature=0,
            )
        except openai.RateLimitError as exc:
            # Every worker backs off the judge, not only the one that was told.
            wait = _retry_after_s(exc.response.headers.get("retry-after"))
            if wait:
                await self._limiter.penalize(wait)
            return _Call(None, 0, 0, error=type(exc).__name__, error_class=type(exc).__name__)
        except openai.OpenAIError as exc:
            # The message may quote the request (prompt text): only the class is kept.
            return _Call(None, 0, 0, error=type(exc).__name__, error_class=type(exc).__name__)
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        content = response.choices[0].message.content if response.choices else None
        return _Call(parse_verdict(content), prompt_tokens, completion_tokens)

    def _record(
        self,
        pair: DuePair,
        status: JudgeStatus,
        *,
        tokens: tuple[int, int] = (0, 0),
        verdict: PairVerdict | None = None,
        rationale: str | None = None,
        error: str | None = None,
        error_class: str | None = None,
    ) -> JudgeRecord:
        if status is JudgeStatus.SKIPPED_BUDGET:
            error_class = "BudgetExhausted"
        return JudgeRecord(
            event_id=pair.event.event_id,
            kind=pair.kind,
            status=status,
            judge_model=self._model,
            reference=pair.reference_kind,
            prompt_redacted=pair.redacted,
            verdict=verdict,
            rationale=rationale,
            reference_chars=len(pair.reference),
            other_chars=len(pair.other),
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            cost_usd=self._endpoint.cost_usd(tokens[0], tokens[1]),
            error_class=error_class,
            error_message=error,
        )


def _retry_after_s(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the limiter's own pacing has to do


def _live_answer(event: CapturedCall) -> str | None:
    if event.response is None:
        return None
    return answer_text(event.response.model_dump(mode="json"))


def due_pairs(item: JudgeInputs, *, candidate: bool) -> list[DuePair]:
    """The pairs of one event that are due: each kind once, like with like.

    ``candidate``: the event is in the judge's sample. Its noise-floor pair is judged
    whenever the baseline was asked twice (on a route the judge covers), so the noise
    floor is measured on as many pairs as the noise sample holds.
    """
    event = item.event
    live = _live_answer(event)
    redacted = prompt_was_redacted(event)
    out: list[DuePair] = []
    if candidate and ReplayKind.CANDIDATE not in item.judged and item.candidate:
        if redacted:
            # Waits for the baseline asked again (a later replay batch brings it).
            if item.baseline_again:
                out.append(
                    DuePair(
                        event,
                        ReplayKind.CANDIDATE,
                        item.baseline_again,
                        item.candidate,
                        JudgeReference.BASELINE_AGAIN,
                        True,
                    )
                )
        elif live:
            out.append(
                DuePair(
                    event, ReplayKind.CANDIDATE, live, item.candidate, JudgeReference.LIVE, False
                )
            )
    # The noise floor only where the live prompt and the replayed one are the same.
    if ReplayKind.NOISE not in item.judged and item.baseline_again and live and not redacted:
        out.append(
            DuePair(event, ReplayKind.NOISE, live, item.baseline_again, JudgeReference.LIVE, False)
        )
    return out


class PlanJudging:
    """Per rollout, from its plan: is ``judge_score`` on, and the rubric per route.

    Rollouts whose plan does not use the judge are not judged (their spend would buy
    nothing); answers are cached for a while per worker process.
    """

    def __init__(
        self,
        judging_of: Callable[[str], tuple[JudgeRubric, bool] | None],
        *,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._judging_of = judging_of
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[JudgeRubric, bool] | None]] = {}

    def _get(self, rollout: str) -> tuple[JudgeRubric, bool] | None:
        now = self._clock()
        cached = self._cache.get(rollout)
        if cached is None or cached[0] < now:
            cached = (now + self._ttl_s, self._judging_of(rollout))
            self._cache[rollout] = cached
        return cached[1]

    def judged(self, rollout: str | None) -> bool:
        found = None if rollout is None else self._get(rollout)
        return found is not None and found[1]

    def rubric(self, rollout: str | None, route: str) -> tuple[str, ...]:
        found = None if rollout is None else self._get(rollout)
        return found[0].for_route(route) if found is not None else DEFAULT_JUDGE_RUBRIC
