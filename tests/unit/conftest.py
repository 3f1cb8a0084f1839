"""Unit tests are pure and fast: each gets a short timeout instead of the suite's 300 s."""

from __future__ import annotations

import pytest

UNIT_TIMEOUT_S = 60  # generous for a loaded CI machine; a hang still fails in a minute


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))
