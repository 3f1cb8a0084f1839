"""The simulated answer: a pure function of (profiles, model, prompt).

No clock, no process state, no RNG shared between calls: every choice is drawn from a
hash of the model names along its ``diverge_from`` chain and the prompt digest, so the
same prompt sent to the same profile gives byte-identical output in any process.
(``add_sampling_noise`` is the one opt-in exception, applied by the server per call.)

How an answer is built:

1. Draft. The root model of the chain writes it: prose on the prompt's topic words,
   a JSON document for ``response_format``, or a tool call whose arguments satisfy
   the tool's JSON schema. Each model below the root rescales the parent's prose by
   its ``verbosity`` and replaces a ``divergence`` share of its words (for JSON and
   tool arguments: re-draws that share of the leaves, so they stay schema-valid).
2. Faults, each decided by ``hash(root, prompt, fault) < rate``: wrong tool call
   (unknown name or schema-breaking arguments), invalid JSON, refusal, truncation.
3. ``max_tokens``: a longer answer is cut and finishes with ``length``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shadowcanary.sim.profiles import ModelProfile, ProfileSet
from shadowcanary.sim.prompt import (
    CHARS_PER_TOKEN,
    OutputFormat,
    SimPrompt,
    ToolSpec,
    count_tokens,
)
from shadowcanary.sim.schema_values import break_schema, value_for_schema
from shadowcanary.sim.vocabulary import REFUSAL_TEXT, WORDS

# The implicit schema of a ``json_object`` answer when no schema was given.
_JSON_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["answer", "confidence", "tags"],
}
_SENTENCES_PER_PARAGRAPH = 4
_TOPIC_WEIGHT = 66  # topic words' share of the vocabulary: 66 / (376 + 66) = 15 %


@dataclass(frozen=True, slots=True)
class SimToolCall:
    id: str
    name: str
    arguments: str  # JSON text; invalid on purpose when a fault says so


@dataclass(frozen=True, slots=True)
class SimAnswer:
    """What the simulated model says, before any HTTP shape is put around it."""

    content: str | None
    tool_calls: tuple[SimToolCall, ...]
    finish_reason: str  # stop | length | tool_calls
    refusal: str | None
    prompt_tokens: int
    completion_tokens: int


def _seed(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(*parts: str) -> float:
    """A uniform number in [0, 1) that is a pure function of ``parts``."""
    return _seed(*parts) / 2.0**64


class _Chain:
    """The ``diverge_from`` chain of one model for one prompt: root first."""

    __slots__ = ("key", "levels", "root")

    def __init__(self, profiles: ProfileSet, model: str, key: str) -> None:
        names = list(reversed(profiles.lineage(model)))
        self.root = names[0]
        self.levels: list[tuple[str, ModelProfile]] = [(n, profiles[n]) for n in names]
        self.key = key

    def hit(self, label: str, rate: float) -> bool:
        """Root-seeded draw: equal rates fail on the same prompts, higher ones on more."""
        return rate > 0 and _unit(self.root, self.key, label) < rate

    def leaf_seed(self, path: str) -> int:
        seed = _seed(self.root, self.key, path)
        for name, profile in self.levels[1:]:
            if profile.divergence > 0 and _unit(name, self.key, path, "d") < profile.divergence:
                seed = _seed(name, self.key, path)
        return seed


def simulate(profiles: ProfileSet, model: str, prompt: SimPrompt) -> SimAnswer:
    """The answer ``model`` gives to ``prompt`` (``model`` must be in ``profiles``)."""
    chain = _Chain(profiles, model, prompt.key)
    profile = profiles[model]
    tool = _tool_to_call(chain, profile, prompt)
    content: str | None = None
    calls: tuple[SimToolCall, ...] = ()
    finish = "stop"
    if tool is not None:
        calls = (_tool_call(chain, profile, tool),)
        finish = "tool_calls"
    elif prompt.output_format is not OutputFormat.TEXT:
        content = _json_text(chain, profile, prompt)
    else:
        content = _render(_prose(chain, prompt))

    refusal = None
    if chain.hit("refusal", profile.refusal_rate):
        refusal, calls, finish = REFUSAL_TEXT, (), "stop"
        # Structured outputs report a refusal in its own field with no content.
        content = None if prompt.output_format is OutputFormat.JSON_SCHEMA else REFUSAL_TEXT
    elif chain.hit("truncation", profile.truncation_rate):
        fraction = 0.3 + 0.5 * _unit(chain.root, chain.key, "cut")
        content, calls = _cut(content, calls, fraction=fraction)
        finish = "length"

    completion = count_tokens(content) + sum(count_tokens(c.arguments) for c in calls)
    if prompt.max_tokens is not None and completion > prompt.max_tokens:
        content, calls = _cut(content, calls, chars=prompt.max_tokens * CHARS_PER_TOKEN)
        finish = "length"
        completion = count_tokens(content) + sum(count_tokens(c.arguments) for c in calls)
    return SimAnswer(content, calls, finish, refusal, prompt.prompt_tokens(), completion)


def _tool_to_call(chain: _Chain, profile: ModelProfile, prompt: SimPrompt) -> ToolSpec | None:
    if not prompt.tools or prompt.tool_choice == "none" or prompt.last_role == "tool":
        return None
    by_name = {t.name: t for t in prompt.tools}
    if prompt.tool_choice in by_name:
        return by_name[prompt.tool_choice]
    mentioned = [t for t in prompt.tools if t.name.lower() in prompt.last_user_text().lower()]
    if mentioned:
        return mentioned[0]
    if prompt.tool_choice != "required" and not chain.hit("tool_use", profile.tool_use_rate):
        return None
    return prompt.tools[_seed(chain.root, chain.key, "tool") % len(prompt.tools)]


def _tool_call(chain: _Chain, profile: ModelProfile, tool: ToolSpec) -> SimToolCall:
    args = value_for_schema(tool.parameters, lambda p: chain.leaf_seed(f"tool:{tool.name}:{p}"))
    name = tool.name
    if chain.hit("wrong_tool", profile.wrong_tool_call_rate):
        if _unit(chain.root, chain.key, "wrong_tool_kind") < 0.5:
            name = f"{tool.name}_v2"  # a tool the request never offered
        else:
            args = break_schema(args, tool.parameters)
    call_id = (
        "call_" + hashlib.blake2b(f"{chain.root}{chain.key}".encode(), digest_size=12).hexdigest()
    )
    return SimToolCall(call_id, name, json.dumps(args, ensure_ascii=False))


def _json_text(chain: _Chain, profile: ModelProfile, prompt: SimPrompt) -> str:
    schema = prompt.json_schema if prompt.json_schema is not None else _JSON_OBJECT_SCHEMA
    value = value_for_schema(schema, lambda p: chain.leaf_seed(f"json:{p}"))
    text = json.dumps(value, ensure_ascii=False)
    if chain.hit("invalid_json", profile.invalid_json_rate):
        # A trailing comma before the final bracket: never valid JSON, looks like a slip.
        text = f"{text[:-1]}, {text[-1]}" if text[-1:] in "}]" else f"{text}, }}"
    return text


def _prose(chain: _Chain, prompt: SimPrompt) -> list[list[str]]:
    root_name, root = chain.levels[0]
    rng = random.Random(_seed(root_name, chain.key, "text"))
    target = max(3, round((25 + rng.randint(0, 95)) * root.verbosity))
    sentences = _write(rng, target, prompt.topic_words())
    for name, profile in chain.levels[1:]:
        sentences = _rescale(sentences, profile.verbosity, name, chain.key, prompt)
        if profile.divergence > 0:
            sentences = _diverge(sentences, profile.divergence, name, chain.key)
    return sentences


def _write(rng: random.Random, words: int, topic: Sequence[str]) -> list[list[str]]:
    # About 15 % of the words come from the prompt's topic words, so answers to
    # related prompts share vocabulary (and their embeddings are close).
    population = (
        WORDS + tuple(topic) * max(1, round(_TOPIC_WEIGHT / len(topic))) if topic else WORDS
    )
    flat = rng.choices(population, k=words)
    sentences: list[list[str]] = []
    start = 0
    while start < words:
        size = 6 + int(rng.random() * 11)
        sentences.append(flat[start : start + size])
        start += size
    return sentences


def _rescale(
    sentences: list[list[str]], factor: float, name: str, key: str, prompt: SimPrompt
) -> list[list[str]]:
    if factor == 1.0:
        return sentences
    total = sum(len(s) for s in sentences)
    target = max(1, round(total * factor))
    if target > total:
        rng = random.Random(_seed(name, key, "more"))
        return sentences + _write(rng, target - total, prompt.topic_words())
    kept: list[list[str]] = []
    for sentence in sentences:
        room = target - sum(len(s) for s in kept)
        if room <= 0:
            break
        kept.append(sentence[:room])
    return kept


def _diverge(sentences: list[list[str]], rate: float, name: str, key: str) -> list[list[str]]:
    rng = random.Random(_seed(name, key, "diverge"))
    out = []
    for sentence in sentences:
        changed = []
        for word in sentence:
            # Draw both numbers for every word so position i always sees the same pair:
            # a higher rate changes a superset of the words a lower one changes.
            u, index = rng.random(), int(rng.random() * len(WORDS))
            if u < rate:
                new = WORDS[index]
                word = new if new != word else WORDS[(index + 1) % len(WORDS)]
            changed.append(word)
        out.append(changed)
    return out


def _render(sentences: list[list[str]]) -> str:
    paragraphs = []
    for start in range(0, len(sentences), _SENTENCES_PER_PARAGRAPH):
        group = sentences[start : start + _SENTENCES_PER_PARAGRAPH]
        paragraphs.append(" ".join(_sentence(s) for s in group if s))
    return "\n\n".join(p for p in paragraphs if p)


def _sentence(words: list[str]) -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def _cut(
    content: str | None,
    calls: tuple[SimToolCall, ...],
    *,
    fraction: float | None = None,
    chars: int | None = None,
) -> tuple[str | None, tuple[SimToolCall, ...]]:
    def shorten(text: str) -> str:
        limit = chars if chars is not None else max(1, int(len(text) * (fraction or 0.5)))
        if len(text) <= limit:
            return text
        cut = text[:limit]
        # Stop on a word boundary like a tokenizer would, keeping at least something.
        space = cut.rfind(" ")
        return cut[:space] if space > limit // 2 else cut

    new_content = shorten(content) if content else content
    new_calls = tuple(SimToolCall(c.id, c.name, shorten(c.arguments)) for c in calls)
    return new_content, new_calls


def add_sampling_noise(answer: SimAnswer, rate: float, rng: random.Random) -> SimAnswer:
    """Replace about ``rate`` of the words of a prose answer, drawing from ``rng``.

    Only prose is touched (not JSON, tool calls or refusals): it models sampling at
    temperature > 0, so asking the same model twice gives slightly different text.
    """
    if rate <= 0 or not answer.content or answer.refusal or answer.content[:1] in "{[":
        return answer
    words = answer.content.split(" ")
    for i, word in enumerate(words):
        if rng.random() < rate and word.isalpha():
            words[i] = rng.choice(WORDS)
    content = " ".join(words)
    return SimAnswer(
        content,
        answer.tool_calls,
        answer.finish_reason,
        answer.refusal,
        answer.prompt_tokens,
        count_tokens(content),
    )
