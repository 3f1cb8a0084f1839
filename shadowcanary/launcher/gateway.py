"""Start the gateway as a real subprocess for tests and benchmarks.

    with run_gateway({"SHADOWCANARY_REDIS_URL": ..., "SHADOWCANARY_MODELS": ...}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.api_key)

The gateway picks a free port and reports it through a file; ``api_key`` is a key
whose hash the helper configures (unless the environment sets the keys itself).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from shadowcanary.gateway.auth import hash_key
from shadowcanary.launcher.processes import child_env, scratch_dir, serve_with_port_file

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


@contextlib.contextmanager
def run_gateway(
    env: Mapping[str, str], *, startup_timeout_s: float = 30.0
) -> Iterator[GatewayHandle]:
    """Run ``python -m shadowcanary.gateway`` with ``env`` (SHADOWCANARY_* settings)."""
    full_env = child_env(
        {
            "SHADOWCANARY_GATEWAY__PORT": "0",
            "SHADOWCANARY_GATEWAY__API_KEYS": json.dumps(
                {"test-service": {"sha256": hash_key(GATEWAY_TEST_KEY), "rollouts": ["*"]}}
            ),
            **env,
        }
    )
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (
        scratch_dir("sc-gw-") as workdir,
        serve_with_port_file(
            "shadowcanary.gateway",
            [],
            workdir=workdir,
            env=full_env,
            ready_path="/readyz",
            what="gateway",
            failure=GatewayFailed,
            startup_timeout_s=startup_timeout_s,
            stop_grace_s=10.0,
        ) as served,
    ):
        port = served.port
        yield GatewayHandle(f"http://127.0.0.1:{port}/v1", port, served.proc.pid, served.log_path)
