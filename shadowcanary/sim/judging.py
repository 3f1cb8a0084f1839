"""The simulator's LLM judge: verdicts that follow the profiles' known quality.

The simulator remembers which model wrote each answer it served (a bounded map from a
digest of the text to that model's ``quality_on(prompt)``). A model with
``role: judge`` reads the judge document (judge/pairwise.py's keys), looks both
answers up and draws a verdict:

    with probability judge_position_bias: "A" (whatever the answers say)
    else d = q_A - q_B + N(0, judge_noise):  |d| < judge_tie_margin -> tie, else the larger

so tests and benchmarks know the truth: a candidate profile with ``quality: -1`` loses
most pairs, one with ``quality: 1`` wins them whatever its wording. An answer the
simulator did not write (another process's, a tool call rendered as text) has quality 0.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict

from shadowcanary.judge.pairwise import FIRST_KEY, MAX_TEXT_CHARS, SECOND_KEY
from shadowcanary.sim.output import SimAnswer
from shadowcanary.sim.profiles import ModelProfile
from shadowcanary.sim.prompt import SimPrompt, count_tokens

_REMEMBERED = 200_000  # answers whose author the judge can look up (~20 MB)


def _digest(text: str) -> bytes:
    # What the judge sees of an answer is cut at MAX_TEXT_CHARS: remember the same cut.
    return hashlib.blake2b(text[:MAX_TEXT_CHARS].encode(), digest_size=16).digest()


class AnswerQualities:
    """Bounded memory of the quality of each answer the simulator served."""

    def __init__(self, capacity: int = _REMEMBERED) -> None:
        self._capacity = capacity
        self._quality: OrderedDict[bytes, float] = OrderedDict()

    def remember(self, text: str | None, quality: float) -> None:
        if not text:
            return
        key = _digest(text)
        self._quality[key] = quality
        self._quality.move_to_end(key)
        if len(self._quality) > self._capacity:
            self._quality.popitem(last=False)

    def quality_of(self, text: str) -> float:
        return self._quality.get(_digest(text), 0.0)


def draw_preference(
    first_quality: float, second_quality: float, judge: ModelProfile, rng: random.Random
) -> str:
    """ "A", "B" or "tie" for one judge call (the rule in the module docstring)."""
    # Always both draws, so changing one knob does not shift the other's sequence.
    biased = rng.random() < judge.judge_position_bias
    reading = first_quality - second_quality + rng.gauss(0.0, judge.judge_noise)
    if biased:
        return "A"
    if abs(reading) < judge.judge_tie_margin:
        return "tie"
    return "A" if reading > 0 else "B"


def judge_answer(
    prompt: SimPrompt, judge: ModelProfile, qualities: AnswerQualities, rng: random.Random
) -> SimAnswer:
    """The judge model's reply: a JSON verdict, or a tie when the document is unreadable."""
    document = _document(prompt)
    if document is None:
        winner, rationale = "tie", "the request was not a judge document"
    else:
        first, second = document
        winner = draw_preference(
            qualities.quality_of(first), qualities.quality_of(second), judge, rng
        )
        rationale = {
            "A": "answer A serves the rubric better (simulated judge)",
            "B": "answer B serves the rubric better (simulated judge)",
            "tie": "neither answer is clearly better (simulated judge)",
        }[winner]
    content = json.dumps({"winner": winner, "rationale": rationale})
    prompt_tokens = sum(count_tokens(text) + 3 for _, text in prompt.messages)
    return SimAnswer(
        content=content,
        tool_calls=(),
        finish_reason="stop",
        refusal=None,
        prompt_tokens=prompt_tokens,
        completion_tokens=count_tokens(content),
    )


def _document(prompt: SimPrompt) -> tuple[str, str] | None:
    for role, text in reversed(prompt.messages):
        if role != "user":
            continue
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        first, second = data.get(FIRST_KEY), data.get(SECOND_KEY)
        if isinstance(first, str) and isinstance(second, str):
            return first, second
        return None
    return None
