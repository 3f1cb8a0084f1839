"""The one contract every FlagBackend meets, run over each backend by test_flags.py.

The tests take a fixture ``case`` (a BackendCase) that test_flags.py parametrizes.

A backend under test comes as a ``BackendCase``: the backend itself, a way to take
its service down, and a copy of it holding wrong credentials (with the secret that
must never appear in an error).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pytest

from flags.base import FlagBackend, FlagSpec, Stickiness
from shadowcanary.errors import FlagNotFound, FlagRejected, ServiceUnavailable


@dataclass
class BackendCase:
    name: str
    backend: FlagBackend
    # The backend while its service (Unleash / Postgres) is down.
    down: Callable[[], AbstractContextManager[FlagBackend]]
    # The backend with credentials that may not manage flags, and their secret.
    wrong_credentials: Callable[[], tuple[FlagBackend, str]]


def new_spec(stickiness: Stickiness = "userId", candidate: str = "gpt-5.5") -> FlagSpec:
    return FlagSpec(
        name=f"canary-{uuid.uuid4().hex[:12]}",
        project="default",
        environment="development",
        stickiness=stickiness,
        baseline_model="gpt-5.2",
        candidate_model=candidate,
    )


@pytest.mark.parametrize("stickiness", ["userId", "conversationId"])
def test_ensure_flag_creates_a_missing_flag_at_zero(
    case: BackendCase, stickiness: Stickiness
) -> None:
    """A new flag exists at 0 % with the requested stickiness and the candidate variant."""
    spec = new_spec(stickiness)
    created = case.backend.ensure_flag(spec)
    assert created.name == spec.name
    assert created.rollout_percent == 0
    assert created.effective_percent == 0
    assert created.stickiness == stickiness
    assert created.candidate_model == "gpt-5.5"
    assert case.backend.read(spec.name) == created


def test_ensure_flag_leaves_an_existing_flag_alone(case: BackendCase) -> None:
    """ensure_flag on an existing flag changes nothing: a restart never undoes a rollout."""
    spec = new_spec()
    case.backend.ensure_flag(spec)
    at_30 = case.backend.set_rollout(spec.name, 30)
    again = case.backend.ensure_flag(dataclasses.replace(spec, candidate_model="another-model"))
    assert again == at_30
    assert (again.rollout_percent, again.candidate_model) == (30, "gpt-5.5")


def test_set_rollout_steps_are_visible_on_read(case: BackendCase) -> None:
    """Each step 10 -> 30 -> 50 -> 100 is what the next read returns, flag on, variant kept."""
    spec = new_spec()
    case.backend.ensure_flag(spec)
    for percent in (10, 30, 50, 100):
        returned = case.backend.set_rollout(spec.name, percent)
        read = case.backend.read(spec.name)
        assert returned == read
        assert (read.enabled, read.rollout_percent, read.effective_percent) == (
            True,
            percent,
            percent,
        )
        assert read.candidate_model == "gpt-5.5"


def test_disable_rolls_back_to_zero_and_set_rollout_turns_it_on_again(
    case: BackendCase,
) -> None:
    """disable leaves the flag off at 0 % (nobody on the candidate); a later step re-enables."""
    spec = new_spec()
    case.backend.ensure_flag(spec)
    case.backend.set_rollout(spec.name, 50)
    disabled = case.backend.disable(spec.name)
    assert (disabled.enabled, disabled.rollout_percent, disabled.effective_percent) == (
        False,
        0,
        0,
    )
    assert case.backend.read(spec.name) == disabled
    again = case.backend.set_rollout(spec.name, 10)
    assert (again.enabled, again.effective_percent) == (True, 10)


def test_unknown_flag_is_flag_not_found(case: BackendCase) -> None:
    """Reading or changing a flag that does not exist raises FlagNotFound naming it."""
    name = f"missing-{uuid.uuid4().hex[:8]}"
    changes: list[Callable[[], object]] = [
        lambda: case.backend.read(name),
        lambda: case.backend.set_rollout(name, 10),
        lambda: case.backend.disable(name),
    ]
    for change in changes:
        with pytest.raises(FlagNotFound, match=name):
            change()


@pytest.mark.parametrize("percent", [-1, 101])
def test_percent_outside_0_to_100_is_refused(case: BackendCase, percent: int) -> None:
    """A percentage outside 0..100 is refused before anything changes."""
    spec = new_spec()
    case.backend.ensure_flag(spec)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        case.backend.set_rollout(spec.name, percent)
    assert case.backend.read(spec.name).rollout_percent == 0


def test_service_down_is_service_unavailable(case: BackendCase) -> None:
    """With the flag service down every call raises ServiceUnavailable (the controller HOLDs)."""
    spec = new_spec()
    case.backend.ensure_flag(spec)
    with case.down() as backend:
        calls: list[Callable[[], object]] = [
            lambda: backend.read(spec.name),
            lambda: backend.set_rollout(spec.name, 10),
            lambda: backend.disable(spec.name),
            lambda: backend.ensure_flag(new_spec()),
        ]
        for call in calls:
            with pytest.raises(ServiceUnavailable) as caught:
                call()
            assert caught.value.hint
    assert case.backend.read(spec.name).rollout_percent == 0  # up again, unchanged


def test_wrong_credentials_are_rejected_without_the_secret(case: BackendCase) -> None:
    """Credentials that may not manage flags give FlagRejected with a hint, never the secret."""
    spec = new_spec()
    case.backend.ensure_flag(spec)
    backend, secret = case.wrong_credentials()
    calls: list[Callable[[], object]] = [
        lambda: backend.read(spec.name),
        lambda: backend.set_rollout(spec.name, 10),
    ]
    for call in calls:
        with pytest.raises(FlagRejected) as caught:
            call()
        assert caught.value.hint
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
    assert secret not in repr(backend)
    assert case.backend.read(spec.name).rollout_percent == 0
