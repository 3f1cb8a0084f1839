"""The data-path fixtures (simulator, worker environment, Unleash) shared with tests/integration."""

from tests.integration.conftest import sim, unleash, worker_env

__all__ = ["sim", "unleash", "worker_env"]
