"""The data-path fixtures (simulator, worker environment) shared with tests/integration."""

from tests.integration.conftest import sim, worker_env

__all__ = ["sim", "worker_env"]
