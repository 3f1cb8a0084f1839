"""Run the simulator with uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from shadowcanary.listening import BACKLOG, bind_socket, exit_when_orphaned
from shadowcanary.sim.app import create_app
from shadowcanary.sim.profiles import ProfileSet, load_profiles, profiles_from_mapping
from shadowcanary.sim.state import DEFAULT_MAX_BODY_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
log = structlog.get_logger(__name__)

ProfilesSource = ProfileSet | Mapping[str, Mapping[str, Any]] | Path | str | None


def as_profile_set(profiles: ProfilesSource) -> ProfileSet:
    """Profiles from a ``ProfileSet``, a ``{name: fields}`` mapping, a YAML path or defaults."""
    if isinstance(profiles, ProfileSet):
        return profiles
    if profiles is None or isinstance(profiles, Path | str):
        return load_profiles(profiles)
    return profiles_from_mapping(profiles)


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    profiles: ProfilesSource = None,
    admin_token: str | None = None,
    seed: int = 0,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    port_file: Path | None = None,
    log_level: str = "warning",
    exit_with_parent: bool = False,
) -> None:
    """Serve the simulator until interrupted (SIGINT/SIGTERM stop it gracefully).

    ``port_file``, when given, receives the bound port once the socket listens
    (useful with ``port=0``); it is written atomically. ``exit_with_parent`` stops
    the server when the process that started it dies (used by the test helper).
    """
    profile_set = as_profile_set(profiles)
    app = create_app(profile_set, admin_token=admin_token, seed=seed, max_body_bytes=max_body_bytes)
    sock = bind_socket(host, port, server="simulator")
    bound = int(sock.getsockname()[1])
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(bound))
        os.replace(tmp, port_file)
    log.info(
        "simulator listening",
        url=f"http://{host}:{bound}/v1",
        models=profile_set.names(),
        seed=seed,
        admin_api=admin_token is not None,
    )
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        backlog=BACKLOG,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
        server_header=False,
        # No proxy in front of a simulator: skip the per-request forwarded-header pass.
        proxy_headers=False,
    )
    if exit_with_parent:
        watcher = threading.Thread(
            target=exit_when_orphaned, args=(os.getppid(),), name="sim-orphan-watch", daemon=True
        )
        watcher.start()
    uvicorn.Server(config).run(sockets=[sock])
