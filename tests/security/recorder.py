"""A loopback HTTP server that records every request it gets (the canary for outbound calls)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorder:
    """Requests seen, as 'METHOD path' lines; ``url(path)`` builds URLs that point here."""

    port: int = 0
    hits: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


# What to answer a request with: (status, content type, body); default 200 "recorded".
Answer = Callable[[BaseHTTPRequestHandler], tuple[int, str, bytes]]


def _recorded(_request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return 200, "text/plain", b"recorded"


@contextmanager
def recording_server(answer: Answer = _recorded) -> Iterator[Recorder]:
    """Run a recorder on a free loopback port for the duration of the block."""
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            recorder.hits.append(f"{self.command} {self.path}")
            length = int(self.headers.get("content-length") or 0)
            recorder.bodies.append(self.rfile.read(length) if length else b"")
            recorder.headers.append({k.lower(): v for k, v in self.headers.items()})
            status, content_type, body = answer(self)
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _record

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
