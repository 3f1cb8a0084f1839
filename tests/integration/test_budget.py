"""The daily shadow budget against a real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis.asyncio

from shadowcanary.constants import budget_key
from shadowcanary.errors import BudgetExhausted, ConfigError, ServiceUnavailable
from shadowcanary.limits.budget import DailyBudget, Spend
from tests.integration.redis_async import client, run

pytestmark = pytest.mark.integration

NOON = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_charges_accumulate_per_day(redis_url: str) -> None:
    """Each charge adds to the day's tokens and dollars and returns the new total."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=None, usd_limit=None)
        assert await budget.spent(NOON.date()) == Spend(0, 0.0)
        assert await budget.charge(100, 0.25, NOON) == Spend(100, 0.25)
        assert await budget.charge(50, 0.125, NOON + timedelta(hours=3)) == Spend(150, 0.375)
        assert await budget.spent(date(2025, 3, 1)) == Spend(150, 0.375)
        # a datetime passed to spent() counts as its UTC day, not as a garbled key
        assert await budget.spent(NOON) == Spend(150, 0.375)
        status = await budget.exhausted(NOON)
        assert not status.exhausted and status.reason is None
        assert status.spend == Spend(150, 0.375)

    run(redis_url, scenario)


def test_token_limit_exhausts_with_numbers_in_the_reason(redis_url: str) -> None:
    """Reaching the token cap reports exhausted, naming the cap, the spend and the reset."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=1_000_000, usd_limit=100.0)
        await budget.charge(999_999, 1.0, NOON)
        assert not (await budget.exhausted(NOON)).exhausted
        await budget.charge(513, 0.01, NOON)
        status = await budget.exhausted(NOON)
        assert status.exhausted
        assert status.reason == (
            "daily shadow token budget spent: 1,000,512 of 1,000,000 tokens (resets 00:00 UTC)"
        )
        with pytest.raises(BudgetExhausted, match="1,000,512 of 1,000,000 tokens") as err:
            await budget.require(NOON)
        assert "DAILY_TOKEN_BUDGET" in (err.value.hint or "")

    run(redis_url, scenario)


def test_dollar_limit_exhausts_with_numbers_in_the_reason(redis_url: str) -> None:
    """Reaching the dollar cap reports exhausted with the dollars spent and the cap."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=10_000_000, usd_limit=50.0)
        await budget.charge(1000, 49.99, NOON)
        assert not (await budget.exhausted(NOON)).exhausted
        await budget.charge(10, 0.04, NOON)
        status = await budget.exhausted(NOON)
        assert status.exhausted
        assert status.reason == (
            "daily shadow dollar budget spent: $50.03 of $50.00 (resets 00:00 UTC)"
        )

    run(redis_url, scenario)


def test_both_limits_hit_are_both_named(redis_url: str) -> None:
    """When tokens and dollars are both spent, the reason names both."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=10, usd_limit=1.0)
        await budget.charge(10, 1.0, NOON)
        status = await budget.exhausted(NOON)
        assert status.exhausted
        assert "token budget spent: 10 of 10 tokens" in (status.reason or "")
        assert "dollar budget spent: $1.00 of $1.00" in (status.reason or "")

    run(redis_url, scenario)


def test_a_new_utc_day_starts_from_zero(redis_url: str) -> None:
    """Spend at 23:59:59 UTC does not count against the day starting one second later."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=100, usd_limit=None)
        last_second = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
        await budget.charge(150, 0.0, last_second)
        assert (await budget.exhausted(last_second)).exhausted
        next_day = last_second + timedelta(seconds=1)
        status = await budget.exhausted(next_day)
        assert not status.exhausted
        assert status.spend == Spend(0, 0.0)
        # yesterday is still readable after midnight, and expires by itself
        assert await budget.spent(last_second.date()) == Spend(150, 0.0)
        ttl = await r.ttl(budget_key("2025-03-01", "tokens"))
        assert 0 < ttl <= 2 * 24 * 3600

    run(redis_url, scenario)


def test_days_are_utc_days_whatever_the_callers_timezone(redis_url: str) -> None:
    """01:00 on 2 March in UTC+2 is 23:00 on 1 March UTC, so it charges 1 March."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=None, usd_limit=None)
        local = datetime(2025, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))
        await budget.charge(5, 0.0, local)
        assert await budget.spent(date(2025, 3, 1)) == Spend(5, 0.0)
        assert await budget.spent(date(2025, 3, 2)) == Spend(0, 0.0)
        with pytest.raises(ValueError, match="timezone-aware"):
            await budget.charge(1, 0.0, datetime(2025, 3, 1, 12, 0))

    run(redis_url, scenario)


def test_concurrent_charges_add_up_exactly(redis_url: str) -> None:
    """400 concurrent charges over two clients' connections lose nothing and round nothing away."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=None, usd_limit=None)
        other = client(redis_url)
        try:
            budgets = [budget, DailyBudget(other, token_limit=None, usd_limit=None)]
            await asyncio.gather(*(budgets[i % 2].charge(7, 0.000123, NOON) for i in range(400)))
        finally:
            await other.aclose()
        assert await budget.spent(NOON.date()) == Spend(tokens=2800, usd=0.0492)

    run(redis_url, scenario)


@pytest.mark.parametrize(
    ("token_limit", "usd_limit"), [(0, None), (-5, None), (None, 0.0), (None, -1.0)]
)
def test_nonsense_limits_are_config_errors(
    redis_url: str, token_limit: int | None, usd_limit: float | None
) -> None:
    """A zero or negative cap is refused with a ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=r"daily \w+ budget must be > 0") as err:
        DailyBudget(client(redis_url), token_limit=token_limit, usd_limit=usd_limit)
    assert "SHADOWCANARY_REPLAY__DAILY_" in (err.value.hint or "")


def test_redis_down_is_a_transient_service_error(tmp_path: Path) -> None:
    """With Redis unreachable, charge and exhausted raise ServiceUnavailable (retry can fix it)."""
    # A socket nobody listens on: unlike a stopped server's TCP port, no other test
    # process can take it over meanwhile.
    url = f"unix://{tmp_path / 'no-redis.sock'}"

    async def scenario(r: redis.asyncio.Redis) -> None:
        budget = DailyBudget(r, token_limit=10, usd_limit=None)
        with pytest.raises(ServiceUnavailable, match="shadow budget cannot reach Redis"):
            await budget.charge(1, 0.0, NOON)
        with pytest.raises(ServiceUnavailable):
            await budget.exhausted(NOON)

    run(url, scenario)
