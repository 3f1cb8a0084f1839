"""What every HTTP server of ours (simulator, gateway) does before uvicorn takes over.

Each binds its own listening socket (so ``port=0`` can pick a free port that the
parent reads back, and several uvicorn worker processes can share one socket), and
each stops itself when the process that started it is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import structlog

from shadowcanary.errors import ConfigError

log = structlog.get_logger(__name__)

BACKLOG = 4_096  # a burst of new client connections must queue, not be refused


def bind_socket(host: str, port: int, *, server: str) -> socket.socket:
    """A listening, inheritable TCP socket; ``port=0`` picks a free one (getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the {server} cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another --port (0 chooses a free one) or stop what is using it",
        ) from exc
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def exit_when_orphaned(parent_pid: int) -> None:
    """Run in a daemon thread: SIGTERM ourselves once re-parented.

    Re-parenting means whoever started us (a killed test run) is gone: stop gracefully
    instead of holding a port forever.
    """
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    log.warning("parent exited; stopping", parent_pid=parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
