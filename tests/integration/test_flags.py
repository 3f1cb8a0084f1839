"""Flag backends against a real Unleash server and real Postgres, and the request-path evaluators.

The contract suite (flag_contract.py) runs over both backends. The evaluator tests use
the real UnleashClient SDK polling the real server: it sees every step, agrees user by
user with the embedded evaluator, keeps users in the canary as it grows, and fails
open when Unleash is unreachable.
"""

from __future__ import annotations

import functools
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from structlog.testing import capture_logs

from flags.base import FlagBackend, FlagEvaluator, FlagSpec
from flags.embedded import EmbeddedFlags, feature_json
from flags.router import (
    EmbeddedEvaluator,
    ModelRouter,
    StaticEvaluator,
    UnleashClientEvaluator,
)
from flags.unleash import UnleashFlags
from shadowcanary.errors import ConfigError, FlagNotFound, FlagRejected, ServiceUnavailable
from shadowcanary.store.db import make_engine
from shadowcanary.testing.servers import free_port
from shadowcanary.testing.unleash import UnleashHandle
from tests.integration.flag_contract import (  # noqa: F401 - collected here, over both backends
    BackendCase,
    new_spec,
    test_disable_rolls_back_to_zero_and_set_rollout_turns_it_on_again,
    test_ensure_flag_creates_a_missing_flag_at_zero,
    test_ensure_flag_leaves_an_existing_flag_alone,
    test_percent_outside_0_to_100_is_refused,
    test_service_down_is_service_unavailable,
    test_set_rollout_steps_are_visible_on_read,
    test_unknown_flag_is_flag_not_found,
    test_wrong_credentials_are_rejected_without_the_secret,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
USERS = [f"user-{i}" for i in range(5000)]
SEEN_DEADLINE_S = 15.0


# --- the backends under test -----------------------------------------------------------


@pytest.fixture
def unleash_case(unleash: UnleashHandle) -> Iterator[BackendCase]:
    backend = UnleashFlags(unleash.url, unleash.admin_token)

    @contextmanager
    def down() -> Iterator[FlagBackend]:
        unleash.stop()
        try:
            yield backend
        finally:
            unleash.start()

    wrong_secret = f"*:*.{uuid.uuid4().hex}"
    wrong = UnleashFlags(unleash.url, wrong_secret)
    yield BackendCase("unleash", backend, down, lambda: (wrong, wrong_secret))
    for client in (backend, wrong):
        client.close()


@pytest.fixture
def embedded_case(database_url: str) -> Iterator[BackendCase]:
    engine = make_engine(database_url, pool_size=2)
    # Postgres "down" is a server no one listens on: what a stopped Postgres looks like.
    dead = make_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/shadowcanary", pool_size=1
    )
    role, password = f"no_flags_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    _admin(database_url, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    stranger_url = make_url(database_url).set(username=role, password=password)
    stranger = make_engine(stranger_url.render_as_string(hide_password=False), pool_size=1)

    @contextmanager
    def down() -> Iterator[FlagBackend]:
        yield EmbeddedFlags(dead)

    yield BackendCase(
        "embedded", EmbeddedFlags(engine), down, lambda: (EmbeddedFlags(stranger), password)
    )
    for each in (engine, dead, stranger):
        each.dispose()
    _admin(database_url, f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.fixture(params=["unleash", "embedded"])
def case(request: pytest.FixtureRequest) -> BackendCase:
    """Each FlagBackend in turn (the contract tests run once per backend)."""
    return request.getfixturevalue(f"{request.param}_case")  # type: ignore[no-any-return]


def _admin(database_url: str, statements: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements.split(";"):
                conn.execute(text(statement))
    finally:
        engine.dispose()


# --- Unleash specifics ------------------------------------------------------------------


def test_unleash_timeout_is_service_unavailable() -> None:
    """An Unleash that accepts the connection but never answers is ServiceUnavailable."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        backend = UnleashFlags(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="ReadTimeout"):
            backend.read("any")
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, ServiceUnavailable),
        (503, ServiceUnavailable),
        (429, ServiceUnavailable),
        (401, FlagRejected),
        (403, FlagRejected),
        (404, FlagNotFound),
        (400, FlagRejected),
    ],
)
def test_unleash_http_errors_map_to_the_error_tree(status: int, error: type[Exception]) -> None:
    """Each HTTP status maps to its error, and a token echoed by the server is redacted."""
    token = f"*:*.{uuid.uuid4().hex}"
    backend = UnleashFlags("http://unleash.invalid", token)
    response = httpx.Response(status, json={"message": f"bad token {token}"})
    raised = backend._error(response, "read flag 'x'", "x")
    assert isinstance(raised, error)
    assert token not in str(raised)
    assert f"HTTP {status}" in str(raised)


def test_unleash_admin_token_never_logged(unleash: UnleashHandle) -> None:
    """Creating, stepping and disabling a flag logs what happened but never the admin token."""
    spec = new_spec()
    with capture_logs() as logs, UnleashFlags(unleash.url, unleash.admin_token) as backend:
        backend.ensure_flag(spec)
        backend.set_rollout(spec.name, 10)
        backend.disable(spec.name)
    events = [entry["event"] for entry in logs]
    assert {"flag_created", "flag_rollout_set", "flag_disabled"} <= set(events)
    secret = unleash.admin_token.split(".", 1)[1]
    assert all(secret not in str(entry) for entry in logs)
    assert secret not in repr(backend)


def test_unleash_flag_is_served_as_the_embedded_feature_json(unleash: UnleashHandle) -> None:
    """Unleash serves UnleashClient exactly the feature JSON the embedded backend stores."""
    spec = new_spec("conversationId")
    with UnleashFlags(unleash.url, unleash.admin_token) as backend:
        backend.ensure_flag(spec)
        backend.set_rollout(spec.name, 30)

    def served() -> dict[str, object] | None:
        response = httpx.get(
            f"{unleash.api_url}/client/features",
            headers={"Authorization": unleash.backend_token},
        )
        mine = [f for f in response.json()["features"] if f["name"] == spec.name]
        if mine and mine[0]["strategies"][0]["parameters"]["rollout"] == "30":
            return dict(mine[0])
        return None

    feature = _poll(served, "Unleash serves the flag at 30 %")
    expected = feature_json(spec, 30)
    for key in ("name", "enabled", "strategies"):
        assert feature[key] == expected[key]
    # conversationId is offered as a sticky field in the UI, so an SRE keeps it on edit.
    field = httpx.get(
        f"{unleash.api_url}/admin/context/conversationId",
        headers={"Authorization": unleash.admin_token},
    )
    assert field.json()["stickiness"] is True


# --- evaluation: UnleashClient (real SDK) and the embedded evaluator ---------------------


@pytest.fixture
def unleash_client(unleash: UnleashHandle, tmp_path: Path) -> Iterator[UnleashClientEvaluator]:
    with UnleashClientEvaluator(
        unleash.api_url,
        unleash.backend_token,
        app_name=f"test-{uuid.uuid4().hex[:8]}",
        refresh_interval_s=1,
        cache_directory=str(tmp_path / "unleash-cache"),
        send_metrics=False,
    ) as evaluator:
        yield evaluator


def _arms(evaluator: FlagEvaluator, flag: str, users: list[str] = USERS) -> list[str | None]:
    return [evaluator.candidate_for(flag, user) for user in users]


def _share(arms: list[str | None]) -> float:
    return 100 * sum(arm is not None for arm in arms) / len(arms)


def _poll(probe: Callable[[], T | None], what: str, deadline_s: float = SEEN_DEADLINE_S) -> T:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {deadline_s}s: {what}")


def _seen_at(client: UnleashClientEvaluator, flag: str, percent: int) -> list[str | None]:
    """The client's arms once its share is near ``percent`` (±3 pp: ~7 sd at 5,000 users).

    Two passes in a row must agree: the SDK may swap in the new state halfway through
    one pass over the users, which would mix the old and new percentages.
    """
    previous: list[list[str | None]] = []

    def probe() -> list[str | None] | None:
        arms = _arms(client, flag)
        settled = previous == [arms] and abs(_share(arms) - percent) < 3
        previous[:] = [arms]
        return arms if settled else None

    return _poll(probe, f"UnleashClient sees {flag} at {percent}%")


def _sees(
    client: FlagEvaluator, flag: str, users: list[str], expected: list[str | None]
) -> bool | None:
    return True if _arms(client, flag, users) == expected else None


def test_unleash_client_sees_each_step(
    unleash: UnleashHandle, unleash_client: UnleashClientEvaluator
) -> None:
    """UnleashClient (refresh 1 s) follows 10 -> 30 -> 50 -> 100 -> off, user by user."""
    spec = new_spec()
    users = USERS[:2000]
    with UnleashFlags(unleash.url, unleash.admin_token) as backend:
        backend.ensure_flag(spec)
        steps = [
            (p, functools.partial(backend.set_rollout, spec.name, p)) for p in (10, 30, 50, 100)
        ]
        for percent, change in [*steps, (0, functools.partial(backend.disable, spec.name))]:
            change()
            # What this step must look like: the stored flag JSON through the same engine.
            oracle = StaticEvaluator([feature_json(spec, percent, enabled=percent > 0)])
            expected = _arms(oracle, spec.name, users)
            assert abs(_share(expected) - percent) < 5
            _poll(
                functools.partial(_sees, unleash_client, spec.name, users, expected),
                f"UnleashClient sees {spec.name} at {percent}%",
            )


def test_embedded_and_unleash_put_every_user_in_the_same_arm(
    unleash: UnleashHandle, unleash_client: UnleashClientEvaluator, database_url: str
) -> None:
    """At 10 % and 30 % each of 5,000 users gets the same arm from both backends, stickily."""
    spec = new_spec()
    engine = make_engine(database_url, pool_size=2)
    embedded = EmbeddedFlags(engine)
    evaluator = EmbeddedEvaluator(engine, refresh_s=60)
    try:
        with UnleashFlags(unleash.url, unleash.admin_token) as backend:
            backend.ensure_flag(spec)
            embedded.ensure_flag(spec)
            seen: dict[int, list[str | None]] = {}
            for percent in (10, 30):
                backend.set_rollout(spec.name, percent)
                embedded.set_rollout(spec.name, percent)
                assert evaluator.refresh()
                from_unleash = _seen_at(unleash_client, spec.name, percent)
                from_embedded = _arms(evaluator, spec.name)
                assert from_embedded == from_unleash
                seen[percent] = from_embedded
        in_at_10 = {u for u, arm in zip(USERS, seen[10], strict=True) if arm}
        in_at_30 = {u for u, arm in zip(USERS, seen[30], strict=True) if arm}
        assert in_at_10 < in_at_30  # sticky: growing the canary moves nobody out of it
    finally:
        evaluator.close()
        engine.dispose()


def test_unleash_client_keeps_the_last_state_while_unleash_is_down(
    unleash: UnleashHandle, unleash_client: UnleashClientEvaluator
) -> None:
    """With Unleash stopped the SDK keeps routing by the last flag it saw, without raising."""
    spec = new_spec()
    with UnleashFlags(unleash.url, unleash.admin_token) as backend:
        backend.ensure_flag(spec)
        backend.set_rollout(spec.name, 30)
    before = _seen_at(unleash_client, spec.name, 30)
    unleash.stop()
    try:
        router = ModelRouter(unleash_client, spec.name, "gpt-5.2", stickiness="userId")
        deadline = time.monotonic() + 1.5  # the SDK polls every second: spans a failed poll
        while time.monotonic() < deadline:
            assert _arms(unleash_client, spec.name, USERS[:1000]) == before[:1000]
        expected = [arm or "gpt-5.2" for arm in before[:200]]
        assert [router(user) for user in USERS[:200]] == expected
    finally:
        unleash.start()


def test_router_fails_open_to_baseline_when_unleash_is_unreachable(tmp_path: Path) -> None:
    """A router whose Unleash never answered sends everyone to the baseline and never raises."""
    started = time.monotonic()
    with UnleashClientEvaluator(
        f"http://127.0.0.1:{free_port()}/api",
        "default:development.x",
        refresh_interval_s=1,
        request_timeout_s=1,
        cache_directory=str(tmp_path),
        send_metrics=False,
    ) as evaluator:
        router = ModelRouter(evaluator, "any-flag", "gpt-5.2", stickiness="userId")
        assert {router.model_for({"user_id": user}) for user in USERS[:500]} == {"gpt-5.2"}
    assert time.monotonic() - started < 10


def test_embedded_evaluator_refreshes_in_the_background(database_url: str) -> None:
    """A step written to Postgres reaches a started EmbeddedEvaluator within its refresh period."""
    spec = new_spec()
    engine = make_engine(database_url, pool_size=2)
    embedded = EmbeddedFlags(engine)
    embedded.ensure_flag(spec)
    try:
        with EmbeddedEvaluator(engine, refresh_s=0.2) as evaluator:
            assert _share(_arms(evaluator, spec.name)) == 0
            embedded.set_rollout(spec.name, 100)
            _poll(
                lambda: True if _share(_arms(evaluator, spec.name)) == 100 else None,
                "the evaluator sees 100 %",
                deadline_s=5,
            )
    finally:
        engine.dispose()


def test_embedded_evaluator_keeps_the_last_state_when_postgres_goes_away(
    database_url: str,
) -> None:
    """Once its database is gone the evaluator keeps the last flags it read (fail open)."""
    spec = new_spec()
    engine = make_engine(database_url, pool_size=1)
    embedded = EmbeddedFlags(engine)
    embedded.ensure_flag(spec)
    embedded.set_rollout(spec.name, 30)
    evaluator = EmbeddedEvaluator(engine, refresh_s=60).start()
    before = _arms(evaluator, spec.name)
    engine.dispose()
    maintenance = make_url(database_url).set(database="postgres")
    name = make_url(database_url).database
    _admin(
        maintenance.render_as_string(hide_password=False),
        f'DROP DATABASE "{name}" WITH (FORCE)',
    )
    try:
        assert evaluator.refresh() is False
        assert _arms(evaluator, spec.name) == before
        assert 25 < _share(before) < 35
    finally:
        evaluator.close()


def test_spec_names_project_and_environment_of_the_backend(unleash: UnleashHandle) -> None:
    """ensure_flag for another project/environment than the backend's is a config error."""
    spec = FlagSpec(
        name=f"canary-{uuid.uuid4().hex[:8]}",
        project="default",
        environment="production",
        stickiness="userId",
        baseline_model="gpt-5.2",
        candidate_model="gpt-5.5",
    )
    with UnleashFlags(unleash.url, unleash.admin_token) as backend:
        with pytest.raises(ConfigError, match="production"):
            backend.ensure_flag(spec)
        with pytest.raises(FlagNotFound):
            backend.read(spec.name)
