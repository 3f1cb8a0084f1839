"""Bad input is rejected with a message that names the problem, and nothing else is lost."""

from __future__ import annotations

import subprocess
import sys

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import REPO_ROOT, run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import rows, scalar, send_ingest


def test_a_batch_with_bad_events_keeps_the_good_ones_and_dead_letters_each_bad_one(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Malformed, mistyped, oversized, unknown-model events are dead-lettered; good ones flow."""
    engine = make_engine(database_url)
    good = [make_event(model="gpt-5.2") for _ in range(3)]
    wrong_type = make_event().model_dump(mode="json") | {"latency_ms": "fast"}
    missing = {k: v for k, v in make_event().model_dump(mode="json").items() if k != "request"}
    oversized = make_event().model_dump(mode="json")
    oversized["request"]["messages"][0]["content"] = "x" * 50_000
    unknown_model = make_event(model="gpt-4o-mini").model_dump(mode="json")
    future = make_event().model_dump(mode="json") | {"schema_version": 9}
    batch = [
        good[0].model_dump(mode="json"),
        "not an event",
        wrong_type,
        good[1].model_dump(mode="json"),
        missing,
        oversized,
        unknown_model,
        future,
        good[2].model_dump(mode="json"),
    ]
    env = {**worker_env, "SHADOWCANARY_TAP__MAX_EVENT_BYTES": "20000"}
    with run_worker(env) as worker:
        send_ingest(redis_url, batch)
        wait_until(
            lambda: (
                scalar(engine, "select count(*) from comparisons where kind = 'candidate'") == 3
            ),
            timeout_s=30,
            what="the good events replayed",
        )
        assert worker.proc.poll() is None, "the worker must survive bad input"
    letters = {
        r[0]: r
        for r in rows(engine, "select error_class, message, payload from dead_letters order by id")
    }
    messages = [
        r[1] for r in rows(engine, "select error_class, message from dead_letters order by id")
    ]
    assert scalar(engine, "select count(*) from dead_letters") == 6
    assert any("JSON object" in m for m in messages)
    assert any("latency_ms" in m for m in messages)
    assert any("request" in m and "Field required" in m for m in messages)
    assert any("20000-byte limit" in m for m in messages)
    assert any("gpt-4o-mini" in m and "not configured" in m for m in messages)
    assert any("schema_version" in m for m in messages)
    assert "PayloadTooLarge" in letters and "UnknownModel" in letters
    stored = {r[0] for r in rows(engine, "select event_id from captures")}
    assert stored == {e.event_id for e in good}


def test_cli_refuses_to_start_on_invalid_settings_and_names_the_variable(tmp_path) -> None:
    """An invalid or unknown setting stops the worker at start-up with the variable's name."""
    for name, value, expected in [
        ("SHADOWCANARY_REPLAY__MAX_ATTEMPTS", "0", "SHADOWCANARY_REPLAY__MAX_ATTEMPTS"),
        ("SHADOWCANARY_REPLAYY__MAX_ATTEMPTS", "3", "did you mean SHADOWCANARY_REPLAY"),
        ("SHADOWCANARY_CANDIDATE_MODEL", "gpt-9", "gpt-9"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "shadowcanary.cli.main", "status"],
            env={"PATH": "/usr/bin:/bin", name: value, "SHADOWCANARY_DATA_DIR": str(tmp_path)},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
