"""Run the gateway: uvicorn on uvloop and httptools, one or several processes on one port.

With ``workers > 1`` uvicorn's supervisor starts that many processes sharing the
listening socket; each builds its own runtime (tap thread, HTTP session, flag
evaluator) from the environment, and Prometheus metrics are aggregated across them
through ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import structlog
import uvicorn
from uvicorn.supervisors import Multiprocess

from shadowcanary.errors import ConfigError
from shadowcanary.gateway.app import GatewayApp
from shadowcanary.gateway.runtime import build_runtime, check_routes
from shadowcanary.logging import configure_logging
from shadowcanary.settings import Settings, load_settings

log = structlog.get_logger(__name__)

_BACKLOG = 4_096  # a burst of new client connections must queue, not be refused


def create_app() -> GatewayApp:
    """App factory for each worker process: settings from the environment."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return GatewayApp(lambda: build_runtime(settings, processes=settings.gateway.workers))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the gateway cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another --port (0 chooses a free one) or stop what is using it",
        ) from exc
    sock.listen(_BACKLOG)
    sock.set_inheritable(True)
    return sock


def _exit_when_orphaned(parent_pid: int) -> None:
    # Re-parented: whoever started us (a test run) is gone; do not hold the port forever.
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def serve(
    settings: Settings,
    *,
    port_file: Path | None = None,
    exit_with_parent: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM. Host, port and processes come from ``settings.gateway``.

    Raises:
        ConfigError: the port is taken, or the settings cannot serve (see build_runtime).
    """
    gateway = settings.gateway
    check_routes(settings)
    sock = _bind(gateway.host, gateway.port)
    bound = int(sock.getsockname()[1])
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(bound))
        os.replace(tmp, port_file)
    if exit_with_parent:
        threading.Thread(
            target=_exit_when_orphaned,
            args=(os.getppid(),),
            name="gateway-orphan-watch",
            daemon=True,
        ).start()
    log.info(
        "gateway listening",
        url=f"http://{gateway.host}:{bound}/v1",
        workers=gateway.workers,
        routes=sorted(gateway.routes),
        models=sorted(settings.models),
        services=len(gateway.api_keys),
    )
    options = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_config": None,  # keep shadowcanary's structlog configuration
        "backlog": _BACKLOG,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": 5,
        "server_header": False,
        "proxy_headers": False,  # the gateway reads no client address
    }
    if gateway.workers == 1:
        app = GatewayApp(lambda: build_runtime(settings))
        uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])  # type: ignore[arg-type]
        return
    # Worker processes read their settings from the environment (spawned, not forked).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="sc-gw-metrics-"))
    os.environ["SHADOWCANARY_GATEWAY__WORKERS"] = str(gateway.workers)
    config = uvicorn.Config(
        "shadowcanary.gateway.server:create_app",
        factory=True,
        workers=gateway.workers,
        **options,  # type: ignore[arg-type]
    )
    Multiprocess(config, sockets=[sock]).run()


def main() -> None:
    """``python -m shadowcanary.gateway [--port-file F] [--exit-with-parent]`` (tests, bench)."""
    import argparse

    parser = argparse.ArgumentParser(description="shadowcanary OpenAI-compatible gateway")
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--exit-with-parent", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    configure_logging(settings.log_level)
    serve(settings, port_file=args.port_file, exit_with_parent=args.exit_with_parent)
