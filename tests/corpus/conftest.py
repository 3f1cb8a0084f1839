"""Fixtures shared with tests/integration (simulator, worker) and tests/security (gateway)."""

from tests.integration.conftest import sim, worker_env
from tests.security.conftest import gateway

__all__ = ["gateway", "sim", "worker_env"]
