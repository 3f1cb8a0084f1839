"""Mutable state of one simulator process: profiles, seeded RNG, counters, answer cache.

One ``SimState`` per app instance (no module globals). Everything runs on the event
loop thread, so plain dicts need no locks.
"""

from __future__ import annotations

import hmac
import random
import secrets
import time
from collections import Counter, OrderedDict, defaultdict

from shadowcanary.sim.judging import AnswerQualities, judge_answer
from shadowcanary.sim.output import SimAnswer, add_sampling_noise, simulate
from shadowcanary.sim.profiles import ModelProfile, ProfileSet
from shadowcanary.sim.prompt import SimPrompt
from shadowcanary.sim.streaming import Timing

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
_CACHE_ENTRIES = 8_192
NO_MODEL = "<none>"  # rejected before the body named a model (auth, size, JSON)
UNKNOWN_MODEL = "<unknown>"  # a model name with no profile (not kept: names are unbounded)


class Fault:
    """What the error draws decided for one call."""

    NONE = "none"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"


class SimState:
    """Profiles, RNG and statistics of one simulator app."""

    def __init__(
        self,
        profiles: ProfileSet,
        *,
        admin_token: str | None,
        seed: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.profiles = profiles
        self.version = 0
        self.seed = seed
        self.rng = random.Random(seed)
        self.max_body_bytes = max_body_bytes
        self.started_at = time.time()
        self.counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        # Generation calls being answered now, and the most at once since the last reset:
        # what shows that the simulator serves callers in parallel.
        self.in_flight = 0
        self.in_flight_peak = 0
        # None disables the admin API (nothing to compare a presented token with).
        self._admin_token = admin_token.encode() if admin_token else None
        self._cache: OrderedDict[tuple[int, str, str, int | None], SimAnswer] = OrderedDict()
        # Stored Responses (``store`` not false): id -> the conversation so far, without
        # instructions, for ``previous_response_id``. Bounded like the answer cache.
        self._responses: OrderedDict[str, tuple[tuple[str, str], ...]] = OrderedDict()
        # Who wrote each served answer, for the simulated judge (sim/judging.py).
        self.qualities = AnswerQualities()
        self._id_prefix = secrets.token_hex(4)
        self._next_id = 0

    @property
    def admin_enabled(self) -> bool:
        return self._admin_token is not None

    def admin_ok(self, presented: str | None) -> bool:
        if self._admin_token is None or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._admin_token)

    def replace_profiles(self, profiles: ProfileSet) -> None:
        self.profiles = profiles
        self.version += 1
        self._cache.clear()

    def new_id(self) -> str:
        self._next_id += 1
        return f"sim{self._id_prefix}{self._next_id:08x}"

    def record(self, model: str, status: int) -> None:
        self.counts[model][str(status)] += 1

    def draw_fault(self, profile: ModelProfile) -> str:
        # Always two draws, so one rate's setting never shifts the other's sequence.
        rate_limited = self.rng.random() < profile.rate_limit_rate
        failed = self.rng.random() < profile.error_rate
        if rate_limited:
            return Fault.RATE_LIMITED
        return Fault.SERVER_ERROR if failed else Fault.NONE

    def draw_timing(self, profile: ModelProfile) -> Timing:
        latency_ms = profile.draw_latency_ms(self.rng)
        ttft_ms = profile.draw_ttft_ms(self.rng, latency_ms)
        return Timing(latency_ms / 1000, ttft_ms / 1000)

    def answer(self, model: str, prompt: SimPrompt) -> SimAnswer:
        """The pure simulated answer (cached), plus per-call sampling noise if configured.

        A judge model's answer is a verdict instead (sim/judging.py).
        """
        profile = self.profiles[model]
        if profile.role == "judge":
            return judge_answer(prompt, profile, self.qualities, self.rng)
        key = (self.version, model, prompt.key, prompt.max_tokens)
        cached = self._cache.get(key)
        if cached is None:
            cached = simulate(self.profiles, model, prompt)
            self._cache[key] = cached
            if len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        noise = profile.sampling_noise
        served = add_sampling_noise(cached, noise, self.rng) if noise > 0 else cached
        if served.content:
            prompt_text = "\n".join(text for _, text in prompt.messages)
            self.qualities.remember(served.content, profile.quality_on(prompt_text))
        return served

    def store_response(self, response_id: str, turns: tuple[tuple[str, str], ...]) -> None:
        self._responses[response_id] = turns
        if len(self._responses) > _CACHE_ENTRIES:
            self._responses.popitem(last=False)

    def stored_conversation(self, response_id: str) -> tuple[tuple[str, str], ...] | None:
        """The turns behind a stored response, or None if it was never stored (or evicted)."""
        return self._responses.get(response_id)

    def stats(self) -> dict[str, object]:
        requests = {model: dict(sorted(c.items())) for model, c in sorted(self.counts.items())}
        return {
            "requests": requests,
            "total": sum(sum(c.values()) for c in self.counts.values()),
            "uptime_s": round(time.time() - self.started_at, 3),
            "profiles_version": self.version,
            "seed": self.seed,
            "in_flight_peak": self.in_flight_peak,
        }

    def reset_stats(self) -> None:
        self.counts.clear()
        self.in_flight_peak = self.in_flight
