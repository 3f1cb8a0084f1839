"""Start the gateway as a real subprocess for tests and benchmarks.

    with run_gateway({"SHADOWCANARY_REDIS_URL": ..., "SHADOWCANARY_MODELS": ...}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.api_key)

The gateway picks a free port and reports it through a file; ``api_key`` is a key
whose hash the helper configures (unless the environment sets the keys itself).
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

import httpx

import shadowcanary
from shadowcanary.gateway.auth import hash_key

GATEWAY_TEST_KEY = "sc-gw-test-key"


class GatewayFailed(RuntimeError):
    """The gateway subprocess did not start or died; the message has its log tail."""


@dataclass(frozen=True, slots=True)
class GatewayHandle:
    base_url: str  # http://127.0.0.1:PORT/v1
    port: int
    pid: int
    log_path: Path
    api_key: str = GATEWAY_TEST_KEY

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(proc: subprocess.Popen[bytes], port_file: Path, log: Path, deadline: float) -> int:
    port: int | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GatewayFailed(f"gateway exited with {proc.returncode}:\n{_tail(log)}")
        if port is None and port_file.exists():
            text = port_file.read_text().strip()
            port = int(text) if text.isdigit() else None
        if port is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                    return port
        time.sleep(0.05)
    raise GatewayFailed(f"gateway not ready before the deadline:\n{_tail(log)}")


@contextlib.contextmanager
def run_gateway(
    env: Mapping[str, str], *, startup_timeout_s: float = 30.0
) -> Iterator[GatewayHandle]:
    """Run ``python -m shadowcanary.gateway`` with ``env`` (SHADOWCANARY_* settings)."""
    workdir = Path(tempfile.mkdtemp(prefix="sc-gw-"))
    port_file = workdir / "port"
    log_path = workdir / "gateway.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")}
    full_env.setdefault("SHADOWCANARY_GATEWAY__PORT", "0")
    full_env["SHADOWCANARY_GATEWAY__API_KEYS"] = json.dumps(
        {"test-service": {"sha256": hash_key(GATEWAY_TEST_KEY)}}
    )
    full_env.update(env)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    package_root = str(Path(shadowcanary.__file__).resolve().parent.parent)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, full_env.get("PYTHONPATH")) if p
    )
    cmd = [sys.executable, "-m", "shadowcanary.gateway", "--port-file", str(port_file)]
    cmd.append("--exit-with-parent")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env
        )
    try:
        port = _wait_ready(proc, port_file, log_path, time.monotonic() + startup_timeout_s)
        yield GatewayHandle(f"http://127.0.0.1:{port}/v1", port, proc.pid, log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)
