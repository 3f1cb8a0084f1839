"""Start the model simulator as a real subprocess for tests and benchmarks.

    with run_simulator({"gpt-5.2": {"median_ms": 5, "p99_ms": 10}}) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key)
        sim.set_profile("gpt-5.2", error_rate=1.0)
        sim.stats()["requests"]["gpt-5.2"]["500"]

The simulator listens on a port it picks itself (``--port 0``) and reports it through
a file, so parallel test runs never race for a port. The process is stopped on exit
from the ``with`` block, and by itself when the process that started it dies.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shadowcanary.errors import ConfigError
from shadowcanary.launcher.processes import child_env, scratch_dir, serve_with_port_file

SIM_API_KEY = "sim-key"


class SimulatorFailed(RuntimeError):
    """The simulator subprocess did not start or died; the message has its log tail."""


@dataclass(frozen=True, slots=True)
class SimHandle:
    """A running simulator: where it listens and how to steer it."""

    base_url: str  # http://127.0.0.1:PORT/v1 — give this to the OpenAI client
    admin_token: str
    port: int
    log_path: Path
    api_key: str = SIM_API_KEY

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = httpx.request(
            method,
            f"{self.root_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10.0,
        )
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise ConfigError(
                f"simulator admin {method} {path} -> {response.status_code}: {message}"
            )
        result: dict[str, Any] = response.json()
        return result

    def set_profile(self, model: str, **changes: Any) -> dict[str, Any]:
        """Change (or create) ``model``'s profile; takes effect on the next request."""
        profile: dict[str, Any] = self._admin("PUT", f"/admin/profiles/{model}", changes)["profile"]
        return profile

    def delete_profile(self, model: str) -> None:
        self._admin("DELETE", f"/admin/profiles/{model}")

    def profiles(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._admin("GET", "/admin/profiles")["profiles"]
        return result

    def stats(self) -> dict[str, Any]:
        """``{"requests": {model: {status: count}}, "total": n, ...}``."""
        return self._admin("GET", "/admin/stats")

    def reset_stats(self) -> None:
        self._admin("DELETE", "/admin/stats")

    def count(self, model: str, status: int = 200) -> int:
        """Requests answered so far for ``model`` with HTTP ``status``."""
        return int(self.stats()["requests"].get(model, {}).get(str(status), 0))


@contextlib.contextmanager
def run_simulator(
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    port: int | None = None,
    admin_token: str = "sim-admin",  # noqa: S107 - a throwaway test server's token
    seed: int = 0,
    max_body_bytes: int | None = None,
    startup_timeout_s: float = 20.0,
) -> Iterator[SimHandle]:
    """Run ``python -m shadowcanary.sim`` until the block exits.

    ``profiles`` is the complete set of models (``{name: {field: value}}``; unset
    fields take their defaults); None means the shipped defaults. To tweak the
    defaults, start from ``shadowcanary.sim.default_profiles()``.
    """
    args = ["--host", "127.0.0.1", "--port", str(port or 0)]
    args += ["--admin-token", admin_token, "--seed", str(seed)]
    if max_body_bytes is not None:
        args += ["--max-body-bytes", str(max_body_bytes)]
    with scratch_dir("sc-sim-") as workdir:
        if profiles is not None:
            profiles_path = workdir / "profiles.yaml"
            # JSON is valid YAML, and exact for floats.
            profiles_path.write_text(json.dumps({"models": profiles}))
            args += ["--profiles", str(profiles_path)]
        with serve_with_port_file(
            "shadowcanary.sim",
            args,
            workdir=workdir,
            env=child_env({}, inherit_settings=True),
            ready_path="/healthz",
            what="simulator",
            failure=SimulatorFailed,
            startup_timeout_s=startup_timeout_s,
            stop_grace_s=5.0,
        ) as served:
            yield SimHandle(
                base_url=f"http://127.0.0.1:{served.port}/v1",
                admin_token=admin_token,
                port=served.port,
                log_path=served.log_path,
            )
