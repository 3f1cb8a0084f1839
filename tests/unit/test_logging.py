"""configure_logging: one JSON line per record, stdlib routed through it, content redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from shadowcanary.errors import ConfigError
from shadowcanary.logging import REDACTED, configure_logging

PROMPT = "my card is 4111 1111 1111 1111, summarise my divorce papers"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """A stream to log into; global logging state is restored after the test."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_event_is_one_json_line_with_the_standard_fields(out):
    """A structlog event becomes one JSON object with UTC ISO timestamp, level, logger, event."""
    configure_logging("info", stream=out)
    structlog.get_logger("workers.replay").info("replay.done", event_id="e1", latency_ms=12.5)

    [line] = _lines(out)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info"
    assert line["logger"] == "workers.replay"
    assert line["event"] == "replay.done"
    assert line["event_id"] == "e1" and line["latency_ms"] == 12.5
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_stdlib_records_come_out_in_the_same_format(out):
    """A stdlib record (as Celery emits) is rendered as JSON with its logger name and args."""
    configure_logging("info", stream=out)
    logging.getLogger("celery.worker.strategy").warning("Task %s received", "abc")

    [line] = _lines(out)
    assert line["logger"] == "celery.worker.strategy"
    assert line["level"] == "warning"
    assert line["event"] == "Task abc received"


def test_records_below_the_level_are_dropped(out):
    """At level warning, info events from structlog and stdlib are not written."""
    configure_logging("warning", stream=out)
    structlog.get_logger("a").info("quiet")
    logging.getLogger("b").info("quiet too")
    structlog.get_logger("a").warning("loud")

    assert [line["event"] for line in _lines(out)] == ["loud"]


@pytest.mark.parametrize(
    "key",
    [
        *("prompt", "messages", "content", "text", "response", "completion", "arguments"),
        *("system_prompt", "raw_response", "Content"),
    ],
)
@pytest.mark.parametrize("method", ["info", "warning", "error"])
def test_content_fields_are_redacted_at_info_and_above(out, key, method):
    """Prompt/response fields never reach the log at info level or above."""
    configure_logging("debug", stream=out)
    getattr(structlog.get_logger("tap"), method)("captured", **{key: PROMPT})

    [line] = _lines(out)
    assert line[key] == REDACTED
    assert PROMPT not in out.getvalue()


def test_content_fields_survive_in_debug_events(out):
    """With level debug, a debug event keeps its prompt (for local troubleshooting)."""
    configure_logging("debug", stream=out)
    structlog.get_logger("tap").debug("captured", prompt=PROMPT)

    [line] = _lines(out)
    assert line["prompt"] == PROMPT


@pytest.mark.parametrize(
    "key",
    [
        *("api_key", "authorization", "token", "secret", "password"),
        *("openai_api_key", "Authorization", "x-api-key", "client_secret", "db_password"),
    ],
)
def test_secret_fields_are_redacted_even_in_debug_events(out, key):
    """Secrets are redacted at every level, debug included."""
    configure_logging("debug", stream=out)
    structlog.get_logger("gateway").debug("upstream", **{key: "sk-live-0123456789"})

    [line] = _lines(out)
    assert line[key] == REDACTED
    assert "sk-live" not in out.getvalue()


def test_nested_content_and_secrets_are_redacted(out):
    """Redaction reaches into dicts and lists, keeping harmless siblings."""
    configure_logging("info", stream=out)
    structlog.get_logger("gateway").info(
        "request",
        request={
            "model": "gpt-5.5",
            "messages": [{"role": "user", "content": PROMPT}],
            "headers": {"Authorization": "Bearer sk-live-1"},
        },
        choices=[{"message": {"role": "assistant", "content": PROMPT}}],
    )

    [line] = _lines(out)
    assert line["request"]["model"] == "gpt-5.5"
    assert line["request"]["messages"] == REDACTED
    assert line["request"]["headers"]["Authorization"] == REDACTED
    assert line["choices"][0]["message"] == {"role": "assistant", "content": REDACTED}
    assert PROMPT not in out.getvalue() and "sk-live" not in out.getvalue()


def test_counts_named_after_content_are_not_redacted(out):
    """Token counts and lengths stay visible: only exact or _-suffixed names match."""
    configure_logging("info", stream=out)
    structlog.get_logger("workers").info(
        "usage", prompt_tokens=12, completion_tokens=30, content_length=512, tokens_per_minute=9
    )

    [line] = _lines(out)
    assert (line["prompt_tokens"], line["completion_tokens"]) == (12, 30)
    assert (line["content_length"], line["tokens_per_minute"]) == (512, 9)


def test_stdlib_extra_fields_are_redacted(out):
    """``extra=`` on a stdlib record is redacted like a structlog field."""
    configure_logging("info", stream=out)
    logging.getLogger("celery.app.trace").info(
        "done", extra={"prompt": PROMPT, "api_key": "sk-live-2", "task_id": "t1"}
    )

    [line] = _lines(out)
    assert line["prompt"] == REDACTED and line["api_key"] == REDACTED
    assert line["task_id"] == "t1"


def test_console_renderer_redacts_too(out):
    """The human-readable (json=False) output applies the same redaction."""
    configure_logging("info", json=False, stream=out)
    structlog.get_logger("cli").info("demo", prompt=PROMPT, token="sk-live-3")

    text = out.getvalue()
    assert "demo" in text and REDACTED in text
    assert PROMPT not in text and "sk-live" not in text


def test_reconfiguring_replaces_the_handler_instead_of_adding_one(out):
    """Calling configure_logging twice writes each record once, to the newest stream."""
    configure_logging("info", stream=io.StringIO())
    configure_logging("info", stream=out)
    logging.getLogger("x").warning("once")

    assert [line["event"] for line in _lines(out)] == ["once"]


def test_unknown_level_is_a_config_error_naming_the_variable():
    """A typo in the level fails loudly and names SHADOWCANARY_LOG_LEVEL."""
    with pytest.raises(ConfigError) as caught:
        configure_logging("verbose")
    assert "SHADOWCANARY_LOG_LEVEL" in (caught.value.hint or "")
