"""The fault suite's harness: steady traffic through the real tap, and the books.

Plain helpers (not fixtures). ``SteadyTraffic`` emits captured calls at a fixed rate
through a real ``Tap`` (the emitter services run) into Redis while a fault is
injected; ``read_books`` then asks Postgres where every accepted event ended up, and
``assert_balanced`` states the guarantee: each event accepted is stored once, and
each stored baseline answer has exactly one candidate comparison or one dead letter
with a reason, and the per-minute rollups count each of them exactly once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text

from shadowcanary.launcher.processes import ChildProcess, child_env, spawn_logged
from shadowcanary.settings import TapSettings
from shadowcanary.tap.emitter import Tap, TapStats
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until


def outage_s() -> float:
    """How long the outage tests keep a service down (FAULTS_OUTAGE_S, 30 s)."""
    return float(os.environ.get("FAULTS_OUTAGE_S", "30"))


@dataclass
class SteadyTraffic:
    """A thread emitting ``rate`` captured baseline calls per second through a real tap."""

    tap: Tap
    rollout: str
    rate: float = 40.0
    emitted: list[str] = field(default_factory=list)
    emit_seconds: list[float] = field(default_factory=list)  # caller's cost of each emit
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyTraffic:
        self._thread = threading.Thread(target=self._run, daemon=True, name="steady-traffic")
        self._thread.start()
        return self

    def _run(self) -> None:
        # One validated template, copied: validating every event costs the shared CPU.
        template = make_event(rollout=self.rollout)
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            event = template.model_copy(update={"event_id": os.urandom(16).hex()})
            started = time.perf_counter()
            self.tap.emit(event)
            self.emit_seconds.append(time.perf_counter() - started)
            self.emitted.append(event.event_id)
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> TapStats:
        """Stop emitting, flush the tap, and return its final counters."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.tap.close(timeout_s=10)
        return self.tap.stats()

    def count(self) -> int:
        return len(self.emitted)


@contextmanager
def steady_traffic(redis_url: str, rollout: str, rate: float = 40.0) -> Iterator[SteadyTraffic]:
    """Traffic for the ``with`` block; the caller calls ``stop()`` to read the final stats."""
    settings = TapSettings(flush_interval_s=0.02, publish_timeout_s=0.3)
    traffic = SteadyTraffic(Tap(settings, redis_url), rollout, rate).start()
    try:
        yield traffic
    finally:
        traffic.stop()


@dataclass(frozen=True, slots=True)
class Books:
    """Where every event of one rollout ended up, read from Postgres."""

    stored: frozenset[str]
    compared: int  # stored events with a candidate comparison
    dead_lettered: int  # stored events with a replay dead letter
    unaccounted: tuple[str, ...]  # stored, neither compared nor dead-lettered
    both: tuple[str, ...]  # compared AND dead-lettered: counted twice
    letters_without_reason: int
    live_rollup_requests: int
    shadow_rollup_n: int
    ingest_dead_letters: int

    def settled(self) -> bool:
        return not self.unaccounted

    def summary(self) -> str:
        """The counts, and a few ids of each kind of event out of balance."""
        return (
            f"stored={len(self.stored)} compared={self.compared} "
            f"dead_lettered={self.dead_lettered} unaccounted={len(self.unaccounted)} "
            f"{_some(self.unaccounted)} both={len(self.both)} {_some(self.both)} "
            f"letters_without_reason={self.letters_without_reason} "
            f"ingest_dead_letters={self.ingest_dead_letters} "
            f"live_rollup_requests={self.live_rollup_requests} "
            f"shadow_rollup_n={self.shadow_rollup_n}"
        )


def _some(ids: Collection[str], n: int = 3) -> str:
    return f"e.g. {sorted(ids)[:n]}" if ids else ""


def read_books(engine: Engine, rollout: str) -> Books:
    # One snapshot for every count: workers still writing cannot make them disagree.
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:

        def ids(sql: str) -> list[str]:
            return [r[0] for r in conn.execute(text(sql), {"r": rollout})]

        def number(sql: str) -> int:
            return int(conn.execute(text(sql), {"r": rollout}).scalar() or 0)

        stored = frozenset(ids("select event_id from captures where rollout = :r"))
        compared_sql = (
            "exists (select 1 from comparisons m where m.event_id = c.event_id "
            "and m.kind = 'candidate')"
        )
        letter_sql = (
            "exists (select 1 from dead_letters d where d.event_id = c.event_id "
            "and d.stage = 'replay')"
        )
        base = "from captures c where c.rollout = :r and c.arm = 'baseline' and c.status = 'ok'"
        return Books(
            stored=stored,
            compared=number(f"select count(*) {base} and {compared_sql}"),
            dead_lettered=number(f"select count(*) {base} and {letter_sql}"),
            unaccounted=tuple(
                ids(f"select c.event_id {base} and not {compared_sql} and not {letter_sql}")
            ),
            both=tuple(ids(f"select c.event_id {base} and {compared_sql} and {letter_sql}")),
            letters_without_reason=number(
                "select count(*) from dead_letters d join captures c using (event_id) "
                "where c.rollout = :r and (d.message is null or d.message = '')"
            ),
            live_rollup_requests=number(
                "select coalesce(sum(requests), 0) from live_rollups where rollout = :r"
            ),
            shadow_rollup_n=number(
                "select coalesce(sum(n), 0) from shadow_rollups "
                "where rollout = :r and kind = 'candidate'"
            ),
            ingest_dead_letters=number("select count(*) from dead_letters where stage = 'ingest'"),
        )


def settle(
    engine: Engine,
    rollout: str,
    expected_at_least: int,
    timeout_s: float = 120,
    diagnostics: Callable[[], str] = lambda: "",
) -> Books:
    """Wait until at least ``expected_at_least`` events are stored and all are accounted for."""

    def probe() -> Books | None:
        books = read_books(engine, rollout)
        return books if len(books.stored) >= expected_at_least and books.settled() else None

    try:
        return wait_until(probe, timeout_s=timeout_s, interval_s=0.5, what="the books to settle")
    except TimeoutError as exc:
        books = read_books(engine, rollout)
        raise AssertionError(
            f"books never settled: expected >= {expected_at_least} stored; "
            f"{books.summary()}; output in {_keep(diagnostics())}"
        ) from exc


def _keep(output: str) -> str:
    path = Path(tempfile.mkstemp(prefix="sc-fault-", suffix=".log")[1])
    path.write_text(output)
    return str(path)


def assert_balanced(books: Books, emitted: list[str], stats: TapStats) -> None:
    """Every event the tap published is stored once and compared or dead-lettered once.

    Each failure says what was found: the counts of the books and of the tap, and a
    few ids of the events out of balance, so a red CI run explains itself.
    """
    found = f"books: {books.summary()}; tap: emitted={stats.emitted} published={stats.published} "
    found += f"dropped={stats.dropped_total} ({len(emitted)} emits recorded)"
    strangers = books.stored - set(emitted)
    assert not strangers, (
        f"{len(strangers)} stored events never emitted {_some(strangers)}; {found}"
    )
    assert len(emitted) == stats.emitted, f"the tap did not see every emit; {found}"
    # The tap counts a batch whose publish timed out as dropped although Redis may
    # have taken it: so the stored count lies between published and published+failed.
    assert len(books.stored) >= stats.published, (
        f"lost: {stats.published - len(books.stored)} published events never stored; {found}"
    )
    assert len(books.stored) <= stats.published + stats.dropped_total, (
        f"more stored than published or dropped; {found}"
    )
    assert not books.unaccounted, (
        f"{len(books.unaccounted)} stored events have no outcome {_some(books.unaccounted)}; "
        f"{found}"
    )
    assert not books.both, (
        f"{len(books.both)} events both compared and dead-lettered {_some(books.both)}; {found}"
    )
    assert books.compared + books.dead_lettered == len(books.stored), (
        f"compared + dead_lettered = {books.compared + books.dead_lettered} "
        f"!= {len(books.stored)} stored; {found}"
    )
    assert books.letters_without_reason == 0, f"dead letters without a reason; {found}"
    assert books.ingest_dead_letters == 0, f"valid events dead-lettered at ingest; {found}"
    # Exactly-once effect: the rollups count each capture and each comparison once.
    assert books.live_rollup_requests == len(books.stored), f"live rollups != captures; {found}"
    assert books.shadow_rollup_n == books.compared, f"shadow rollups != comparisons; {found}"


# --- the controller as a real process ---------------------------------------------------


@dataclass
class ControllerProcess(ChildProcess):
    """``shadowcanary controller run`` in a subprocess; its output goes to ``log``."""

    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def controller_process(
    env: dict[str, str],
    rollout: str,
    log: Path,
    *,
    interval: str = "300ms",
    all_rollouts: bool = False,
) -> Iterator[ControllerProcess]:
    """The controller driving ``rollout`` (or, with ``all_rollouts``, ``--all``)."""
    full = child_env({"SHADOWCANARY_LOG_LEVEL": "info", **env})
    runbooks = os.environ.get("SHADOWCANARY_RUNBOOKS_DIR")
    if runbooks and "SHADOWCANARY_RUNBOOKS_DIR" not in env:
        full["SHADOWCANARY_RUNBOOKS_DIR"] = runbooks
    code = "from shadowcanary.cli.rollout import controller_app; controller_app()"
    which = ["--all"] if all_rollouts else ["--rollout", rollout]
    args = ["run", *which, "--interval", interval, "--max-backoff", "1s"]
    proc = spawn_logged([sys.executable, "-c", code, *args], full, log)
    handle = ControllerProcess(proc, log)
    try:
        yield handle
    finally:
        handle.stop()
