"""How long the ``shadowcanary`` command takes to answer: ``--help``, ``rollout status``, history.

Starts its own PostgreSQL (one rollout with a few audit entries in it), then runs each
command as a fresh process, as an on-call engineer would, ``--runs`` times:

- ``help_s``: ``shadowcanary --help``;
- ``status_s``: ``shadowcanary rollout status`` (reads Postgres, migration check included);
- ``history_s``: ``shadowcanary rollout history NAME``;
- ``import_s``: ``python -c "import shadowcanary.cli.main"`` (what every command pays);
- ``baseline_s``: ``python -c pass`` in the same run, the interpreter's own start-up:
  ``*_ratio`` figures divide by it.

Each figure is the median wall time; ``*_cpu_s`` is the median CPU time (user + system)
of the same runs, which CPU contention from other work disturbs less than wall time.
Targets (idle machine): ``--help`` <= 0.3 s, ``rollout status`` <= 1 s.

Usage: ``python bench/cli_latency.py [--runs 7]``. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import AuditAction, AuditEntry
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.testing.servers import PostgresServer

ROLLOUT = "bench-cli"
HELP_TARGET_S = 0.3
STATUS_TARGET_S = 1.0


def _command() -> list[str]:
    """The installed console script, as a user runs it (``-m`` when not installed)."""
    script = Path(sys.executable).parent / "shadowcanary"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shadowcanary.cli.main"]


def _timed_runs(argv: Sequence[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` fresh processes running ``argv``."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        )
    return statistics.median(walls), statistics.median(cpus)


def _seed(url: str) -> None:
    """One running rollout with a start, a first step and a few holds in its audit log."""
    migrate(url)
    engine = make_engine(url, pool_size=1)
    try:
        store = RolloutStore(engine)
        now = datetime.now(UTC)
        plan = RolloutPlan(name=ROLLOUT, flag="bench-flag", baseline="gpt-5.2", candidate="gpt-5.5")
        store.create_rollout(plan, now=now - timedelta(minutes=30), actor="cli:bench")
        for minute in range(20, 0, -5):
            store.append_audit(
                AuditEntry(
                    None,
                    now - timedelta(minutes=minute),
                    ROLLOUT,
                    "controller",
                    AuditAction.HOLD,
                    0,
                    None,
                    "waiting for enough pre-canary baseline traffic",
                )
            )
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Processes per command.")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sc-bench-cli-"))
    workdir.chmod(0o755)  # Postgres runs as its own user when we are root
    server = PostgresServer(workdir / "pg").start()
    try:
        _seed(server.url)
        env = {
            **os.environ,
            "SHADOWCANARY_DATABASE_URL": server.url,
            "SHADOWCANARY_DATA_DIR": str(workdir / "data"),
            "SHADOWCANARY_RUNBOOKS_DIR": str(workdir / "runbooks"),
        }
        cli = _command()
        figures: dict[str, float] = {}
        for key, argv in (
            ("baseline", [sys.executable, "-c", "pass"]),
            ("import", [sys.executable, "-c", "import shadowcanary.cli.main"]),
            ("help", [*cli, "--help"]),
            ("status", [*cli, "rollout", "status"]),
            ("history", [*cli, "rollout", "history", ROLLOUT]),
        ):
            wall, cpu = _timed_runs(argv, env, args.runs)
            figures[f"{key}_s"] = round(wall, 3)
            figures[f"{key}_cpu_s"] = round(cpu, 3)
            print(f"{key:>8}: {wall:.3f} s wall, {cpu:.3f} s CPU", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    baseline = figures["baseline_s"]
    result = {
        **figures,
        **{
            f"{key}_ratio": round(figures[f"{key}_s"] / baseline, 1)
            for key in ("import", "help", "status", "history")
        },
        "runs": args.runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "help_target_s": HELP_TARGET_S,
        "status_target_s": STATUS_TARGET_S,
        "help_ok": figures["help_s"] <= HELP_TARGET_S,
        "status_ok": figures["status_s"] <= STATUS_TARGET_S,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
