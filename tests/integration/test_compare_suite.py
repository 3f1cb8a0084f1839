"""``shadowcanary compare`` end to end: a real simulator subprocess and a real Postgres.

The commands run through typer exactly as the console script mounts them; the
models are the simulator's, configured through SHADOWCANARY_MODELS like production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
import typer
from typer.testing import CliRunner, Result

from shadowcanary.cli.offline import compare_command
from shadowcanary.events import Arm, CallStatus, CapturedCall
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.repository import Store
from shadowcanary.testing.factories import make_event

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = {"median_ms": 3, "p99_ms": 8}
PROFILES = {
    # Sampled at a temperature: asked twice, the baseline does not repeat itself exactly.
    "gpt-5.2": {**FAST, "sampling_noise": 0.03},
    "gpt-5.5": {**FAST, "diverge_from": "gpt-5.2", "divergence": 0.0, "sampling_noise": 0.03},
    # Rewrites a third of every answer and never returns parsable JSON.
    "gpt-5.5-broken": {
        **FAST,
        "diverge_from": "gpt-5.2",
        "divergence": 0.3,
        "invalid_json_rate": 1.0,
    },
}
ROUTE = "support.chat"


@pytest.fixture(scope="module")
def suite_sim() -> Iterator[SimHandle]:
    """A simulator subprocess serving a baseline, a faithful and a broken candidate."""
    with run_simulator(PROFILES) as handle:
        yield handle


def _env(sim: SimHandle, database_url: str | None = None) -> dict[str, str]:
    env = {
        "SHADOWCANARY_MODELS": json.dumps({name: {"base_url": sim.base_url} for name in PROFILES}),
        "SHADOWCANARY_BASELINE_MODEL": "gpt-5.2",
        "SHADOWCANARY_CANDIDATE_MODEL": "gpt-5.5",
        "SHADOWCANARY_LOG_LEVEL": "warning",
    }
    if database_url is not None:
        env["SHADOWCANARY_DATABASE_URL"] = database_url
    return env


def _compare(env: dict[str, str], *args: str) -> Result:
    app = typer.Typer()
    app.command("compare")(compare_command)
    app.command("noop")(lambda: None)  # a second command keeps "compare" a subcommand
    return CliRunner().invoke(app, ["compare", *args], env=env)


def _report(result: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _checks(report: dict[str, Any]) -> dict[str, str]:
    return {check["check"]: check["status"] for check in report["gate"]}


@pytest.mark.parametrize("suite", ["prompts.csv", "prompts.jsonl"])
def test_faithful_candidate_passes_the_gate(suite_sim: SimHandle, suite: str) -> None:
    """A candidate that answers like the baseline passes: exit 0, every check pass or skipped."""
    result = _compare(_env(suite_sim), "--suite", str(EXAMPLES / suite), "--repeats", "3", "--json")
    assert result.exit_code == 0, result.output
    report = _report(result)
    assert report["passed"] is True
    assert report["candidate"] == "gpt-5.5"
    assert report["failed_calls"] == {"baseline": 0, "candidate": 0}
    assert report["calls"] == 2 * 3 * report["cases"]
    assert "fail" not in _checks(report).values()
    assert _checks(report)["schema valid"] == "pass"
    similarity = next(m for m in report["metrics"] if m["metric"] == "similarity")
    assert similarity["pairs"] == report["cases"]
    assert similarity["ci_low"] <= similarity["difference"] <= similarity["ci_high"]


def test_candidate_breaking_json_fails_the_gate(suite_sim: SimHandle) -> None:
    """Invalid JSON from the candidate fails the schema and validity checks: exit 1."""
    result = _compare(
        _env(suite_sim),
        "--suite", str(EXAMPLES / "prompts.jsonl"),
        "--candidate", "gpt-5.5-broken",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    report = _report(result)
    checks = _checks(report)
    assert report["passed"] is False
    assert checks["schema valid"] == "fail"
    assert checks["valid drop"] == "fail"
    valid = next(m for m in report["metrics"] if m["metric"] == "valid")
    assert valid["baseline_mean"] == 1.0
    assert valid["candidate_mean"] < 0.5
    broken = {c["id"] for c in report["case_results"] if c["problems"]}
    assert {"greeting-json", "invoice-extract"} <= broken


def test_table_output_names_the_failing_checks_and_cases(
    suite_sim: SimHandle, tmp_path: Path
) -> None:
    """Without --json a person sees the verdict and failing cases; --report-file keeps JSON."""
    report_file = tmp_path / "report.json"
    result = _compare(
        _env(suite_sim),
        "--suite", str(EXAMPLES / "prompts.csv"),
        "--candidate", "gpt-5.5-broken",
        "--report-file", str(report_file),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "ticket-triage" in result.stdout
    assert json.loads(report_file.read_text())["passed"] is False


def test_invalid_suite_file_exits_2_naming_the_line(suite_sim: SimHandle, tmp_path: Path) -> None:
    """A bad case is a usage error (exit 2) whose message names its line; no model is called."""
    suite_sim.reset_stats()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "ok", "prompt": "hi"}\n{"id": "typo", "promt": "hi"}\n')
    result = _compare(_env(suite_sim), "--suite", str(bad))
    assert result.exit_code == 2
    assert "line 2 (case 'typo')" in result.output
    assert "promt: unknown field" in result.output
    assert suite_sim.stats()["total"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidate", "gpt-9"], "model 'gpt-9' is not configured"),
        ([], "give exactly one of --suite FILE or --from-captures ROUTE"),
    ],
)
def test_usage_errors_exit_2(suite_sim: SimHandle, args: list[str], message: str) -> None:
    """An unknown model or a missing suite is exit 2 with one clear line."""
    suite_args = ["--suite", str(EXAMPLES / "prompts.csv")] if args else []
    result = _compare(_env(suite_sim), *suite_args, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_unreachable_candidate_is_not_a_verdict(suite_sim: SimHandle) -> None:
    """A candidate endpoint that answers nothing is exit 2 (fix the config), not a gate failure."""
    env = _env(suite_sim)
    models = json.loads(env["SHADOWCANARY_MODELS"])
    models["gpt-5.5"] = {"base_url": "http://127.0.0.1:9/v1", "timeout_s": 2}
    env["SHADOWCANARY_MODELS"] = json.dumps(models)
    result = _compare(env, "--suite", str(EXAMPLES / "prompts.jsonl"), "--repeats", "1")
    assert result.exit_code == 2
    assert "candidate gpt-5.5 answered none of 5 calls" in result.output


# --- --from-captures ----------------------------------------------------------------------

JSON_REQUEST = {
    "messages": [
        {"role": "system", "content": "Reply with JSON only."},
        {"role": "user", "content": "Classify: 'nightly backup fails with quota exceeded'."},
    ],
    "parameters": {"response_format": {"type": "json_object"}},
}


def _live_call(sim: SimHandle, request: dict[str, Any], **overrides: Any) -> CapturedCall:
    """A capture of a real baseline call to the simulator, as the tap records it."""
    client = openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key)
    completion = client.chat.completions.create(
        model="gpt-5.2", messages=request["messages"], **request.get("parameters", {})
    )
    text = completion.choices[0].message.content
    fields: dict[str, Any] = {
        "route": ROUTE,
        "model": "gpt-5.2",
        "request": request,
        "response": {"text": text, "finish_reason": "stop"},
    }
    return make_event(**(fields | overrides))


@pytest.fixture
def captured(suite_sim: SimHandle, database_url: str) -> list[CapturedCall]:
    """Six recent baseline captures of the route, plus captures that must not be replayed."""
    prompts = [
        "My nightly backup failed with 'quota exceeded'. How do I raise the quota?",
        "How do I rotate the API key of a service account?",
        "Why was I charged twice for the May invoice?",
        "Can I move a project to another organisation?",
        "How long are deleted buckets kept before they are purged?",
    ]
    requests = [{"messages": [{"role": "user", "content": p}]} for p in prompts] + [JSON_REQUEST]
    wanted = [_live_call(suite_sim, request) for request in requests]
    now = datetime.now(UTC)
    excluded = [
        _live_call(suite_sim, requests[0], route="billing.chat"),
        _live_call(suite_sim, requests[0], started_at=now - timedelta(days=2)),
        make_event(route=ROUTE, arm=Arm.CANDIDATE),
        make_event(route=ROUTE, status=CallStatus.TIMEOUT),
    ]
    store = Store(make_engine(database_url, pool_size=1))
    store.insert_captures(
        [AssessedCapture(event, None, None) for event in wanted + excluded], received_at=now
    )
    return wanted


def test_from_captures_replays_only_the_route_recent_baseline_calls(
    suite_sim: SimHandle, database_url: str, captured: list[CapturedCall]
) -> None:
    """Recorded answers are the baseline arm: only the candidate is called, and it passes."""
    suite_sim.reset_stats()
    result = _compare(
        _env(suite_sim, database_url),
        "--from-captures", ROUTE,
        "--since", "1h",
        "--repeats", "2",
        "--min-similarity", "0.8",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = _report(result)
    assert sorted(c["id"] for c in report["case_results"]) == sorted(e.event_id for e in captured)
    assert report["calls"] == 2 * len(captured)
    requests = suite_sim.stats()["requests"]
    assert "gpt-5.2" not in requests  # the baseline is the recording, not called again
    assert requests["gpt-5.5"]["200"] == 2 * len(captured)
    checks = _checks(report)
    assert checks["below min similarity"] == "pass"
    assert checks["similarity drop"] == "skipped"  # one recording per case: no noise floor
    assert checks["valid drop"] == "pass"


def test_from_captures_with_a_diverging_candidate_fails(
    suite_sim: SimHandle, database_url: str, captured: list[CapturedCall]
) -> None:
    """A candidate far from the recorded answers and breaking JSON fails the gate: exit 1."""
    result = _compare(
        _env(suite_sim, database_url),
        "--from-captures", ROUTE,
        "--since", "1h",
        "--candidate", "gpt-5.5-broken",
        "--min-similarity", "0.8",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    checks = _checks(_report(result))
    assert checks["below min similarity"] == "fail"
    assert checks["valid drop"] == "fail"


def test_from_captures_of_an_unknown_route_exits_2(suite_sim: SimHandle, database_url: str) -> None:
    """No captures to replay is a usage error that names the route."""
    result = _compare(_env(suite_sim, database_url), "--from-captures", "no.such.route")
    assert result.exit_code == 2
    assert "no successful baseline captures of route 'no.such.route'" in result.output
