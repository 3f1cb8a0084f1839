"""Suite files: CSV and JSONL cases, and errors that name the line and the problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.suite.captures import parse_since
from shadowcanary.suite.cases import MatchMode
from shadowcanary.suite.loader import SuiteFileError, load_suite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEADER = "id,prompt,expected_output,match,min_similarity,schema,expected_tool,tools"


def _jsonl(tmp_path: Path, *cases: dict[str, Any] | str) -> Path:
    path = tmp_path / "suite.jsonl"
    lines = [c if isinstance(c, str) else json.dumps(c) for c in cases]
    path.write_text("\n".join(lines) + "\n")
    return path


def _csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "suite.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("name", ["prompts.csv", "prompts.jsonl"])
def test_example_suites_load(name: str) -> None:
    """The shipped examples are valid suites with unique ids and a source per case."""
    cases = load_suite(EXAMPLES / name)
    assert len(cases) >= 5
    assert len({c.case_id for c in cases}) == len(cases)
    assert all(c.source.startswith(f"{name}:") for c in cases)
    assert any(c.schema_case for c in cases)
    assert any(c.expect.tool for c in cases)


def test_csv_case_fields() -> None:
    """CSV cells become the request and the expectations; JSON cells are parsed."""
    cases = {c.case_id: c for c in load_suite(EXAMPLES / "prompts.csv")}
    capital = cases["capital-fr"]
    assert capital.expect.output == "Paris"
    assert capital.expect.match is MatchMode.NORMALIZED
    assert capital.request.messages[-1].content.startswith("What is the capital")  # type: ignore[union-attr]
    assert capital.request.parameters == {"temperature": 0.0, "max_tokens": 10}
    triage = cases["ticket-triage"]
    assert triage.request.messages[0].role == "system"
    # "json_schema" alone sends the case's schema as the response format.
    response_format = triage.request.parameters["response_format"]
    assert response_format["json_schema"]["schema"] == triage.expect.schema  # type: ignore[index,call-overload]
    order = cases["order-status"]
    assert [t.name for t in order.request.tools] == ["get_order_status"]
    assert order.expect.tool == "get_order_status"
    assert cases["refund-summary"].expect.min_similarity == 0.6


def test_jsonl_messages_and_openai_tool_shape(tmp_path: Path) -> None:
    """JSONL takes chat messages and tools in the OpenAI request shape."""
    path = _jsonl(
        tmp_path,
        {
            "id": "weather",
            "messages": [{"role": "user", "content": "Umbrella in Lisbon?"}],
            "tools": [{"type": "function", "function": {"name": "get_forecast", "parameters": {}}}],
            "tool_choice": "required",
            "expected_tool": "get_forecast",
        },
    )
    (case,) = load_suite(path)
    assert case.request.tools[0].name == "get_forecast"
    assert case.request.parameters == {"tool_choice": "required"}
    assert case.structured and not case.schema_case


def test_missing_ids_get_line_ids_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    """Cases without an id are named after their line; blank lines are not cases."""
    path = _jsonl(tmp_path, {"prompt": "a"}, "", {"prompt": "b"})
    assert [c.case_id for c in load_suite(path)] == ["line-1", "line-3"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"id": "x", "prompt": "p", "min_similarty": 0.5}', "min_similarty: unknown field"),
        ('{"id": "x"}', "exactly one of 'prompt' or 'messages'"),
        (
            '{"id": "x", "prompt": "p", "messages": [{"role": "user", "content": "m"}]}',
            "exactly one",
        ),
        ('{"id": "x", "prompt": "p", "min_similarity": 1.5}', "min_similarity"),
        ('{"id": "x", "prompt": "p", "schema": {"type": "objekt"}}', "not a valid JSON schema"),
        ('{"id": "x", "prompt": "p", "expected_tool": "lookup"}', "not among the tools offered"),
        ('{"id": "x", "prompt": "p", "match": "fuzzy"}', "match"),
        ('{"id": "x", "prompt": "p", "parameters": {"model": "gpt-4o"}}', "may not set ['model']"),
        (
            '{"id": "x", "prompt": "p", "response_format": "json_schema"}',
            "needs the case's 'schema'",
        ),
        ('{"id": "x", "prompt": "p", "response_format": "yaml"}', "response_format"),
        ('{"id": "x", "prompt": "p", "match": "json", "expected_output": "{oops"}', "to be JSON"),
        ('{"id": "x", "prompt": "p", "tools": [{"parameters": {}}]}', "tools[0]"),
    ],
)
def test_bad_jsonl_line_is_named_with_its_problem(tmp_path: Path, line: str, problem: str) -> None:
    """An invalid case fails the load; the message gives its line number and what is wrong."""
    path = _jsonl(tmp_path, {"id": "good", "prompt": "fine"}, line)
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    message = caught.value.message
    assert "line 2" in message
    assert problem in message
    assert "line 1" not in message
    assert caught.value.hint


def test_every_bad_line_is_reported(tmp_path: Path) -> None:
    """Several bad lines are listed together, so one run finds them all."""
    path = _jsonl(tmp_path, "{", {"prompt": "ok"}, {"id": 3}, "nope")
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    message = caught.value.message
    assert "3 invalid case(s)" in message
    for line in ("line 1", "line 3", "line 4"):
        assert line in message


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    """A repeated id is an error naming the line that used it first."""
    path = _jsonl(
        tmp_path, {"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}, {"id": "a", "prompt": "z"}
    )
    with pytest.raises(SuiteFileError, match=r"line 3 \(case 'a'\): id 'a' already used on line 1"):
        load_suite(path)


def test_csv_bad_json_cell_and_extra_cells(tmp_path: Path) -> None:
    """A malformed JSON cell and a row with too many cells are named by line and column."""
    path = _csv(
        tmp_path,
        'ok,"Say hi",,,,,,',
        'bad-schema,"Say hi",,,,"{""type"": ",,',
        "too-many,hi,,,,,,,,extra",
    )
    with pytest.raises(SuiteFileError) as caught:
        load_suite(path)
    message = caught.value.message
    assert "line 3 (case 'bad-schema'): schema: not valid JSON" in message
    assert "line 4" in message and "more cells than the 8 columns" in message


def test_csv_multiline_cells_keep_line_numbers(tmp_path: Path) -> None:
    """A quoted cell spanning lines does not shift the line numbers of later rows."""
    path = _csv(
        tmp_path,
        'multi,"first line\nsecond line",,,,,,',
        "broken,hi,,,2.0,,,",
    )
    with pytest.raises(SuiteFileError, match=r"line 4 \(case 'broken'\): min_similarity"):
        load_suite(path)


def test_csv_unknown_column_is_named(tmp_path: Path) -> None:
    """A misspelt column is rejected on line 1 with the known columns as the hint."""
    path = _csv(tmp_path, "a,hi", header="id,promt")
    with pytest.raises(SuiteFileError, match=r"line 1: unknown columns \['promt'\]") as caught:
        load_suite(path)
    assert "prompt" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("suite.yaml", b"- prompt: hi\n", "unknown suite format '.yaml'"),
        ("suite.jsonl", b"", "has no cases"),
        ("suite.jsonl", b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', "line 2: not UTF-8"),
    ],
)
def test_file_level_problems(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    """Wrong format, empty file and non-UTF-8 bytes are errors that say so."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SuiteFileError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        load_suite(path)


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a SuiteFileError, not a traceback."""
    with pytest.raises(SuiteFileError, match="cannot read suite file"):
        load_suite(tmp_path / "missing.csv")


def test_csv_with_a_spreadsheet_bom(tmp_path: Path) -> None:
    """A UTF-8 BOM (as spreadsheets write it) does not break the header."""
    path = tmp_path / "suite.csv"
    path.write_bytes("\ufeffid,prompt\nhello,Say hello\n".encode())
    (case,) = load_suite(path)
    assert case.case_id == "hello"


NOW = datetime(2026, 6, 12, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("30m", NOW - timedelta(minutes=30)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2026-06-01T00:00:00Z", datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-06-01T00:00:00", datetime(2026, 6, 1, tzinfo=UTC)),
    ],
)
def test_since_durations_and_timestamps(value: str, expected: datetime) -> None:
    """--since takes a duration before now or a timestamp (naive means UTC)."""
    assert parse_since(value, now=NOW) == expected


def test_since_rejects_anything_else() -> None:
    """An unreadable --since is a ConfigError with an example in the hint."""
    with pytest.raises(ConfigError, match="neither a duration nor a timestamp") as caught:
        parse_since("yesterday", now=NOW)
    assert "24h" in (caught.value.hint or "")
