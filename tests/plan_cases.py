"""What the unit and corpus tests of rollout plans share: the smallest plan, the error check."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from shadowcanary.plan import PlanError, parse_plan

# Name, flag, baseline and candidate: the four lines every plan needs.
MINIMAL_PLAN = "name: checkout-gpt55\nflag: checkout-model\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"


def assert_plan_error(text: str, fragments: Sequence[str], *, source: str) -> str:
    """``text`` is refused with a PlanError that names ``source`` and holds every fragment.

    Returns the message for any further checks.
    """
    with pytest.raises(PlanError) as raised:
        parse_plan(text, source=source)
    message = str(raised.value)
    assert message.startswith(source), message[:300]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message[:2000]}"
    return message
