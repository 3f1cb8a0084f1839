"""The chaos books check: real traffic, real faults on a seeded schedule, then the books in SQL.

Two ``shadowcanary worker`` processes (supervised, as in production), a Redis with AOF
(``appendfsync everysec``), a durable Postgres and the simulator run while the real tap
(``Tap.emit`` and a ``tap_openai`` client) publishes events. A schedule drawn from
``seed`` kills a worker (``kill -9``), freezes one (SIGSTOP, then SIGCONT), crashes Redis
(``kill -9``, restarted from its AOF) or stops Postgres. Afterwards every event is looked
up in Postgres. ``tests/faults/test_chaos_books.py`` runs it short;
``bench/chaos_books.py`` runs it long and prints the figures.

What counts as lost "within the documented window" (docs/guarantees.md 2.2, 2.3, 2.5):
an event emitted from ``AOF_WINDOW_S`` before a Redis crash until Redis is back.
Counted apart, as ``lost_in_kill_window`` (guarantees 2.11): events emitted in the
``KILL_WINDOW_S`` before a worker's ``kill -9``, the one message kombu had popped but
not yet recorded as unacknowledged; at most one message (one tap batch) per kill. For a
worker killed just after a SIGSTOP/SIGCONT, that message may be the one Redis handed it
as it froze, so the window around the freeze counts for that kill too; for a worker
killed during a Postgres outage (or soon after), the message may be a retry of any batch
that met the outage, so the window runs from the outage's start.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, text

from shadowcanary import constants
from shadowcanary.events import CapturedCall
from shadowcanary.launcher.processes import child_env, spawn_logged
from shadowcanary.settings import TapSettings
from shadowcanary.tap.emitter import Tap
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import PostgresServer, RedisServer

# Redis fsyncs its AOF every second and the tap flushes every 50 ms: a crash may lose
# what was published in the last second or so (documented; not a defect).
AOF_WINDOW_S = 1.5
# The tap publishes every 50 ms and a worker pops a message within milliseconds, so the
# message a kill -9 can take with it (2.11) holds events from the last half second.
KILL_WINDOW_S = 0.5
# A worker killed this soon after a SIGCONT may not yet have recorded the message Redis
# handed its blocked BRPOP when it froze: that message is in the kill's window too.
THAW_WINDOW_S = 2.0
# While Postgres is down, ingest batches are retried (re-published, re-delivered) every
# few seconds, until up to the outage backoff's cap (10 s) after it is back: a kill then
# can take a retry of any batch emitted since the outage began.
RETRY_WINDOW_S = 15.0
ROLLOUT_EMIT = "chaos-emit"
ROLLOUT_OPENAI = "chaos-openai"
_CLI = "from shadowcanary.cli.main import app; app()"

# As in the probe: the candidate fails 20 % (500) and 0.3 % (429) of calls, the
# baseline 12 %; fast enough that two workers keep up on a shared 2-core machine.
SIM_PROFILES: dict[str, dict[str, Any]] = {
    "text-embedding-3-small": {"median_ms": 2, "p99_ms": 10},
    "gpt-5.2": {"median_ms": 20, "p99_ms": 80, "error_rate": 0.12},
    "gpt-5.5": {
        "median_ms": 30,
        "p99_ms": 120,
        "diverge_from": "gpt-5.2",
        "error_rate": 0.2,
        "rate_limit_rate": 0.003,
        "retry_after_s": 0.2,
    },
}


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    seconds: float = 75.0
    kills_per_minute: float = 6.0
    seed: int = 0
    emit_rate: float = 40.0  # events/s through Tap.emit
    openai_rate: float = 4.0  # calls/s through tap_openai
    visibility_timeout_s: int = 10
    settle_timeout_s: float = 240.0


@dataclass
class Fault:
    at_s: float
    kind: str  # worker_kill9 | worker_stop | redis_kill9 | postgres_stop
    target: int | None = None
    duration_s: float = 0.0
    recovery_s: float | None = None
    skipped: bool = False  # the target worker never came back up to be hit
    hit_at_s: float | None = None  # when it actually struck (after waiting for a restart)


class RecordingTap(Tap):
    """A real ``Tap`` that remembers when it was handed each event id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.emitted: list[tuple[str, float]] = []

    def emit(self, event: CapturedCall) -> None:
        self.emitted.append((event.event_id, time.time()))
        super().emit(event)


def models_setting(base_url: str) -> str:
    """SHADOWCANARY_MODELS with baseline and candidate on the simulator."""
    prices = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}
    return json.dumps({m: {"base_url": base_url, **prices} for m in ("gpt-5.2", "gpt-5.5")})


def celery_pid(supervisor: subprocess.Popen[bytes]) -> int | None:
    """The Celery worker process a ``shadowcanary worker`` supervisor runs now, if any."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(supervisor.pid).children():
            if child.status() != psutil.STATUS_ZOMBIE:  # killed, not yet reaped
                return int(child.pid)
    return None


def draw_schedule(config: ChaosConfig) -> list[Fault]:
    """The faults of a run, from its seed alone (so a failing run can be replayed)."""
    rng = random.Random(config.seed)
    count = max(1, round(config.seconds / 60 * config.kills_per_minute))
    usable = max(1.0, config.seconds - 15)
    faults = []
    for at in sorted(rng.uniform(5, 5 + usable) for _ in range(count)):
        kind = rng.choices(
            ["worker_kill9", "worker_stop", "redis_kill9", "postgres_stop"], [5, 2, 1.5, 1.5]
        )[0]
        duration = {
            "worker_kill9": 0.0,
            "worker_stop": rng.uniform(5, 20),
            "redis_kill9": rng.uniform(0.5, 3),
            "postgres_stop": rng.uniform(5, 20),
        }[kind]
        faults.append(Fault(round(at, 2), kind, rng.randrange(2), round(duration, 2)))
    return faults


@dataclass
class ChaosRun:
    config: ChaosConfig
    directory: Path
    log: Callable[[str], None] = print
    faults: list[Fault] = field(default_factory=list)
    redis_windows: list[tuple[float, float]] = field(default_factory=list)
    kill_windows: list[list[tuple[float, float]]] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)  # Postgres: down, back
    last_freeze: dict[int, tuple[float, float]] = field(default_factory=dict)  # pid: from, to
    published_count: int = 0
    emit_tap: RecordingTap | None = None
    supervisors: list[subprocess.Popen[bytes]] = field(default_factory=list)
    watchers: list[threading.Thread] = field(default_factory=list)
    started_at: float = 0.0  # wall clock at the start of traffic

    def run(self) -> dict[str, Any]:
        from shadowcanary.launcher.sim import run_simulator
        from shadowcanary.store.db import make_engine, migrate

        redis_server = RedisServer(self.directory / "redis", appendonly=True).start()
        postgres = PostgresServer(self.directory / "pg", durable=True).start()
        try:
            migrate(postgres.url)
            engine = make_engine(postgres.url, pool_size=2)
            with run_simulator(SIM_PROFILES, seed=self.config.seed) as sim:
                env = child_env(self._worker_env(postgres.url, redis_server.url, sim.base_url))
                logs = [self.directory / f"worker-{i}.log" for i in range(2)]
                with self._workers(env, logs):
                    published = self._traffic_under_faults(redis_server, postgres, sim, logs)
                    self._settle(engine, redis_server)
                    for watcher in self.watchers:  # each sees the settled queue within a poll
                        watcher.join(timeout=10)
                    return self._books(engine, published)
        finally:
            redis_server.stop()
            postgres.stop()

    def _worker_env(self, database_url: str, redis_url: str, sim_url: str) -> dict[str, str]:
        return {
            "SHADOWCANARY_DATABASE_URL": database_url,
            "SHADOWCANARY_REDIS_URL": redis_url,
            "SHADOWCANARY_MODELS": models_setting(sim_url),
            "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "3",
            "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0.1",
            "SHADOWCANARY_REPLAY__BACKOFF_BASE_S": "0.2",
            "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "2",
            "SHADOWCANARY_REPLAY__MAX_IN_FLIGHT": "32",
            "SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S": str(self.config.visibility_timeout_s),
            "SHADOWCANARY_LOG_LEVEL": "warning",
        }

    @contextlib.contextmanager
    def _workers(self, env: dict[str, str], logs: list[Path]) -> Iterator[None]:
        procs = [spawn_logged([sys.executable, "-c", _CLI, "worker"], env, log) for log in logs]
        self.supervisors = procs
        try:
            for proc in procs:
                wait_until(partial(celery_pid, proc), timeout_s=60, what="the workers up")
            yield
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _traffic_under_faults(
        self, redis_server: RedisServer, postgres: PostgresServer, sim: Any, logs: list[Path]
    ) -> list[tuple[str, float]]:
        import openai

        from shadowcanary.tap.openai_wrapper import tap_openai

        tap_settings = TapSettings(flush_interval_s=0.05, publish_timeout_s=0.3)
        emit_tap = RecordingTap(tap_settings, redis_server.url)
        self.emit_tap = emit_tap
        openai_tap = RecordingTap(tap_settings, redis_server.url)
        client = tap_openai(
            openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0, timeout=5),
            openai_tap,
            rollout=ROLLOUT_OPENAI,
        )
        stop = threading.Event()

        def emit_loop() -> None:
            template = make_event(rollout=ROLLOUT_EMIT)
            next_at = time.monotonic()
            while not stop.is_set():
                emit_tap.emit(template.model_copy(update={"event_id": os.urandom(16).hex()}))
                next_at += 1 / self.config.emit_rate
                stop.wait(max(0.0, next_at - time.monotonic()))

        def openai_loop() -> None:
            while not stop.is_set():
                with contextlib.suppress(openai.OpenAIError):
                    client.chat.completions.create(
                        model="gpt-5.2", messages=[{"role": "user", "content": "chaos?"}]
                    )
                stop.wait(1 / self.config.openai_rate)

        threads = [threading.Thread(target=f, daemon=True) for f in (emit_loop, openai_loop)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        self.started_at = time.time()
        try:
            for fault in draw_schedule(self.config):
                stop.wait(max(0.0, started + fault.at_s - time.monotonic()))
                self._inject(fault, redis_server, postgres, logs)
            stop.wait(max(0.0, started + self.config.seconds - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            emit_tap.close(timeout_s=10)
            openai_tap.close(timeout_s=10)
        self.published_count = emit_tap.stats().published + openai_tap.stats().published
        return emit_tap.emitted + openai_tap.emitted

    def _inject(
        self, fault: Fault, redis_server: RedisServer, postgres: PostgresServer, logs: list[Path]
    ) -> None:
        self.log(f"chaos: {fault.kind} at {fault.at_s}s target={fault.target} {fault.duration_s}s")
        self.faults.append(fault)
        fault.hit_at_s = round(time.time() - self.started_at, 2)
        if fault.kind == "redis_kill9":
            down = time.time()
            redis_server.stop()
            time.sleep(fault.duration_s)  # the outage itself
            redis_server.start()
            # The tap drops (and counts) what it could not publish until it reconnects:
            # the window ends once the emitting tap publishes again.
            published = self.emit_tap.stats().published if self.emit_tap else 0
            with contextlib.suppress(TimeoutError):
                wait_until(
                    lambda: self.emit_tap is None or self.emit_tap.stats().published > published,
                    timeout_s=30,
                    what="the tap publishing again",
                )
            self.redis_windows.append((down - AOF_WINDOW_S, time.time() + AOF_WINDOW_S))
        elif fault.kind == "postgres_stop":
            down = time.time()
            postgres.stop()
            time.sleep(fault.duration_s)  # the outage itself
            postgres.start()
            self.outages.append((down, time.time()))
        else:
            pid = self._worker_up(self.supervisors[fault.target or 0])
            killed_at = time.time()
            fault.hit_at_s = round(killed_at - self.started_at, 2)
            if pid is None:
                fault.skipped = True
                self.log(f"chaos: {fault.kind} at {fault.at_s}s skipped: its worker is not up")
                return
            if fault.kind == "worker_kill9":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                windows = [(killed_at - KILL_WINDOW_S, killed_at)]
                frozen_at, thawed_at = self.last_freeze.get(pid, (0.0, 0.0))
                if killed_at - thawed_at < THAW_WINDOW_S:
                    # Redis hands a blocked BRPOP the next message even while the worker
                    # is frozen; the worker records it only after the thaw (still 2.11).
                    windows.append((frozen_at - KILL_WINDOW_S, frozen_at + KILL_WINDOW_S))
                for down, back in self.outages:
                    if down <= killed_at <= back + RETRY_WINDOW_S:
                        # Every batch that met the outage went round again as a retry,
                        # through the same gap at each delivery (2.11).
                        windows.append((down - KILL_WINDOW_S, killed_at))
                self.kill_windows.append(windows)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(fault.duration_s)  # the freeze itself
                    os.kill(pid, signal.SIGCONT)
                self.last_freeze[pid] = (killed_at, time.time())
            watcher = threading.Thread(
                target=self._watch_recovery, args=(fault, killed_at, redis_server), daemon=True
            )
            watcher.start()
            self.watchers.append(watcher)

    def _worker_up(self, supervisor: subprocess.Popen[bytes]) -> int | None:
        """The worker's pid, waiting while its supervisor restarts it after an earlier kill."""
        with contextlib.suppress(TimeoutError):
            return wait_until(
                partial(celery_pid, supervisor), timeout_s=30, what="the worker restarted"
            )
        return None

    def _watch_recovery(self, fault: Fault, at: float, redis_server: RedisServer) -> None:
        """Seconds until no task delivered before the fault is still unacknowledged."""
        deadline = at + 600
        while time.time() < deadline:
            with contextlib.suppress(redis.RedisError):
                client = redis.Redis.from_url(redis_server.url, socket_timeout=2)
                try:
                    if not client.zrangebyscore("unacked_index", "-inf", at):
                        fault.recovery_s = round(time.time() - at, 1)
                        return
                finally:
                    client.close()
            time.sleep(0.5)

    def _settle(self, engine: Engine, redis_server: RedisServer) -> None:
        client = redis.Redis.from_url(redis_server.url)

        def quiet() -> bool:
            queued = sum(
                int(client.llen(q)) for q in ("shadowcanary.ingest", "shadowcanary.replay")
            )
            return (
                queued == 0
                and client.hlen("unacked") == 0
                and client.zcard(constants.INGEST_JOURNAL_INDEX_KEY) == 0  # swept, stored
                and _no_outcome(engine) == 0
            )

        try:
            wait_until(quiet, timeout_s=self.config.settle_timeout_s, interval_s=1, what="settle")
        except TimeoutError:
            self.log("chaos: the pipeline did not settle; counting what is there")
        finally:
            client.close()

    def _books(self, engine: Engine, published: list[tuple[str, float]]) -> dict[str, Any]:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:

            def ids(sql: str) -> set[str]:
                return {r[0] for r in conn.execute(text(sql))}

            def number(sql: str) -> int:
                return int(conn.execute(text(sql)).scalar() or 0)

            stored = ids("select event_id from captures")
            no_outcome = ids(_NO_OUTCOME_SQL)
            double = ids(f"select c.event_id {_BASE} and {_CANDIDATE} and {_LETTER}")
            live_rollups = number("select coalesce(sum(requests), 0) from live_rollups")
            comparisons = number("select count(*) from comparisons where kind = 'candidate'")
            shadow_rollups = number(
                "select coalesce(sum(n), 0) from shadow_rollups where kind = 'candidate'"
            )
        emitted_at = dict(published)
        lost = {i for i in emitted_at if i not in stored}
        documented = {
            i for i in lost if any(a <= emitted_at[i] <= b for a, b in self.redis_windows)
        }
        per_kill = [
            {i for i in lost - documented if any(a <= emitted_at[i] <= b for a, b in windows)}
            for windows in self.kill_windows
        ]
        in_kill_window = set().union(*per_kill)
        beyond = sorted(lost - documented - in_kill_window)
        strangers = stored - emitted_at.keys()
        worker_faults = [f for f in self.faults if f.kind.startswith("worker") and not f.skipped]
        recoveries = [f.recovery_s for f in worker_faults]
        unrecovered = sum(r is None for r in recoveries)
        return {
            "seed": self.config.seed,
            "faults": [f"{f.kind}@{f.hit_at_s}s->{f.target}" for f in self.faults if not f.skipped],
            "skipped_faults": [f"{f.kind}@{f.at_s}s" for f in self.faults if f.skipped],
            "emitted": len(emitted_at),
            "lost_in_documented_window": len(documented),
            "lost_in_kill_window": len(in_kill_window),
            "lost_in_one_kill_window_max": max(map(len, per_kill), default=0),
            # One message holds one tap batch: events emitted within one flush interval or
            # so. Losses spread over seconds would be several messages: a defect.
            "lost_in_one_kill_window_span_s": max(
                (_span([emitted_at[i] for i in lost]) for lost in per_kill), default=0.0
            ),
            "lost_examples": [f"{i}@{emitted_at[i] - self.started_at:.2f}s" for i in beyond[:5]],
            "no_outcome_examples": sorted(no_outcome)[:5],
            "double_outcome_examples": sorted(double)[:5],
            "unrecovered_worker_faults": unrecovered,
            "published": self.published_count,
            "stored": len(stored),
            "lost_beyond_documented": len(beyond),
            "no_outcome": len(no_outcome),
            "double_outcome": len(double),
            "duplicates": len(strangers)
            + abs(live_rollups - len(stored))
            + abs(shadow_rollups - comparisons),
            "recovery_s_max": max((r for r in recoveries if r is not None), default=0.0),
        }


_BASE = "from captures c where c.arm = 'baseline' and c.status = 'ok'"
_CANDIDATE = (
    "exists (select 1 from replays r where r.event_id = c.event_id and r.kind = 'candidate')"
)
_LETTER = (
    "exists (select 1 from dead_letters d where d.event_id = c.event_id and d.stage = 'replay')"
)
_NO_OUTCOME_SQL = f"select c.event_id {_BASE} and not {_CANDIDATE} and not {_LETTER}"


def _span(moments: list[float]) -> float:
    return round(max(moments) - min(moments), 3) if moments else 0.0


def _no_outcome(engine: Engine) -> int:
    with contextlib.suppress(Exception), engine.connect() as conn:
        return len(list(conn.execute(text(_NO_OUTCOME_SQL))))
    return -1


def run_chaos(config: ChaosConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """One chaos run in a scratch directory (removed afterwards); returns its figures."""
    directory = Path(tempfile.mkdtemp(prefix="sc-chaos-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    try:
        return ChaosRun(config, directory, log).run()
    finally:
        if os.environ.get("CHAOS_KEEP_LOGS"):  # for reading the workers' logs afterwards
            log(f"chaos: logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
