"""Today's shadow budget (tokens and dollars), shared by every worker through Redis.

Shadow replays cost real money on the candidate's bill, so the operator caps them per
UTC day. Spend is kept as two integer counters per day (tokens and micro-dollars):
``INCRBY`` on integers is atomic and exact, where floats summed by many workers would
drift. The counters expire about two days after their last charge, so yesterday's is
still readable after midnight and nothing needs a cleanup job.

Workers check ``exhausted`` before a replay and ``charge`` after it, so the day can
overshoot by what was in flight when the limit was crossed; the reason says by how
much.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import redis.asyncio
import redis.exceptions

from shadowcanary.constants import budget_key
from shadowcanary.errors import BudgetExhausted, ConfigError
from shadowcanary.limits.ratelimit import redis_unavailable

if TYPE_CHECKING:
    from shadowcanary.settings import ReplaySettings

_MICROS_PER_USD = 1_000_000
# Long enough that "yesterday" survives the UTC midnight for reports, short enough
# that a budget never needs purging.
_COUNTER_TTL_S = 2 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Spend:
    """What the shadow replays of one UTC day have cost so far."""

    tokens: int
    usd: float


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Whether today's budget is spent; ``reason`` names the limit and the numbers."""

    exhausted: bool
    reason: str | None
    spend: Spend


def utc_day(now: datetime) -> date:
    """The UTC calendar day that ``now`` (timezone-aware) falls in."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (got naive {now.isoformat()})")
    return now.astimezone(UTC).date()


class DailyBudget:
    """Daily token and dollar caps on shadow replays; ``None`` leaves that cap off."""

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        token_limit: int | None,
        usd_limit: float | None,
        scope: str = "",
    ) -> None:
        if token_limit is not None and token_limit <= 0:
            raise ConfigError(
                f"daily token budget must be > 0, got {token_limit}",
                hint="set SHADOWCANARY_REPLAY__DAILY_TOKEN_BUDGET to a positive integer "
                "or leave it unset for no cap",
            )
        if usd_limit is not None and not usd_limit > 0:
            raise ConfigError(
                f"daily dollar budget must be > 0, got {usd_limit}",
                hint="set SHADOWCANARY_REPLAY__DAILY_USD_BUDGET to a positive number "
                "or leave it unset for no cap",
            )
        self._redis = redis
        # "" is the shadow replays' budget; another scope (e.g. "judge") counts apart.
        self._scope = scope
        self.token_limit = token_limit
        self.usd_limit = usd_limit

    @classmethod
    def from_settings(cls, redis: redis.asyncio.Redis, replay: ReplaySettings) -> DailyBudget:
        """The budget configured in ``Settings.replay``."""
        return cls(redis, token_limit=replay.daily_token_budget, usd_limit=replay.daily_usd_budget)

    async def spent(self, day: date) -> Spend:
        """What ``day`` (a UTC date; a datetime is taken as its UTC day) has cost so far."""
        keys = _keys(utc_day(day) if isinstance(day, datetime) else day, self._scope)
        try:
            tokens, micros = await self._redis.mget(keys)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise redis_unavailable("shadow budget", exc) from exc
        return _spend(tokens, micros)

    async def exhausted(self, now: datetime) -> BudgetStatus:
        """Whether the budget of the UTC day containing ``now`` is spent."""
        spend = await self.spent(utc_day(now))
        reasons = []
        if self.token_limit is not None and spend.tokens >= self.token_limit:
            reasons.append(
                f"daily shadow token budget spent: {spend.tokens:,} of {self.token_limit:,} tokens"
            )
        if self.usd_limit is not None and spend.usd >= self.usd_limit:
            reasons.append(
                f"daily shadow dollar budget spent: ${spend.usd:,.2f} of ${self.usd_limit:,.2f}"
            )
        if not reasons:
            return BudgetStatus(exhausted=False, reason=None, spend=spend)
        return BudgetStatus(
            exhausted=True, reason="; ".join(reasons) + " (resets 00:00 UTC)", spend=spend
        )

    async def require(self, now: datetime) -> Spend:
        """Today's spend, or ``BudgetExhausted`` with the reason when it is spent."""
        status = await self.exhausted(now)
        if status.exhausted:
            raise BudgetExhausted(
                status.reason or "daily shadow budget spent",
                hint="replays resume at 00:00 UTC; to allow more today raise "
                "SHADOWCANARY_REPLAY__DAILY_TOKEN_BUDGET / __DAILY_USD_BUDGET",
            )
        return status.spend

    async def charge(self, tokens: int, usd: float, now: datetime) -> Spend:
        """Add one replay's cost to the UTC day containing ``now``; return the day's new total."""
        if tokens < 0 or not usd >= 0:
            raise ValueError(f"a charge cannot be negative (tokens={tokens}, usd={usd})")
        # Rounded to the nearest micro-dollar per call: at most $0.0000005 of error each.
        micros = round(usd * _MICROS_PER_USD)
        tokens_key, micros_key = _keys(utc_day(now), self._scope)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(tokens_key, tokens)
                pipe.incrby(micros_key, micros)
                pipe.expire(tokens_key, _COUNTER_TTL_S)
                pipe.expire(micros_key, _COUNTER_TTL_S)
                total_tokens, total_micros, _, _ = await pipe.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise redis_unavailable("shadow budget", exc) from exc
        return _spend(total_tokens, total_micros)


def _keys(day: date, scope: str = "") -> list[str]:
    stamp = f"{scope}:{day.isoformat()}" if scope else day.isoformat()
    return [budget_key(stamp, "tokens"), budget_key(stamp, "usd_micros")]


def _spend(tokens: bytes | str | int | None, micros: bytes | str | int | None) -> Spend:
    return Spend(tokens=int(tokens or 0), usd=int(micros or 0) / _MICROS_PER_USD)
