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
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import shadowcanary
from shadowcanary.errors import ConfigError

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


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_healthy(
    proc: subprocess.Popen[bytes], port_file: Path, log_path: Path, deadline: float
) -> int:
    port: int | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SimulatorFailed(
                f"simulator exited with code {proc.returncode} during start-up:\n"
                f"{_log_tail(log_path)}"
            )
        if port is None and port_file.exists():
            text = port_file.read_text().strip()
            port = int(text) if text.isdigit() else None
        if port is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                    return port
        time.sleep(0.02)
    raise SimulatorFailed(f"simulator not healthy before the deadline:\n{_log_tail(log_path)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


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
    workdir = Path(tempfile.mkdtemp(prefix="sc-sim-"))
    port_file = workdir / "port"
    log_path = workdir / "sim.log"
    cmd = [sys.executable, "-m", "shadowcanary.sim", "--host", "127.0.0.1"]
    cmd += ["--port", str(port or 0), "--port-file", str(port_file)]
    # --exit-with-parent: a crashed or killed test run leaves no simulator behind.
    cmd += ["--admin-token", admin_token, "--seed", str(seed), "--exit-with-parent"]
    if profiles is not None:
        profiles_path = workdir / "profiles.yaml"
        # JSON is valid YAML, and exact for floats.
        profiles_path.write_text(json.dumps({"models": profiles}))
        cmd += ["--profiles", str(profiles_path)]
    if max_body_bytes is not None:
        cmd += ["--max-body-bytes", str(max_body_bytes)]
    env = dict(os.environ)
    package_root = str(Path(shadowcanary.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        bound = _wait_until_healthy(proc, port_file, log_path, time.monotonic() + startup_timeout_s)
        yield SimHandle(
            base_url=f"http://127.0.0.1:{bound}/v1",
            admin_token=admin_token,
            port=bound,
            log_path=log_path,
        )
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
