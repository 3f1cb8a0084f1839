"""Per-model profiles of the simulator: latency, faults, output behaviour and prices.

A profile describes how a *simulated* model behaves; it is validated with pydantic
because it arrives from YAML files and from the admin HTTP API. Every field is flat
so a partial update (``PUT /admin/profiles/gpt-5.5 {"error_rate": 0.2}``) is one
JSON object.

Meaning of the output fields (all deterministic in the prompt, see ``sim.output``):

- ``diverge_from`` + ``divergence``: start from that model's answer and change this
  fraction of its words (or JSON leaves). ``0`` gives byte-identical output.
- ``verbosity``: length multiplier. For a root model it scales the prompt-derived
  base length; for a model with ``diverge_from`` it scales the parent's answer, so
  ``verbosity: 1.2`` means "20 % longer than the model it diverges from".
- ``*_rate`` fault probabilities are decided per prompt with a hash seeded by the
  *root* of the ``diverge_from`` chain, so a child with the same rate fails on the
  same prompts as its parent and a higher rate fails on a superset of them.
- ``sampling_noise``: the one non-deterministic output knob (default 0): share of
  words changed per *call* with the server's seeded RNG, so asking the same model
  twice can differ like a real model sampled at temperature > 0.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shadowcanary.errors import ConfigError

# z-score of the 99th percentile of a standard normal: lognormal sigma from (median, p99).
_Z99 = 2.3263478740408408
MODEL_NAME_PATTERN = r"^[\w.:/@+-]{1,200}$"
DEFAULT_PROFILES_RESOURCE = "default_profiles.yaml"

Probability = Field(default=0.0, ge=0.0, le=1.0)


class ModelProfile(BaseModel):
    """How one simulated model behaves. Unknown fields are rejected, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    # Latency of a whole call (lognormal through these two quantiles). A profile may give
    # ``mean_ms`` instead of ``median_ms`` (vendors and dashboards quote means): it is
    # turned into the median of the lognormal with that mean and p99.
    median_ms: float = Field(default=400.0, gt=0)
    p99_ms: float = Field(default=1_200.0, gt=0)
    # Time to first token: a share of the drawn latency unless its own median is given.
    ttft_share: float = Field(default=0.3, ge=0.0, le=1.0)
    ttft_median_ms: float | None = Field(default=None, gt=0)
    ttft_p99_ms: float | None = Field(default=None, gt=0)
    # Streaming pace: words per SSE chunk; the time after TTFT is spread over the chunks.
    stream_words_per_chunk: int = Field(default=3, ge=1, le=1_000)

    error_rate: float = Probability  # HTTP 500
    rate_limit_rate: float = Probability  # HTTP 429 with Retry-After
    retry_after_s: float = Field(default=1.0, ge=0.0, le=3_600.0)

    diverge_from: str | None = Field(default=None, pattern=MODEL_NAME_PATTERN)
    divergence: float = Probability
    verbosity: float = Field(default=1.0, gt=0.0, le=20.0)
    invalid_json_rate: float = Probability
    wrong_tool_call_rate: float = Probability
    refusal_rate: float = Probability
    truncation_rate: float = Probability
    # With tools offered and tool_choice "auto", share of prompts answered by a tool call.
    tool_use_rate: float = Field(default=0.8, ge=0.0, le=1.0)
    sampling_noise: float = Probability
    # Reasoning tokens a call with a reasoning effort spends, as a multiple of
    # ``prompt.REASONING_TOKENS`` (0: a model that does not reason).
    reasoning_scale: float = Field(default=1.0, ge=0.0, le=100.0)

    # What the simulated LLM judge (``role: judge``, sim/judging.py) thinks of this
    # model's answers: a latent quality on a logit-like scale (0 = the baseline's), and
    # per prompt substring an override (a model worse on one route's prompts only).
    quality: float = Field(default=0.0, ge=-10.0, le=10.0)
    quality_when: dict[str, float] = Field(default_factory=dict)
    # role "judge": answers a judge prompt (judge/pairwise.py) with a verdict. Share of
    # verdicts that pick answer A whatever it says (position bias), the spread of its
    # reading of the quality difference, and the difference it calls a tie.
    role: Literal["model", "judge"] = "model"
    judge_position_bias: float = Probability
    judge_noise: float = Field(default=0.5, ge=0.0, le=10.0)
    judge_tie_margin: float = Field(default=0.25, ge=0.0, le=10.0)

    input_usd_per_mtok: float = Field(default=0.0, ge=0.0)
    output_usd_per_mtok: float = Field(default=0.0, ge=0.0)
    embedding_dimensions: int = Field(default=256, ge=8, le=4_096)

    @model_validator(mode="before")
    @classmethod
    def _mean_to_median(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "mean_ms" not in data:
            return data
        fields = dict(data)
        mean = fields.pop("mean_ms")
        if "median_ms" in fields:
            raise ValueError("give median_ms or mean_ms, not both")
        p99 = fields.get("p99_ms", cls.model_fields["p99_ms"].default)
        fields["median_ms"] = median_for_mean(float(mean), float(p99))
        return fields

    @model_validator(mode="after")
    def _quantiles_are_ordered(self) -> Self:
        if self.p99_ms < self.median_ms:
            raise ValueError(f"p99_ms={self.p99_ms} must be >= median_ms={self.median_ms}")
        if self.ttft_p99_ms is not None and self.ttft_median_ms is None:
            raise ValueError("ttft_p99_ms needs ttft_median_ms")
        if (
            self.ttft_median_ms is not None
            and self.ttft_p99_ms is not None
            and self.ttft_p99_ms < self.ttft_median_ms
        ):
            raise ValueError("ttft_p99_ms must be >= ttft_median_ms")
        return self

    def draw_latency_ms(self, rng: random.Random) -> float:
        """One whole-call latency from the lognormal through median and p99."""
        return _lognormal(rng, self.median_ms, self.p99_ms)

    def draw_ttft_ms(self, rng: random.Random, latency_ms: float) -> float:
        """Time to first token for a call whose whole latency is ``latency_ms``."""
        if self.ttft_median_ms is None:
            return latency_ms * self.ttft_share
        p99 = self.ttft_p99_ms if self.ttft_p99_ms is not None else self.ttft_median_ms * 3
        return min(latency_ms, _lognormal(rng, self.ttft_median_ms, p99))

    def quality_on(self, prompt_text: str) -> float:
        """The latent quality the simulated judge sees in this model's answer to a prompt."""
        for needle, value in self.quality_when.items():
            if needle in prompt_text:
                return value
        return self.quality

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok
        ) / 1e6


def median_for_mean(mean_ms: float, p99_ms: float) -> float:
    """The median of the lognormal whose mean is ``mean_ms`` and 99th percentile ``p99_ms``.

    With mu, sigma the log-scale parameters: ln p99 = mu + z99 sigma and
    ln mean = mu + sigma^2 / 2. Writing d = z99 sigma gives d^2 / (2 z99^2) - d +
    ln(p99 / mean) = 0, whose smaller root keeps the median below the p99.

    Raises:
        ValueError: the mean is not positive, exceeds the p99, or the p99 is more than
            ~15x the mean (no lognormal has both).
    """
    if mean_ms <= 0:
        raise ValueError(f"mean_ms must be > 0, got {mean_ms}")
    if mean_ms > p99_ms:
        raise ValueError(f"mean_ms={mean_ms} must be <= p99_ms={p99_ms}")
    gap = math.log(p99_ms / mean_ms)
    discriminant = 1 - 2 * gap / _Z99**2
    if discriminant < 0:
        limit = math.exp(_Z99**2 / 2)
        raise ValueError(
            f"no lognormal latency has mean_ms={mean_ms} and p99_ms={p99_ms}: the p99 can be "
            f"at most {limit:.1f}x the mean; give median_ms instead"
        )
    d = _Z99**2 * (1 - math.sqrt(discriminant))
    return math.exp(math.log(p99_ms) - d)


def _lognormal(rng: random.Random, median: float, p99: float) -> float:
    sigma = (math.log(p99) - math.log(median)) / _Z99
    if sigma <= 0:
        return median
    return rng.lognormvariate(math.log(median), sigma)


class ProfileFile(BaseModel):
    """The YAML file format: ``models: {name: {profile fields}}``."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelProfile]


class ProfileSet:
    """An immutable, validated mapping of model name to profile (diverge_from resolved)."""

    __slots__ = ("_lineage", "_profiles")

    def __init__(self, profiles: Mapping[str, ModelProfile]) -> None:
        self._profiles = dict(profiles)
        self._lineage = {name: self._resolve_lineage(name) for name in self._profiles}

    def _resolve_lineage(self, name: str) -> tuple[str, ...]:
        chain = [name]
        parent = self._profiles[name].diverge_from
        while parent is not None:
            if parent not in self._profiles:
                raise ConfigError(
                    f"model {chain[-1]!r} has diverge_from={parent!r}, which is not a known "
                    f"model (known: {', '.join(sorted(self._profiles))})",
                    hint="define that model too, or fix the name",
                )
            if parent in chain:
                loop = " -> ".join([*chain, parent])
                raise ConfigError(
                    f"diverge_from forms a loop: {loop}",
                    hint="one model in the chain must have no diverge_from",
                )
            chain.append(parent)
            parent = self._profiles[parent].diverge_from
        return tuple(chain)

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def __getitem__(self, name: str) -> ModelProfile:
        return self._profiles[name]

    def get(self, name: str) -> ModelProfile | None:
        return self._profiles.get(name)

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def lineage(self, name: str) -> tuple[str, ...]:
        """``(name, parent, grandparent, ..., root)`` along ``diverge_from``."""
        return self._lineage[name]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.model_dump() for name, p in sorted(self._profiles.items())}

    def with_profile(self, name: str, profile: ModelProfile) -> ProfileSet:
        """A new set with ``name`` added or replaced (validated as a whole)."""
        return ProfileSet({**self._profiles, name: profile})

    def without(self, name: str) -> ProfileSet:
        """A new set without ``name``; refused while another model diverges from it."""
        children = [n for n, p in self._profiles.items() if p.diverge_from == name]
        if children:
            raise ConfigError(
                f"cannot remove {name!r}: {', '.join(sorted(children))} diverge from it",
                hint="change or remove those models first",
            )
        return ProfileSet({n: p for n, p in self._profiles.items() if n != name})


def describe_validation_error(exc: ValidationError) -> str:
    """``field: problem; field: problem`` — short enough for an HTTP error message."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def profiles_from_mapping(models: Mapping[str, Mapping[str, Any]]) -> ProfileSet:
    """Validate ``{name: {field: value}}`` into a ``ProfileSet`` or raise ``ConfigError``."""
    try:
        parsed = ProfileFile.model_validate({"models": dict(models)})
    except ValidationError as exc:
        raise ConfigError(
            f"invalid simulator profiles: {describe_validation_error(exc)}",
            hint="see shadowcanary/sim/profiles.py for the fields and their ranges",
        ) from exc
    _check_names(parsed.models)
    return ProfileSet(parsed.models)


def _check_names(models: Mapping[str, ModelProfile]) -> None:
    for name in models:
        if not re.match(MODEL_NAME_PATTERN, name):
            raise ConfigError(
                f"invalid model name {name!r}",
                hint="use letters, digits and . : / @ + - _ only",
            )


def load_profiles(path: Path | str | None = None) -> ProfileSet:
    """Profiles from a YAML file, or the shipped defaults when ``path`` is None."""
    if path is None:
        text = resources.files("shadowcanary.sim").joinpath(DEFAULT_PROFILES_RESOURCE).read_text()
        source = f"shadowcanary/sim/{DEFAULT_PROFILES_RESOURCE}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read simulator profiles {path}: {exc.strerror}",
                hint="pass an existing YAML file with --profiles",
            ) from exc
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ConfigError(
            f"{source} must be a mapping with a 'models' key",
            hint="models: {gpt-5.2: {median_ms: 418, ...}}",
        )
    extra = sorted(set(data) - {"models"})
    if extra:
        raise ConfigError(f"{source}: unknown top-level keys {extra}", hint="only 'models' is read")
    return profiles_from_mapping(data["models"])


def default_profiles() -> dict[str, dict[str, Any]]:
    """The shipped default profiles as plain dicts (to tweak and pass to ``run_simulator``)."""
    return load_profiles(None).as_dict()
