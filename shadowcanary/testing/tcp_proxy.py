"""A loopback TCP proxy that injects network faults, for tests and benchmarks.

    with TcpProxy(target_port=redis.port) as proxy:   # clients connect to proxy.port
        proxy.set_fault(delay_ms=50)                    # every chunk waits 50 ms
        proxy.set_fault(cut_after_bytes=300)            # replies cut mid-stream
        proxy.set_fault(garbage=True)                   # an HTTP 200 that is not JSON
        proxy.set_fault(hang=True)                      # accept, never answer

Faults apply to connections accepted after ``set_fault`` (``delay_ms`` also to open
ones, at the next chunk), so a test can switch them mid-stream.

Why hand-written: the tools that do this (toxiproxy, tc netem, pumba) are a Go
server with its own HTTP API or need root and a network namespace; none is on PyPI.
What we need is one asyncio loop in a thread and a few dozen lines per fault, on a
loopback port the test owns, stopped with the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Self

from shadowcanary.testing.servers import free_port

_CHUNK = 65_536
# The invalid-JSON answer: a well-formed HTTP response whose body is not JSON.
_GARBAGE_BODY = b"<html>upstream proxy error: not json {"
_GARBAGE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_GARBAGE_BODY)).encode() + b"\r\nconnection: close\r\n\r\n"
) + _GARBAGE_BODY


@dataclass(frozen=True, slots=True)
class Fault:
    """What the proxy does to traffic: at most one of cut/garbage/hang, plus a delay."""

    delay_ms: float = 0.0  # before forwarding each chunk, both directions
    cut_after_bytes: int | None = None  # close both sides after this many reply bytes
    garbage: bool = False  # answer every request with _GARBAGE_RESPONSE, never forward
    hang: bool = False  # accept and read, never forward or answer
    refuse: bool = False  # close new connections at once (the server looks down)


@dataclass
class ProxyStats:
    """Counters since start (read from the test's thread; ints are atomic enough)."""

    connections: int = 0
    cut: int = 0
    garbage: int = 0
    hung: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` through one asyncio loop."""

    def __init__(self, target_port: int, *, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.stats = ProxyStats()
        self._fault = Fault()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def fault(self) -> Fault:
        return self._fault

    def set_fault(self, **changes: object) -> Fault:
        """Replace fields of the current fault (``set_fault()`` with none keeps it)."""
        self._fault = replace(self._fault, **changes)  # type: ignore[arg-type]
        return self._fault

    def clear(self) -> None:
        """Back to a transparent proxy."""
        self._fault = Fault()

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def drop_connections(self) -> None:
        """Close every open connection (both sides), as a network partition would."""
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cancel_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer, self._fault)
        except (OSError, asyncio.IncompleteReadError):
            pass  # a side closed or reset: the other side sees it as a closed socket
        except asyncio.CancelledError:
            pass  # drop_connections() or stop(): the sockets close below
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fault: Fault
    ) -> None:
        self.stats.connections += 1
        if fault.refuse:
            self.stats.refused += 1
            return
        if fault.hang:
            self.stats.hung += 1
            while await reader.read(_CHUNK):
                pass  # swallow the request; the client's timeout is what is tested
            return
        if fault.garbage:
            self.stats.garbage += 1
            await _read_http_request(reader)
            writer.write(_GARBAGE_RESPONSE)
            await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, up=True)),
            asyncio.ensure_future(
                self._pump(up_reader, writer, up=False, cut_after=fault.cut_after_bytes)
            ),
        ]
        try:
            # One side closing its write half is normal (the other may still answer);
            # a reset or a cut ends both.
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            up_writer.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        up: bool,
        cut_after: int | None = None,
    ) -> None:
        sent = 0
        while chunk := await source.read(_CHUNK):
            delay = self._fault.delay_ms
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            if cut_after is not None and sent + len(chunk) >= cut_after:
                sink.write(chunk[: max(0, cut_after - sent)])
                await sink.drain()
                self.stats.cut += 1
                # Both directions go: the client sees its reply end mid-body.
                raise ConnectionResetError("cut by the fault proxy")
            sent += len(chunk)
            if up:
                self.stats.bytes_up += len(chunk)
            else:
                self.stats.bytes_down += len(chunk)
            sink.write(chunk)
            await sink.drain()
        with contextlib.suppress(OSError):
            if sink.can_write_eof():
                sink.write_eof()


async def _read_http_request(reader: asyncio.StreamReader) -> None:
    """Consume one HTTP/1.1 request (headers and a Content-Length body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    if length:
        await reader.readexactly(length)


@contextlib.contextmanager
def tcp_proxy(target_port: int, *, port: int | None = None) -> Iterator[TcpProxy]:
    """A started ``TcpProxy`` for the ``with`` block."""
    proxy = TcpProxy(target_port, port=port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
