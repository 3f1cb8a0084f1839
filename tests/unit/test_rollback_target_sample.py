"""Which captures the workers replay: baseline answers, and a sample of candidate answers
sent to the baseline model (the rollback target, for the watch after 100 %)."""

from __future__ import annotations

import pytest

from shadowcanary.events import Arm, CallStatus
from shadowcanary.ingest.service import in_rollback_target_sample, needs_replay
from shadowcanary.testing.factories import make_event


@pytest.mark.parametrize(
    ("arm", "status", "rate", "replayed"),
    [
        (Arm.BASELINE, CallStatus.OK, 0.0, True),
        (Arm.BASELINE, CallStatus.ERROR, 1.0, False),
        (Arm.CANDIDATE, CallStatus.OK, 0.0, False),
        (Arm.CANDIDATE, CallStatus.OK, 1.0, True),
        (Arm.CANDIDATE, CallStatus.ERROR, 1.0, False),
    ],
)
def test_what_is_replayed(arm: Arm, status: CallStatus, rate: float, replayed: bool) -> None:
    """Successful baseline answers always; successful candidate answers at the target rate."""
    assert needs_replay(make_event(arm=arm, status=status), rate) is replayed


def test_the_rollback_target_sample_is_deterministic_and_near_its_rate() -> None:
    """The same event is sampled alike on every delivery; 20 % of events are sampled."""
    ids = [f"event-{i}" for i in range(5000)]
    first = [in_rollback_target_sample(i, 0.2) for i in ids]
    assert first == [in_rollback_target_sample(i, 0.2) for i in ids]
    assert 0.18 < sum(first) / len(ids) < 0.22
