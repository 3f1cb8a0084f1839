"""Which pairs the judge worker judges: like with like, the noise floor, the plan's choice."""

from __future__ import annotations

from shadowcanary.events import CapturedCall, ChatMessage
from shadowcanary.plan import JudgeRubric
from shadowcanary.replay.judging import PlanJudging, due_pairs, in_judge_sample, prompt_was_redacted
from shadowcanary.shadow_results import JudgeReference, ReplayKind
from shadowcanary.store.judge_store import JudgeInputs, answer_text
from shadowcanary.testing.factories import make_event


def _event(prompt: str) -> CapturedCall:
    event = make_event()
    request = event.request.model_copy(
        update={"messages": [ChatMessage(role="user", content=prompt)]}
    )
    return event.model_copy(update={"request": request})


def _kinds(item: JudgeInputs, candidate: bool = True) -> dict[ReplayKind, JudgeReference]:
    return {p.kind: p.reference_kind for p in due_pairs(item, candidate=candidate)}


def test_a_plain_prompt_is_judged_against_the_live_answer_and_feeds_the_noise_floor() -> None:
    """No redaction: the candidate against the live answer; B2 against it for the noise floor."""
    item = JudgeInputs(_event("How do I reset my password?"), "C", "B2", noise_replayed=True)
    assert _kinds(item) == {
        ReplayKind.CANDIDATE: JudgeReference.LIVE,
        ReplayKind.NOISE: JudgeReference.LIVE,
    }


def test_a_redacted_prompt_is_judged_against_the_baseline_asked_again() -> None:
    """Redaction changed the prompt: the candidate meets B2 on the same prompt; no noise pair."""
    event = _event("My email is [EMAIL], where is my order?")
    assert prompt_was_redacted(event)
    item = JudgeInputs(event, "C", "B2", noise_replayed=True)
    assert _kinds(item) == {ReplayKind.CANDIDATE: JudgeReference.BASELINE_AGAIN}
    pair = due_pairs(item, candidate=True)[0]
    assert (pair.reference, pair.other, pair.redacted) == ("B2", "C", True)


def test_a_redacted_prompt_waits_for_the_baseline_asked_again() -> None:
    """Without B2 yet, a redacted prompt is not judged against the live answer."""
    item = JudgeInputs(_event("Card [CARD] was charged twice"), "C", None, noise_replayed=False)
    assert due_pairs(item, candidate=True) == []


def test_pairs_already_judged_or_outside_the_sample_are_skipped() -> None:
    """Each kind is judged once; an event outside the sample still feeds the noise floor."""
    event = _event("How do I reset my password?")
    done = JudgeInputs(event, "C", "B2", True, judged=frozenset({ReplayKind.CANDIDATE}))
    assert _kinds(done) == {ReplayKind.NOISE: JudgeReference.LIVE}
    assert _kinds(JudgeInputs(event, "C", "B2", True), candidate=False) == {
        ReplayKind.NOISE: JudgeReference.LIVE
    }


def test_the_judge_sample_is_deterministic_and_near_its_rate() -> None:
    """The same event is in or out on every delivery; about `rate` of events are in."""
    ids = [f"event-{i:06d}" for i in range(4000)]
    picked = [in_judge_sample(i, 0.25) for i in ids]
    assert picked == [in_judge_sample(i, 0.25) for i in ids]
    assert 0.22 < sum(picked) / len(ids) < 0.28
    assert not any(in_judge_sample(i, 0.0) for i in ids[:100])


def test_only_rollouts_whose_plan_uses_the_judge_are_judged() -> None:
    """A plan without judge_score costs no judge calls; its route rubric is used when on."""
    plans = {
        "on": (JudgeRubric(routes={"billing": ("format",)}), True),
        "off": (JudgeRubric(), False),
    }
    judging = PlanJudging(plans.get)
    assert judging.judged("on") and not judging.judged("off")
    assert not judging.judged("unknown") and not judging.judged(None)
    assert judging.rubric("on", "billing") == ("format",)
    assert judging.rubric("on", "support")[0] == "correctness"


def test_tool_calls_are_shown_to_the_judge_as_text() -> None:
    """A tool call is text for the judge to read, never something to run."""
    output = {"text": None, "tool_calls": [{"name": "refund", "arguments": '{"id": 1}'}]}
    assert answer_text(output) == 'tool call refund({"id": 1})'
    assert answer_text({"text": "", "refusal": "I can't help"}) == "I can't help"
    assert answer_text(None) is None
