"""A tenant's report (raw captures aggregated in SQL) next to the whole-rollout report (rollups).

``shadowcanary report R --tenant T`` cannot read the rollups (they hold no tenant):
it aggregates T's captured calls in Postgres (one GROUP BY arm, chart bucket and
sketch bin; O(buckets x bins) rows come back). Its cost grows with the rollout's
calls in the window, as the captures index is (rollout, started_at); the rollup
report's grows with minutes only. This measures both on one database seeded as
bench/controller_tick.py seeds its own (``--rows`` captures over ``--days``, rollups
built from them), the calls spread over ``--tenants`` tenants. ``--tenant-index``
adds the index a tenant's report would want, to see what it would change.

Client CPU (this process: building sketches and figures) is measured apart from wall
time, which includes Postgres' work and the machine's load (printed).

Last stdout line is one JSON object: tenant_report_ms_p50, whole_report_ms_p50, their
ratio, client CPU per report, rows and the tenant's share of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from bench.controller_tick import ROLLOUT, Span, _seed
from shadowcanary.logging import configure_logging
from shadowcanary.report import load_report
from shadowcanary.report.model import ReportData
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.testing.servers import PostgresServer


def _measure(runs: int, work: Callable[[], ReportData]) -> tuple[list[float], list[float], int]:
    """Wall and client-CPU milliseconds per report, and the requests the report counted."""
    wall, cpu = [], []
    work()  # warm: plans cached, pages in memory
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        data = work()
        wall.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return wall, cpu, sum(summary.requests for summary in data.arms.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="raw captures")
    parser.add_argument("--days", type=float, default=3.0, help="span of the rollout's traffic")
    parser.add_argument("--tenants", type=int, default=20, help="tenants sharing the rollout")
    parser.add_argument("--runs", type=int, default=10, help="timed reports of each kind")
    parser.add_argument(
        "--tenant-index",
        action="store_true",
        help="first add an index on captures (rollout, tenant, started_at), which the "
        "schema does not have: what it would change",
    )
    args = parser.parse_args()
    configure_logging("warning", json=False)
    directory = Path(tempfile.mkdtemp(prefix="sc-bench-report-"))
    server = PostgresServer(directory)
    began = time.perf_counter()
    try:
        server.start()
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        span = Span(start=end - timedelta(days=args.days), length=timedelta(days=args.days))
        url, seed_s = _seed(server, "report", args.rows, span)
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE captures SET tenant = 'tenant-' || (abs(hashtext(event_id)) % :n)"),
                {"n": args.tenants},
            )
            if args.tenant_index:
                conn.execute(text("CREATE INDEX ON captures (rollout, tenant, started_at)"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE captures"))
        settings, now = load_settings({}), span.end + timedelta(seconds=20)
        whole_wall, whole_cpu, whole_requests = _measure(
            args.runs, lambda: load_report(engine, settings, ROLLOUT, now=now)
        )
        tenant_wall, tenant_cpu, tenant_requests = _measure(
            args.runs, lambda: load_report(engine, settings, ROLLOUT, now=now, tenant="tenant-3")
        )
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    tenant_ms, whole_ms = statistics.median(tenant_wall), statistics.median(whole_wall)
    load = os.getloadavg()[0]
    print(f"{args.rows:,} captures over {args.days:g} days, {args.tenants} tenants")
    print(
        f"whole-rollout report (rollups): {whole_ms:7.1f} ms wall, "
        f"{statistics.median(whole_cpu):6.1f} ms client CPU, {whole_requests:,} requests"
    )
    print(
        f"tenant report (raw captures):   {tenant_ms:7.1f} ms wall, "
        f"{statistics.median(tenant_cpu):6.1f} ms client CPU, {tenant_requests:,} requests"
    )
    print(f"tenant / whole wall time: {tenant_ms / whole_ms:.2f} (load average {load:.2f})")
    print(
        json.dumps(
            {
                "tenant_report_ms_p50": round(tenant_ms, 1),
                "whole_report_ms_p50": round(whole_ms, 1),
                "ratio_tenant_over_whole": round(tenant_ms / whole_ms, 2),
                "tenant_client_cpu_ms_p50": round(statistics.median(tenant_cpu), 1),
                "whole_client_cpu_ms_p50": round(statistics.median(whole_cpu), 1),
                "rows": args.rows,
                "tenant_requests": tenant_requests,
                "whole_requests": whole_requests,
                "days": args.days,
                "tenant_index": args.tenant_index,
                "runs": args.runs,
                "seed_s": round(seed_s, 1),
                "total_s": round(time.perf_counter() - began, 1),
                "load_avg_1m": round(load, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
