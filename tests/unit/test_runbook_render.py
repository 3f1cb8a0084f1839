"""Runbook rendering: deterministic, secret-free, every command real, right advice per status."""

from __future__ import annotations

import os
import re
import shlex
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from prometheus_client import REGISTRY

from runbooks.examples.rolled_back import EXAMPLE_PATH, T0, build
from runbooks.generator import (
    ALERTS_DIR,
    STATIC_RUNBOOKS,
    RunbookInputs,
    install_static_runbooks,
    render_runbook,
    runbook_path,
    settings_secrets,
    static_runbook,
    write_atomically,
)
from runbooks.hook import RunbookHook
from runbooks.view import FlagAccess, public_url
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutStatus
from shadowcanary.settings import load_settings

NAME = "checkout-gpt55"
UNLEASH = FlagAccess(backend="unleash", unleash_url="https://unleash.internal.example.com")
EMBEDDED = FlagAccess(backend="embedded")


def inputs_with(status: RolloutStatus, **changes: object) -> RunbookInputs:
    """The example's rollout in another status (same history and decision)."""
    example = build()
    record = replace(
        example.record, status=status, percent=0 if status.value == "rolled_back" else 30
    )
    return replace(example, record=record, **changes)  # type: ignore[arg-type]


# --- determinism ---------------------------------------------------------------------


def test_rendering_is_deterministic_whatever_the_history_order() -> None:
    """Same inputs give the same bytes, and the audit log's order does not matter."""
    inputs = build()
    assert inputs.history is not None
    shuffled = replace(inputs, history=tuple(reversed(inputs.history)))
    first = render_runbook(inputs)
    assert render_runbook(inputs) == first
    assert render_runbook(shuffled) == first
    assert render_runbook(build()) == first


def test_committed_example_is_what_the_generator_writes() -> None:
    """runbooks/examples/ holds what the generator writes now for the example rollout."""
    rendered = render_runbook(build())
    if os.environ.get("UPDATE_RUNBOOK_EXAMPLE"):
        write_atomically(EXAMPLE_PATH, rendered)
    assert EXAMPLE_PATH.read_text(encoding="utf-8") == rendered, (
        "example out of date: run `.venv/bin/python -m runbooks.examples.rolled_back`"
    )


# --- content -------------------------------------------------------------------------


def test_rolled_back_runbook_names_the_trigger_its_numbers_and_the_commands() -> None:
    """The rolled-back example says what fired, its numbers, and how to roll back and verify."""
    inputs = build()
    text = render_runbook(inputs)
    decision = inputs.decision
    assert decision is not None
    fired = next(t for t in decision.triggers if t.name == "error_rate")
    assert fired.estimate is not None and fired.lower is not None and fired.upper is not None
    assert text.startswith("# Runbook for rollout `checkout-gpt55`: ROLLED BACK")
    assert "Rolled back at 30 %" in text
    assert "Fired: `error_rate`" in text
    assert f"{fired.statistic:.3g} reached threshold {fired.threshold:.3g}" in text
    assert f"{100 * fired.estimate:+.2f} pt" in text
    assert f"[{100 * fired.lower:+.2f} pt, {100 * fired.upper:+.2f} pt]" in text
    assert "`gpt-5.2`" in text and "`gpt-5.5`" in text and "`checkout-model`" in text
    assert "project `payments`, environment `production`" in text
    for command in (
        f'shadowcanary rollout rollback {NAME} --reason "on-call: describe what you saw"',
        f"shadowcanary rollout status {NAME}",
        f"shadowcanary status --rollout {NAME}",
        f"shadowcanary rollout pause {NAME}",
        f"shadowcanary rollout resume {NAME}",
        f"shadowcanary rollout promote {NAME} --to 50",
    ):
        assert command in text, command
    assert '"$ENV_URL/off"' in text
    assert '"path": "/parameters/rollout", "value": "0"' in text
    assert '-H "Authorization: $UNLEASH_ADMIN_TOKEN"' in text
    assert "**Projects** → `payments` → **Feature flags** → `checkout-model`" in text
    assert 'Expect `"enabled": false` and `"rollout": ["0"]`' in text
    assert "ORDER BY c.lexical_similarity ASC" in text
    assert "#payments-oncall (pager: payments-primary)" in text
    assert "hooks.slack.com" not in text  # webhook URLs are secrets too


def test_step_history_comes_from_the_audit_log_without_intents_or_holds() -> None:
    """Each step change is listed with time, actor and reason; intents and HOLDs are summarised."""
    text = render_runbook(build())
    history = text.split("## 5. Step history", 1)[1].split("## 6.", 1)[0]
    assert "2026-03-02 09:00:00 UTC · `cli:alice` · **START** · to 0 %" in history
    assert "09:00:10 UTC · `controller@ctl-7f9c:41` · **ADVANCE** · 0 % -> 10 %" in history
    assert "**ADVANCE** · 10 % -> 30 %" in history
    assert "**ROLLBACK** · 30 % -> 0 %" in history
    assert "intent:" not in history
    assert "1 HOLD entry is left out above" in history


@pytest.mark.parametrize(
    ("status", "headline", "applies", "refused"),
    [
        (RolloutStatus.RUNNING, "**Running at 30 % (step 2 of 4)", ["6.3", "6.5"], ["6.4"]),
        (RolloutStatus.PAUSED, "**Paused at 30 %.", ["6.4", "6.5"], ["6.3"]),
        (RolloutStatus.OVERRIDDEN, "**Someone changed the flag", ["6.3", "6.4"], []),
        (RolloutStatus.ROLLED_BACK, "**Rolled back at 30 %.", ["6.1", "6.6"], ["6.3", "6.5"]),
        (RolloutStatus.COMPLETED, "**Complete: `gpt-5.5` serves", ["6.1"], ["6.3", "6.6"]),
        (RolloutStatus.ABORTED, "**Aborted: the controller", ["6.1"], ["6.4", "6.6"]),
    ],
)
def test_each_status_gets_its_own_advice(
    status: RolloutStatus, headline: str, applies: list[str], refused: list[str]
) -> None:
    """Section 1 fits the status, and each action says whether it applies now."""
    text = render_runbook(inputs_with(status))
    assert headline in text

    def verdict(section: str) -> str:
        return text.split(f"### {section} ", 1)[1].split("\n\n", 2)[1]

    for section in applies:
        assert verdict(section) == "Applies now: yes.", section
    for section in refused:
        assert verdict(section).startswith("**Does not apply now:**"), section


def test_escalating_hold_asks_for_a_person() -> None:
    """A running rollout whose last decision escalates tells the reader what to decide."""
    example = build()
    assert example.decision is not None
    hold = replace(
        example.decision, reason="step deadline (1440 min) passed: waiting", escalate=True
    )
    text = render_runbook(inputs_with(RolloutStatus.RUNNING, decision=hold))
    assert "The controller asks a person to look: step deadline (1440 min) passed" in text
    assert "Asked for a person: yes." in text


def test_an_unwritten_rollback_warns_to_turn_the_flag_off_by_hand() -> None:
    """A rollback recorded while the flag backend was down says the flag may still serve users."""
    example = build()
    assert example.history is not None
    failed = replace(example.history[-1], to_percent=None, reason="...; the flag could not be set")
    text = render_runbook(replace(example, history=(*example.history[:-1], failed)))
    assert "**WARNING: the flag may NOT be at 0 % yet.**" in text
    assert "WARNING" not in render_runbook(example)


def test_embedded_backend_shows_sql_not_unleash() -> None:
    """Without Unleash there are no UI clicks or curl; the flag is read from the flags table."""
    text = render_runbook(replace(build(), flags=EMBEDDED))
    assert "curl" not in text and "UNLEASH_ADMIN_TOKEN" not in text
    assert "the embedded flag store (table `flags`" in text
    assert "FROM flags WHERE name = 'checkout-model'" in text


def test_missing_audit_log_is_said_not_hidden() -> None:
    """When the audit log cannot be read the runbook still renders, and says what is missing."""
    example = build()
    text = render_runbook(replace(example, history=None, history_error="Postgres is down"))
    assert "the audit log could not be read (Postgres is down)" in text
    assert "shadowcanary rollout rollback checkout-gpt55" in text
    assert "Fired: `error_rate`" in text  # the decision passed by the tick is still there


def test_no_decision_yet_shows_the_plans_margins() -> None:
    """A rollout that has not decided anything lists its triggers with the plan's margins."""
    example = build()
    started = replace(example.record, status=RolloutStatus.RUNNING, step_index=-1, percent=0)
    text = render_runbook(RunbookInputs(started, example.history[:1] if example.history else ()))
    assert "No decision yet: the margins are the plan's." in text
    assert "| error_rate | act | no decision yet | +1.00 pt over baseline |" in text
    assert "shadow gate (moves to 10 % once it passes)" in text  # the plan has the default gate


def test_tail_latency_row_says_what_the_test_counts() -> None:
    """The p99 row reads as the canary's excess share of slow requests over the baseline's."""
    example = build()
    started = replace(example.record, status=RolloutStatus.RUNNING, step_index=-1, percent=0)
    text = render_runbook(RunbookInputs(started, ()))
    tail = example.record.plan.triggers.p99_latency
    quantile = 100 * tail.quantile
    assert (
        "| p99_latency | act | no decision yet | +0.6 pt of requests slower than baseline "
        f"p{quantile:g} + {tail.margin_ms:g} ms over the concurrent baseline's |"
    ) in text


def test_unleash_ui_steps_expand_the_environment_name_the_pencil_and_the_confirmation() -> None:
    """The UI clicks are the ones Unleash 7 needs: expand, pencil icon, confirm production."""
    text = render_runbook(build())
    assert "Expand environment `production`: click its row" in text
    assert "click the pencil icon (**Edit strategy**)" in text
    assert "**Changing production environment!**" in text


def test_flag_refresh_in_the_runbook_is_the_configured_one() -> None:
    """The runbook's flag refresh is the gateway's setting (README: 5 s), not a fixed 15 s."""
    assert "2 x 5 s, `SHADOWCANARY_GATEWAY__FLAG_REFRESH_S`" in render_runbook(build())
    slower = replace(build(), flags=replace(UNLEASH, refresh_s=30.0))
    assert "2 x 30 s" in render_runbook(slower)
    assert "about every 15 s" not in render_runbook(slower)


# --- secrets -------------------------------------------------------------------------


def test_secrets_never_reach_the_runbook(tmp_path: Path) -> None:
    """Token, API keys and URL passwords in settings are redacted, even quoted in a reason."""
    token = "*:*.unleash-admin-7f3a9c2e1b"
    settings = load_settings(
        {
            "SHADOWCANARY_FLAGS": "unleash",
            "SHADOWCANARY_UNLEASH_URL": "http://ops:hunter2pw@unleash:4242/api",
            "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": token,
            "SHADOWCANARY_DATABASE_URL": "postgresql://sc:pg-Secret-99@db:5432/sc",
        }
    )
    secrets = settings_secrets(settings)
    assert {token, "hunter2pw", "pg-Secret-99"} <= set(secrets)
    example = build()
    assert example.history is not None
    leaky = replace(example.history[-1], reason=f"Unleash refused token {token} (pg-Secret-99)")
    hook = RunbookHook.from_settings(settings, store=None, output_dir=tmp_path)
    inputs = replace(
        example, history=(*example.history[:-1], leaky), decision=None, flags=hook.flags
    )
    text = render_runbook(inputs, secrets=secrets)
    for secret in (token, "hunter2pw", "pg-Secret-99"):
        assert secret not in text
    assert "Unleash refused token <redacted> (<redacted>)" in text
    assert "export UNLEASH_URL=http://unleash:4242\n" in text  # no user:password, no /api
    assert '"$SHADOWCANARY_UNLEASH_ADMIN_TOKEN"' in text
    hook(example.record, None)
    written = runbook_path(tmp_path, NAME).read_text(encoding="utf-8")
    assert token not in written and "hunter2pw" not in written


def test_public_url_drops_credentials_and_api_suffix() -> None:
    """The Unleash address shown is the UI's, without credentials."""
    assert public_url("https://u:p@unleash.example.com/api/") == "https://unleash.example.com"
    assert public_url("http://unleash:4242") == "http://unleash:4242"


# --- every command is real -----------------------------------------------------------


def cli_group() -> Any:
    """The shadowcanary command line (a typer/click group), plus what shadowcanary.cli.main
    may not mount yet. Typer vendors click, so groups are recognised by ``commands``."""
    from shadowcanary.cli.main import app
    from shadowcanary.cli.rollout import controller_app, rollout_app
    from shadowcanary.cli.runbook import runbook_command

    group: Any = typer.main.get_command(app)
    assert hasattr(group, "commands")
    extra = typer.Typer()
    extra.command("runbook")(runbook_command)
    extra.command("unused")(lambda: None)
    mounts = {
        "rollout": typer.main.get_command(rollout_app),
        "controller": typer.main.get_command(controller_app),
        "runbook": typer.main.get_command(extra).commands["runbook"],  # type: ignore[attr-defined]
    }
    for name, command in mounts.items():
        if name not in group.commands:
            group.add_command(command, name)
    return group


_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.DOTALL | re.MULTILINE)
_INLINE = re.compile(r"`(shadowcanary [^`]+)`")


def shadowcanary_commands(markdown: str) -> set[str]:
    """Every ``shadowcanary ...`` command in code blocks and inline code."""
    found = set(_INLINE.findall(markdown))
    for _indent, _lang, body in _FENCE.findall(markdown):
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("shadowcanary "):
                found.add(line)
    return found


def all_runbooks() -> dict[str, str]:
    texts = {f"static/{name}": static_runbook(name) for name in STATIC_RUNBOOKS}
    for status in RolloutStatus:
        for flags in (UNLEASH, EMBEDDED):
            texts[f"{status.value}/{flags.backend}"] = render_runbook(
                inputs_with(status, flags=flags)
            )
    return texts


def test_every_shadowcanary_command_in_a_runbook_parses_against_the_real_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command's path exists, its options are known, its arguments parse, it has --help."""
    group = cli_group()
    commands = set().union(*(shadowcanary_commands(t) for t in all_runbooks().values()))
    assert len(commands) >= 12, commands
    helped: set[tuple[str, ...]] = set()
    for line in sorted(commands):
        words = shlex.split(line)[1:]
        command, path = group, []
        while hasattr(command, "commands") and words and words[0] in command.commands:
            path.append(words.pop(0))
            command = command.commands[path[-1]]
        assert not hasattr(command, "commands"), f"{line!r}: {path} is not a command"
        context = command.make_context(" ".join(["shadowcanary", *path]), list(words))
        if tuple(path) not in helped:
            helped.add(tuple(path))
            # Typer prints its rich help itself; plain click returns it.
            shown = (command.get_help(context) or "") + capsys.readouterr().out
            assert "Usage: shadowcanary" in shown, line


def test_runbook_links_resolve_to_installed_alert_runbooks(tmp_path: Path) -> None:
    """Every relative link in a generated runbook points at a file written next to it."""
    path = runbook_path(tmp_path, NAME)
    write_atomically(path, render_runbook(build()))
    install_static_runbooks(tmp_path)
    links = re.findall(r"\]\(([^)]+\.md)\)", path.read_text(encoding="utf-8"))
    assert len(links) == 5
    for link in links:
        assert (tmp_path / link).is_file(), link
    assert sorted(p.name for p in (tmp_path / ALERTS_DIR).iterdir()) == sorted(STATIC_RUNBOOKS)


# --- writing -------------------------------------------------------------------------


def test_readers_never_see_half_a_runbook(tmp_path: Path) -> None:
    """While one thread rewrites the file, another only ever reads a whole version."""
    path = tmp_path / "r.md"
    versions = [f"# version {i}\n" + "line\n" * (2000 + 500 * i) for i in range(4)]
    write_atomically(path, versions[0])
    stop = threading.Event()
    seen: list[str] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(path.read_text(encoding="utf-8"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(60):
            write_atomically(path, versions[round_ % 4])
    finally:
        stop.set()
        reader.join()
    assert seen and all(text in versions for text in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary files left


def test_runbook_path_refuses_names_that_leave_the_directory(tmp_path: Path) -> None:
    """A rollout name is a file name inside the output directory, nothing else."""
    assert runbook_path(tmp_path, NAME) == tmp_path / f"{NAME}.md"
    for bad in ("../etc", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            runbook_path(tmp_path, bad)


def test_hook_logs_and_counts_a_failure_instead_of_raising(tmp_path: Path) -> None:
    """An unwritable output directory costs a counted failure, never an exception in the tick."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    example = build()
    record = replace(example.record, name="hook-fails")
    labels = {"rollout": "hook-fails"}
    before = REGISTRY.get_sample_value("shadowcanary_runbook_failures_total", labels) or 0.0
    RunbookHook(store=None, output_dir=blocker)(record, example.decision)
    after = REGISTRY.get_sample_value("shadowcanary_runbook_failures_total", labels)
    assert after == before + 1


def test_hook_writes_the_runbook_and_the_alert_runbooks(tmp_path: Path) -> None:
    """Without a store the hook still writes the runbook from the record and the decision."""
    example = build()
    RunbookHook(store=None, output_dir=tmp_path, flags=UNLEASH)(example.record, example.decision)
    text = runbook_path(tmp_path, NAME).read_text(encoding="utf-8")
    assert "Fired: `error_rate`" in text
    assert "the audit log could not be read (no database is configured)" in text
    assert (tmp_path / ALERTS_DIR / "controller-down.md").is_file()


def test_as_of_is_the_newest_moment_in_the_inputs() -> None:
    """The 'state as of' time comes from the inputs, never from the clock."""
    example = build()
    later = replace(
        example.record, updated_at=T0 + timedelta(hours=2), status=RolloutStatus.ABORTED
    )
    entry = AuditEntry(
        None, T0 + timedelta(hours=1), NAME, "cli:bob", AuditAction.ABORT, 0, None, "x"
    )
    assert example.history is not None
    text = render_runbook(replace(example, record=later, history=(*example.history, entry)))
    assert "State as of **2026-03-02 11:00:00 UTC**" in text
