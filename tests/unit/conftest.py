"""Unit tests are pure and fast: each gets a short timeout instead of the suite's 300 s."""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT_TIMEOUT_S = 60  # generous for a loaded CI machine; a hang still fails in a minute
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest calls this hook with the whole session's items, not only this folder's.
    for item in items:
        if item.path.is_relative_to(HERE) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))
