"""The shared child-process helpers: start-up failures are explained, stops always stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shadowcanary.launcher.processes import (
    child_env,
    scratch_dir,
    serve_with_port_file,
    spawn_logged,
    stop_process,
)
from shadowcanary.testing.poll import wait_until


class _Failed(RuntimeError):
    pass


def _start(module: str, workdir: Path, env: dict[str, str], startup_timeout_s: float) -> None:
    """Launch ``module`` as a port-file server that is expected never to become ready."""
    with serve_with_port_file(
        module,
        [],
        workdir=workdir,
        env=env,
        ready_path="/healthz",
        what=module.split(".")[-1],
        failure=_Failed,
        startup_timeout_s=startup_timeout_s,
        stop_grace_s=1,
    ):
        pytest.fail("the block must not run for a server that never became ready")


def test_a_server_dying_during_start_up_raises_with_its_exit_code_and_log(tmp_path: Path) -> None:
    # ``python -m json.tool --port-file ...`` refuses the unknown flags and exits 2.
    with pytest.raises(_Failed, match=r"(?s)tool exited with code 2 during start-up:.*usage"):
        _start("json.tool", tmp_path, child_env({}), startup_timeout_s=20)


def test_a_server_that_never_writes_its_port_times_out_and_is_stopped(tmp_path: Path) -> None:
    # A module that starts and prints but never writes its port file.
    waiter = "import os, time\nprint('waiting', os.getpid(), flush=True)\ntime.sleep(60)\n"
    (tmp_path / "waiter.py").write_text(waiter)
    env = child_env({"PYTHONPATH": str(tmp_path)})
    with pytest.raises(_Failed, match=r"(?s)waiter not ready within 0.5s:.*waiting"):
        _start("waiter", tmp_path, env, startup_timeout_s=0.5)
    pid = int((tmp_path / "waiter.log").read_text().split()[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped, not left running


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "stubborn.log"
    proc = spawn_logged([sys.executable, "-c", code], child_env({}), log)
    try:
        _wait_for_text(log, "ready", proc)
        stop_process(proc, grace_s=0.3)
        assert proc.returncode == -9  # SIGTERM was ignored; SIGKILL ended it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_child_env_drops_our_settings_but_keeps_the_given_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHADOWCANARY_REDIS_URL", "redis://developer-shell")
    env = child_env({"SHADOWCANARY_LOG_LEVEL": "info"})
    assert "SHADOWCANARY_REDIS_URL" not in env
    assert env["SHADOWCANARY_LOG_LEVEL"] == "info"
    inherited = child_env({}, inherit_settings=True)
    assert inherited["SHADOWCANARY_REDIS_URL"] == "redis://developer-shell"


def test_scratch_dir_is_removed_afterwards() -> None:
    with scratch_dir("sc-test-") as workdir:
        (workdir / "file").write_text("x")
    assert not workdir.exists()


def _wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    wait_until(
        lambda: text in log.read_text() or proc.poll() is not None,
        timeout_s=20,
        what=f"{text!r} in the child's log",
    )
    assert proc.poll() is None, log.read_text()
