"""ModelRouter over the real evaluation engine (yggdrasil, via StaticEvaluator): pure, no I/O."""

from __future__ import annotations

import pytest

from flags.base import FlagSpec, Stickiness
from flags.embedded import feature_json
from flags.router import ModelRouter, StaticEvaluator
from shadowcanary.events import hash_stickiness_key
from shadowcanary.tap.openai_wrapper import ModelRouter as TapModelRouter

BASELINE, CANDIDATE, SALT = "gpt-5.2", "gpt-5.5", "test-salt"
USERS = [f"user-{i}" for i in range(2000)]


def spec(stickiness: Stickiness = "userId", name: str = "canary-router") -> FlagSpec:
    return FlagSpec(
        name=name,
        project="default",
        environment="development",
        stickiness=stickiness,
        baseline_model=BASELINE,
        candidate_model=CANDIDATE,
    )


def router_at(
    percent: int, *, enabled: bool = True, stickiness: Stickiness = "userId"
) -> ModelRouter:
    flag = spec(stickiness)
    evaluator = StaticEvaluator([feature_json(flag, percent, enabled=enabled)])
    return ModelRouter(evaluator, flag.name, BASELINE, stickiness=stickiness, stickiness_salt=SALT)


def candidate_share(router: ModelRouter) -> float:
    models = [router.model_for({"user_id": user}) for user in USERS]
    return models.count(CANDIDATE) / len(models)


@pytest.mark.parametrize(
    ("percent", "enabled", "low", "high"),
    [
        (0, True, 0.0, 0.0),
        (10, True, 0.08, 0.12),
        (30, True, 0.27, 0.33),
        (50, True, 0.47, 0.53),
        (100, True, 1.0, 1.0),
        (100, False, 0.0, 0.0),  # disabled: rollback wins over any percentage
    ],
)
def test_share_of_users_on_the_candidate_follows_the_flag(
    percent: int, enabled: bool, low: float, high: float
) -> None:
    """The share of users routed to the candidate is the flag's effective percentage."""
    assert low <= candidate_share(router_at(percent, enabled=enabled)) <= high


def test_the_same_user_always_gets_the_same_model() -> None:
    """Routing is sticky: asking again for the same user gives the same model."""
    router = router_at(50)
    first = [router.model_for({"user_id": user}) for user in USERS[:500]]
    assert [router.model_for({"user_id": user}) for user in USERS[:500]] == first


def test_growing_the_canary_keeps_everyone_already_in_it() -> None:
    """Every user on the candidate at 10 % is still on it at 30 % and 50 %."""
    previous: set[str] = set()
    for percent in (10, 30, 50, 100):
        router = router_at(percent)
        current = {u for u in USERS if router.model_for({"user_id": u}) == CANDIDATE}
        assert previous <= current
        previous = current


@pytest.mark.parametrize(
    "context", [{}, {"user_id": ""}, {"conversation_id": "c-1"}, {"other": "x"}]
)
def test_no_stickiness_value_means_baseline(context: dict[str, str]) -> None:
    """Without the id the flag is sticky on, even at 100 % the call stays on the baseline."""
    assert router_at(100).model_for(context) == BASELINE
    assert router_at(100)(None) == BASELINE


def test_conversation_stickiness_routes_on_the_conversation_id() -> None:
    """A conversationId router keys on conversation_id, so one thread never switches model."""
    router = router_at(50, stickiness="conversationId")
    for conversation in [f"conv-{i}" for i in range(200)]:
        models = {
            router.model_for({"conversation_id": conversation, "user_id": user})
            for user in ("alice", "bob", "carol")
        }
        assert len(models) == 1
    assert router.model_for({"user_id": "alice"}) == BASELINE


def test_model_for_routes_on_the_same_hash_the_tap_hook_receives() -> None:
    """model_for(raw id) equals the tap hook called with HMAC(raw id): one arm per user."""
    router = router_at(50)
    hook: TapModelRouter = router  # the tap's model_router type accepts the router
    for user in USERS[:1000]:
        assert router.model_for({"user_id": user}) == hook(hash_stickiness_key(user, SALT))


def test_another_salt_buckets_users_differently_but_in_the_same_share() -> None:
    """The salt changes who is in the canary (so services must share it), not how many."""
    flag = spec()
    evaluator = StaticEvaluator([feature_json(flag, 30)])
    ours = router_at(30)
    theirs = ModelRouter(
        evaluator, flag.name, BASELINE, stickiness="userId", stickiness_salt="other-salt"
    )
    ours_in = {u for u in USERS if ours.model_for({"user_id": u}) == CANDIDATE}
    theirs_in = {u for u in USERS if theirs.model_for({"user_id": u}) == CANDIDATE}
    assert ours_in != theirs_in
    assert abs(len(ours_in) - len(theirs_in)) < 0.05 * len(USERS)


def test_unknown_flag_means_baseline() -> None:
    """A flag the evaluator does not know (not created yet, typo) routes to the baseline."""
    evaluator = StaticEvaluator([feature_json(spec(), 100)])
    router = ModelRouter(evaluator, "no-such-flag", BASELINE, stickiness="userId")
    assert {router.model_for({"user_id": u}) for u in USERS[:100]} == {BASELINE}


def test_flag_without_a_model_in_its_variant_means_baseline() -> None:
    """An SRE who deleted the variant payload sends everyone to the baseline, not to ''."""
    feature = feature_json(spec(), 100)
    feature["strategies"][0]["variants"] = []
    router = ModelRouter(StaticEvaluator([feature]), spec().name, BASELINE, stickiness="userId")
    assert {router.model_for({"user_id": u}) for u in USERS[:100]} == {BASELINE}


class _BrokenEvaluator:
    def candidate_for(self, flag: str, stickiness_value: str | None) -> str | None:
        raise RuntimeError("evaluator exploded")


def test_a_failing_evaluator_fails_open_to_the_baseline() -> None:
    """If evaluation raises, the call goes to the baseline and the caller sees no error."""
    router = ModelRouter(_BrokenEvaluator(), "f", BASELINE, stickiness="userId")
    assert router.model_for({"user_id": "alice"}) == BASELINE


def test_unsupported_stickiness_is_refused() -> None:
    """A stickiness the router cannot read from a context is a programming error."""
    with pytest.raises(ValueError, match="stickiness"):
        ModelRouter(_BrokenEvaluator(), "f", BASELINE, stickiness="sessionId")  # type: ignore[arg-type]
