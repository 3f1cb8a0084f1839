"""Run the gateway: uvicorn on uvloop and httptools, one or several processes on one port.

The HTTP protocol is uvicorn's httptools one with limits on reading a request
(``connection.py``: head size, head and body deadlines).

With ``workers > 1`` uvicorn's supervisor starts that many processes sharing the
listening socket; each builds its own runtime (tap thread, HTTP session, flag
evaluator) from the environment, and Prometheus metrics are aggregated across them
through ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import structlog
import uvicorn
from uvicorn.supervisors import Multiprocess

from shadowcanary.gateway.app import GatewayApp
from shadowcanary.gateway.connection import ConnectionLimits, GatewayServerConfig
from shadowcanary.gateway.resources import build_runtime, check_routes
from shadowcanary.listening import BACKLOG, bind_socket, exit_when_orphaned
from shadowcanary.logging import configure_logging
from shadowcanary.settings import Settings, load_settings

log = structlog.get_logger(__name__)


def create_app() -> GatewayApp:
    """App factory for each worker process: settings from the environment."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return GatewayApp(lambda: build_runtime(settings, processes=settings.gateway.workers))


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
    sock = bind_socket(gateway.host, gateway.port, server="gateway")
    bound = int(sock.getsockname()[1])
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(bound))
        os.replace(tmp, port_file)
    if exit_with_parent:
        threading.Thread(
            target=exit_when_orphaned,
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
    limits = ConnectionLimits.from_settings(gateway)
    options = {
        "loop": "uvloop",
        "ws": "none",  # no WebSocket endpoints: an Upgrade is an ordinary request
        "lifespan": "on",
        "access_log": False,
        "log_config": None,  # keep shadowcanary's structlog configuration
        "backlog": BACKLOG,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": 5,
        "server_header": False,
        "proxy_headers": False,  # the gateway reads no client address
    }
    if gateway.workers == 1:
        app = GatewayApp(lambda: build_runtime(settings))
        config = GatewayServerConfig(app, limits=limits, **options)
        uvicorn.Server(config).run(sockets=[sock])
        return
    # Worker processes read their settings from the environment (spawned, not forked).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="sc-gw-metrics-"))
    os.environ["SHADOWCANARY_GATEWAY__WORKERS"] = str(gateway.workers)
    config = GatewayServerConfig(
        "shadowcanary.gateway.server:create_app",
        limits=limits,
        factory=True,
        workers=gateway.workers,
        **options,
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
