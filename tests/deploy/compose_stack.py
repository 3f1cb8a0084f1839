"""docker-compose.yml run without Docker: each service's command as a host process.

There is no Docker engine on CI machines, so this reads docker-compose.yml and .env.example
the way `docker compose` does (YAML anchors and merges, ``${VAR:-default}`` and
``${VAR:?error}`` interpolation) and runs:

- the infrastructure from the binaries CI installs: one Debian PostgreSQL serving both
  ``postgres`` and ``unleash-db`` (each with the user, password and database its compose
  service declares), Debian's redis-server, and npm unleash-server (.ci/unleash) with the
  compose service's own environment (its INIT_* tokens);
- every shadowcanary service with exactly its compose ``command`` and ``environment``.

Hostnames become 127.0.0.1 and each service's container port a free host port; those
substitutions, the interpreter's directory for the executables and a scratch directory
for /tmp and the runbooks volume are the only changes. So a variable the code does not
know, a wrong command or a service pointing at the wrong place fails here as it would
in `docker compose up`. The compose healthchecks of our own images run too (rewritten
the same way).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shadowcanary.launcher.processes import ChildProcess, child_env, log_tail, spawn_logged
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import PostgresServer, RedisServer, free_port
from shadowcanary.testing.unleash import check_installed

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
BIN = Path(sys.executable).parent
# Run from images we do not build: started here from CI's binaries instead.
INFRASTRUCTURE = {"redis", "postgres", "unleash-db", "unleash", "prometheus", "alertmanager"}
# Our image's services, in the order depends_on allows (migrate completes first).
OURS = ("migrate", "simulator", "gateway", "worker", "beat", "controller")
_VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


class ComposeError(AssertionError):
    """The compose file cannot be run as written."""


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines as compose reads them (an unquoted value ends at `` #``)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value[:1] in {'"', "'"}:
            value = shlex.split(value)[0]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key.strip()] = value
    return values


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution, recursively; ``$$`` is a literal ``$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op and op.endswith("?") and unset:
            raise ComposeError(f"required variable {name} is not set: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return current or ""

    return _VAR.sub(one, value)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml with anchors merged and variables substituted from ``env``."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(interpolate(raw, env))


@dataclass
class Service:
    name: str
    command: list[str]
    environment: dict[str, str]
    process: ChildProcess | None = None
    log: Path | None = None


@dataclass
class ComposeStack:
    """The running topology: host ports per compose host:port, and our processes."""

    compose: dict[str, Any]
    work: Path
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    started_monotonic: float = 0.0  # when the first of our services was started
    healthy_s: float = 0.0  # from then until every healthcheck passed

    def port(self, host: str, container_port: int) -> int:
        key = (host, container_port)
        if key not in self.ports:
            self.ports[key] = free_port()
        return self.ports[key]

    def url(self, host: str, container_port: int, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port(host, container_port)}{path}"

    def rewrite(self, service: str, value: str) -> str:
        """Hostnames -> 127.0.0.1 and container ports -> host ports; /tmp -> scratch."""
        hosts = "|".join(re.escape(h) for h in self.compose["services"])

        def remote(match: re.Match[str]) -> str:
            return f"127.0.0.1:{self.port(match.group(1), int(match.group(2)))}"

        def local(match: re.Match[str]) -> str:  # a service's own listening address
            return f"127.0.0.1:{self.port(service, int(match.group(1)))}"

        # Own addresses first: the remote substitution also yields 127.0.0.1:port.
        value = re.sub(r"(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)", local, value)
        value = re.sub(rf"(?<![\w.-])({hosts}):(\d+)", remote, value)
        return value.replace("/tmp", str(self.work / service / "tmp")).replace(
            "/var/lib/shadowcanary", str(self.work / service / "var")
        )

    def environment(self, name: str) -> dict[str, str]:
        spec = self.compose["services"][name]
        env = {k: self.rewrite(name, str(v)) for k, v in (spec.get("environment") or {}).items()}
        if "SHADOWCANARY_METRICS_PORT" in env:
            env["SHADOWCANARY_METRICS_PORT"] = str(
                self.port(name, int(env["SHADOWCANARY_METRICS_PORT"]))
            )
            env["SHADOWCANARY_METRICS_ADDR"] = "127.0.0.1"
        return env

    def command(self, name: str) -> list[str]:
        spec = self.compose["services"][name]
        command = spec["command"]
        words = shlex.split(command) if isinstance(command, str) else list(command)
        words = [self.rewrite(name, w) for w in words]
        # --port N: the service's own container port, published on a free host port.
        for i, word in enumerate(words[:-1]):
            if word == "--port" and words[i + 1].isdigit():
                words[i + 1] = str(self.port(name, int(words[i + 1])))
            if word == "--host":
                words[i + 1] = "127.0.0.1"
        executable = BIN / words[0]
        if not executable.exists():
            raise ComposeError(f"service {name}: {words[0]} is not installed by shadowcanary")
        return [str(executable), *words[1:]]

    def healthcheck(self, name: str) -> list[str] | None:
        """The service's compose healthcheck as a host command (our image's only)."""
        test = self.compose["services"][name].get("healthcheck", {}).get("test")
        if not test:
            return None
        kind, *rest = test
        if kind == "CMD-SHELL":
            return ["sh", "-c", self.rewrite(name, rest[0])]
        words = [self.rewrite(name, w) for w in rest]
        if words[0] == "python":
            return [sys.executable, *words[1:]]
        return [str(BIN / words[0]), *words[1:]]

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> Service:
        (self.work / name / "tmp").mkdir(parents=True, exist_ok=True)
        (self.work / name / "var").mkdir(parents=True, exist_ok=True)
        env = {**self.environment(name), **(extra_env or {})}
        env["HOSTNAME"] = socket.gethostname()  # as in a container: what %h expands to
        service = Service(name, self.command(name), env, log=self.work / f"{name}.log")
        proc = spawn_logged(service.command, child_env(env), service.log)
        service.process = ChildProcess(proc)
        self.services[name] = service
        return service

    def run_once(self, name: str, timeout_s: float = 120) -> None:
        """A one-shot service (migrate): must exit 0, as `service_completed_successfully`."""
        service = self.start(name)
        assert service.process is not None and service.log is not None
        code = service.process.proc.wait(timeout=timeout_s)
        if code != 0:
            raise ComposeError(f"{name} exited {code}:\n{log_tail(service.log)}")

    def wait_healthy(self, name: str, timeout_s: float = 180) -> None:
        """Poll the compose healthcheck until it passes (the process must stay up)."""
        check = self.healthcheck(name)
        service = self.services[name]
        assert check is not None and service.process is not None and service.log is not None
        env = child_env({**service.environment, "PATH": f"{BIN}:{os.environ['PATH']}"})

        def healthy() -> bool:
            if service.process is not None and service.process.proc.poll() is not None:
                raise ComposeError(f"{name} exited:\n{log_tail(service.log or Path())}")
            done = subprocess.run(
                check, env=env, capture_output=True, timeout=30, check=False, cwd=ROOT
            )
            return done.returncode == 0

        wait_until(healthy, timeout_s=timeout_s, interval_s=2.0, what=f"{name} healthy")

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            if service.process is not None:
                service.process.stop(grace_s=15)


def _create_role_and_database(server: PostgresServer, spec: Mapping[str, Any]) -> None:
    """What the postgres image does with POSTGRES_USER / _PASSWORD / _DB."""
    env = spec["environment"]
    user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    engine = create_engine(server.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'"))
            conn.execute(text(f'CREATE DATABASE "{database}" OWNER "{user}"'))
    finally:
        engine.dispose()


@contextlib.contextmanager
def infrastructure(stack: ComposeStack) -> Iterator[None]:
    """Postgres (both databases), Redis and Unleash on the ports the stack maps."""
    services = stack.compose["services"]
    postgres = PostgresServer(stack.work / "pg", port=stack.port("postgres", 5432))
    stack.ports[("unleash-db", 5432)] = postgres.port
    redis = RedisServer(stack.work / "redis", port=stack.port("redis", 6379), appendonly=True)
    unleash: subprocess.Popen[bytes] | None = None
    try:
        postgres.start()
        redis.start()
        for name in ("postgres", "unleash-db"):
            _create_role_and_database(postgres, services[name])
        node, script = check_installed()
        env = stack.environment("unleash")
        env.update(
            UNLEASH_HOST="127.0.0.1",
            UNLEASH_PORT=str(stack.port("unleash", 4242)),
            UNLEASH_PARENT_PID=str(os.getpid()),
        )
        unleash = spawn_logged(
            [node, str(script)], {**os.environ, **env}, stack.work / "unleash.log"
        )
        wait_until(
            lambda: _answers(stack.url("unleash", 4242, "/health")),
            timeout_s=90,
            interval_s=0.5,
            what="unleash /health",
        )
        yield
    finally:
        if unleash is not None:
            ChildProcess(unleash).stop(grace_s=10)
        redis.stop()
        postgres.stop()


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
