"""`shadowcanary up` for one's own models and one's own rollout, as a real process.

The simulator, the worker and the traffic run for a few seconds on the test's Postgres
and Redis; the assertions read what landed in Postgres.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from shadowcanary.controller.notify import WebhookNotifier
from shadowcanary.controller.operator import Operator
from shadowcanary.plan import RolloutPlan
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.locks import lock_engine
from shadowcanary.testing.servers import free_port
from shadowcanary.wiring import FlagsConfig, build_ports, flags_factory

pytestmark = pytest.mark.integration

PROFILES = """
models:
  acme-small:
    mean_ms: 40
    p99_ms: 120
  acme-large:
    diverge_from: acme-small
    divergence: 0.05
    mean_ms: 60
    p99_ms: 150
    input_usd_per_mtok: 3.0
    output_usd_per_mtok: 12.0
"""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def _up(
    database_url: str, redis_url: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")}
    environ |= {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_DATA_DIR": str(tmp_path / "data"),
        "SHADOWCANARY_RUNBOOKS_DIR": str(tmp_path / "runbooks"),
        "COLUMNS": "120",
        **env,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shadowcanary.cli.main",
            "up",
            "--duration",
            "4",
            "--rate",
            "25",
            *args,
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def test_up_runs_your_own_models_and_creates_the_rollout_it_feeds(
    database_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    """--profiles, another --sim-port, prices given once: live calls, replays and costs land."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES)
    # The baseline's price is only configured, the candidate's only in the profile.
    models = {
        "acme-small": {"input_usd_per_mtok": 0.5, "output_usd_per_mtok": 2.0},
        "acme-large": {},
    }
    result = _up(
        database_url,
        redis_url,
        tmp_path,
        "--profiles",
        str(profiles),
        "--sim-port",
        str(free_port()),
        SHADOWCANARY_BASELINE_MODEL="acme-small",
        SHADOWCANARY_CANDIDATE_MODEL="acme-large",
        SHADOWCANARY_MODELS=json.dumps(models),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    (status,) = _rows(engine, "select status from rollouts where name = 'local-demo'")[0:1]
    assert status == ("paused",)  # fed at a fixed split: no controller may step it
    live = dict(
        _rows(
            engine,
            "select model, count(*) from captures where rollout = 'local-demo' "
            "and status = 'ok' group by model",
        )
    )
    assert live.get("acme-small", 0) > 0 and live.get("acme-large", 0) > 0, live
    # Replays of baseline calls reached the candidate on this simulator (not port 8765).
    replayed = _rows(
        engine,
        "select count(*) from comparisons c join captures k using (event_id) "
        "where k.rollout = 'local-demo' and c.kind = 'candidate'",
    )[0][0]
    assert replayed > 0
    # Each model's cost comes from the one place its price was set.
    for model in ("acme-small", "acme-large"):
        cost = _rows(
            engine,
            "select min(cost_usd) from captures where model = :model and status = 'ok'",
            model=model,
        )[0][0]
        assert cost is not None and cost > 0, model
    assert "shadowcanary report local-demo" in result.stdout


def test_up_without_a_profile_for_the_model_says_how_to_add_one(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A configured model the simulator has no profile for: one error naming --profiles."""
    result = _up(
        database_url,
        redis_url,
        tmp_path,
        SHADOWCANARY_BASELINE_MODEL="acme-small",
        SHADOWCANARY_MODELS=json.dumps({"acme-small": {}, "gpt-5.5": {}}),
    )
    assert result.returncode == 1
    assert "no profile for acme-small" in result.stderr
    assert "--profiles" in result.stderr and "Traceback" not in result.stderr


def test_up_follows_a_started_rollouts_flag(
    database_url: str, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    """--rollout NAME: each user's model is what the rollout's flag says (here 50 %)."""
    settings = load_settings({"SHADOWCANARY_DATABASE_URL": database_url})
    flags_for = flags_factory(FlagsConfig.from_settings(settings), engine)
    locks = lock_engine(database_url)
    plan = RolloutPlan(name="my-plan", flag="my-flag", baseline="gpt-5.2", candidate="gpt-5.5")
    try:
        ports = build_ports(
            engine=engine,
            lock_engine=locks,
            flags_for=flags_for,
            notifier=WebhookNotifier(),
            settings=settings,
        )
        Operator(ports).start(plan)
    finally:
        locks.dispose()
    flags_for(plan).set_rollout("my-flag", 50)

    result = _up(database_url, redis_url, tmp_path, "--rollout", "my-plan")
    assert result.returncode == 0, result.stderr[-3000:]
    arms = dict(
        _rows(engine, "select arm, count(*) from captures where rollout = 'my-plan' group by arm")
    )
    total = arms.get("baseline", 0) + arms.get("candidate", 0)
    assert total >= 40, arms
    assert 0.25 < arms.get("candidate", 0) / total < 0.75, arms  # the flag's 50 %, per user
    assert _rows(engine, "select count(*) from captures where rollout = 'local-demo'")[0][0] == 0


def test_canary_percent_with_a_rollout_is_refused(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """--canary-percent has nothing to split under --rollout: a usage error saying why."""
    result = _up(
        database_url, redis_url, tmp_path, "--rollout", "my-plan", "--canary-percent", "30"
    )
    assert result.returncode == 2
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    assert "the rollout's flag decides" in words
