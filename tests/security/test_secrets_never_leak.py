"""Configured secrets never reach an output: the full demo, grepped everywhere.

``shadowcanary demo --fast`` (the README's main job) runs with known secret values in
every place a deployment puts them: the Postgres password in the database URL, the
Redis password in its URL, model API keys, the Unleash admin token, the stickiness
salt, and a Slack-style webhook whose URL path is the secret. The worker it starts
gets the same secrets and logs at DEBUG, as does the demo process. Then every output
is searched for each secret value:

- the demo's console, stdout and stderr, the logs of the demo process and the worker;
- every file written under the run's directory (runbooks, alert runbooks, reports);
- every row of every table in Postgres (captures, replays, comparisons, dead
  letters, rollups, rollouts, the audit log, flags), as text;
- every key in Redis, Celery envelopes decoded (base64, zlib);
- the webhook payloads the controller posted.

The one allowed place is the rollout's own plan in the ``rollouts`` table, which must
keep the webhook URL to post to it (configuration, like the settings themselves).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kombu import compression
from rich.console import Console
from sqlalchemy import text

import shadowcanary.cli.demo as demo_module
from shadowcanary.logging import configure_logging
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.models import Base
from shadowcanary.testing.servers import RedisServer
from tests.security.recorder import Recorder, recording_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRETS = {
    "postgres password": "pg-pw-Q8zVt3LkA7",
    "redis password": "redis-pw-Mw92XcPd",
    "baseline API key": "sk-proj-baseline-S3cr3tValue0001",
    "candidate API key": "sk-proj-candidate-S3cr3tValue0002",
    "other model API key": "sk-ant-vault-S3cr3tValue0003",
    "unleash admin token": "*:*.unleash-admin-S3cr3t0004",
    "stickiness salt": "salt-S3cr3t-0005-do-not-log",
    "webhook secret": "XyZsEcReTwEbHoOk0006",
}
ALLOWED = {"webhook secret": {"rollouts.plan"}}


def _models(base_url: str = "http://127.0.0.1:9/v1") -> str:
    return json.dumps(
        {
            "gpt-5.2": {"base_url": base_url, "api_key": SECRETS["baseline API key"]},
            "gpt-5.5": {"base_url": base_url, "api_key": SECRETS["candidate API key"]},
            "vault-model": {"base_url": base_url, "api_key": SECRETS["other model API key"]},
        }
    )


@pytest.fixture
def redis_with_password(own_redis: RedisServer) -> Iterator[str]:
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("requirepass", SECRETS["redis password"])
    client.close()
    yield f"redis://:{SECRETS['redis password']}@127.0.0.1:{own_redis.port}/0"


def _with_password(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{SECRETS['postgres password']}@{host}"


def _decode_redis_value(raw: bytes) -> str:
    """A Redis value as text; Celery envelopes with their base64 (and zlib) body opened."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
    parts = [raw.decode("utf-8", "replace")]
    if isinstance(envelope, dict) and isinstance(envelope.get("body"), str):
        body = base64.b64decode(envelope["body"])
        codec = (envelope.get("headers") or {}).get("compression")
        if codec:
            body = compression.decompress(body, codec)  # type: ignore[no-untyped-call]
        parts.append(body.decode("utf-8", "replace"))
    return "\n".join(parts)


def _redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)
    chunks = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            values: list[bytes] = []
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [k + b"=" + v for k, v in client.hgetall(key).items()]
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            chunks.append(key.decode("utf-8", "replace"))
            chunks += [_decode_redis_value(v) for v in values]
    finally:
        client.close()
    return "\n".join(chunks)


def _postgres_dump(url: str) -> dict[str, str]:
    """Every row of every table as text, keyed 'table' (and 'rollouts.plan' apart)."""
    engine = make_engine(url, pool_size=1)
    dump: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text("select tablename from pg_tables where schemaname = 'public'")
                )
            ]
            assert set(Base.metadata.tables) <= set(tables)
            for table in tables:
                if table == "rollouts":
                    rows = conn.execute(text("select to_jsonb(t) - 'plan' from \"rollouts\" t"))
                    dump[table] = "\n".join(str(r[0]) for r in rows)
                    plans = conn.execute(text('select plan::text from "rollouts"'))
                    dump["rollouts.plan"] = "\n".join(r[0] for r in plans)
                    continue
                rows = conn.execute(text(f'select t::text from "{table}" t'))
                dump[table] = "\n".join(r[0] for r in rows)
    finally:
        engine.dispose()
    return dump


def _files(root: Path) -> dict[str, str]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and "pg" not in path.relative_to(root).parts[:2]:
            found[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", "replace")
    return found


def _leaks(outputs: dict[str, str]) -> list[str]:
    found = []
    for what, secret in SECRETS.items():
        for where, content in outputs.items():
            if secret in content and where not in ALLOWED.get(what, set()):
                at = content.index(secret)
                found.append(f"{what} in {where}: ...{content[max(0, at - 120) : at + 40]!r}")
    return found


def test_the_demo_leaks_no_configured_secret_anywhere(
    tmp_path: Path,
    database_url: str,
    redis_with_password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every output of a full demo run is free of every configured secret value."""
    database_with_password = _with_password(database_url)
    secret_env = {
        "SHADOWCANARY_DATABASE_URL": database_with_password,
        "SHADOWCANARY_REDIS_URL": redis_with_password,
        "SHADOWCANARY_DATA_DIR": str(tmp_path / "data"),
        "SHADOWCANARY_RUNBOOKS_DIR": str(tmp_path / "runbooks"),
        "SHADOWCANARY_MODELS": _models(),
        "SHADOWCANARY_UNLEASH_URL": "http://127.0.0.1:9",
        "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": SECRETS["unleash admin token"],
        "SHADOWCANARY_STICKINESS_SALT": SECRETS["stickiness salt"],
        "SHADOWCANARY_LOG_LEVEL": "debug",
    }
    for name, value in secret_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    log_file = tmp_path / "demo-process.log"

    workers: list[Any] = []
    real_run_worker, real_worker_env = demo_module.run_worker, demo_module._worker_env
    real_demo_plan = demo_module.demo_plan

    def worker_env_with_secrets(urls: Any, sim: Any) -> dict[str, str]:
        env = real_worker_env(urls, sim)
        models = json.loads(env["SHADOWCANARY_MODELS"])
        models["vault-model"] = json.loads(_models())["vault-model"]
        return env | {
            "SHADOWCANARY_MODELS": json.dumps(models),
            "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": SECRETS["unleash admin token"],
            "SHADOWCANARY_STICKINESS_SALT": SECRETS["stickiness salt"],
            "SHADOWCANARY_LOG_LEVEL": "debug",
        }

    def keep_worker(*args: Any, **kwargs: Any) -> Any:
        manager = real_run_worker(*args, **kwargs)

        class Kept:
            def __enter__(self) -> Any:
                worker = manager.__enter__()
                workers.append(worker)
                return worker

            def __exit__(self, *exc: Any) -> Any:
                return manager.__exit__(*exc)

        return Kept()

    with recording_server() as hook, log_file.open("w") as log_stream:

        def plan_with_webhook(scenario: Any, **kwargs: Any) -> Any:
            plan = real_demo_plan(scenario, **kwargs)
            url = _webhook(hook)
            return plan.model_copy(
                update={"notify": plan.notify.model_copy(update={"webhooks": (url,)})}
            )

        monkeypatch.setattr(demo_module, "_worker_env", worker_env_with_secrets)
        monkeypatch.setattr(demo_module, "run_worker", keep_worker)
        monkeypatch.setattr(demo_module, "demo_plan", plan_with_webhook)
        configure_logging("debug", stream=log_stream)
        console_out = io.StringIO()
        try:
            result = demo_module.run_demo(
                settings,
                demo_module.ServiceUrls.of(database_with_password, redis_with_password),
                fast=True,
                console=Console(file=console_out, width=200),
                run_id="leak",
            )
        finally:
            configure_logging("info")
        webhook_bodies = [b.decode("utf-8", "replace") for b in hook.bodies]
        webhook_paths = list(hook.hits)

    # The run did what the demo does, so there was something to leak.
    assert result.surprises() == [], console_out.getvalue()[-3000:]
    assert workers and "DEBUG" in workers[0].output().upper()
    assert webhook_bodies, "the controller posted no webhook"
    assert all(SECRETS["webhook secret"] in p for p in webhook_paths)

    outputs = {
        "console": console_out.getvalue(),
        "demo process log": log_file.read_text(errors="replace"),
        "worker output": workers[0].output(),
        "webhook payloads": "\n".join(webhook_bodies),
        "redis": _redis_dump(redis_with_password),
        **{f"file {k}": v for k, v in _files(tmp_path).items() if k != "demo-process.log"},
        **_postgres_dump(database_with_password),
    }
    assert any(k.startswith("file runbooks/") for k in outputs), sorted(outputs)
    assert any(k.startswith("file data/reports/") for k in outputs), sorted(outputs)
    assert outputs["rollout_audit"] and outputs["captures"] and outputs["comparisons"]
    assert _leaks(outputs) == []


def _webhook(recorder: Recorder) -> str:
    return recorder.url(f"/services/T000/B000/{SECRETS['webhook secret']}")
