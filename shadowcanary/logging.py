"""Structured logs for every shadowcanary process: one JSON object per line, on stderr.

Both structlog loggers and stdlib ``logging`` records (Celery, kombu, httpx, uvicorn,
SQLAlchemy, ...) go through the same chain and come out in one format::

    {"timestamp": "2026-01-05T10:00:00.123456Z", "level": "info",
     "logger": "workers.replay", "event": "replay.done", "event_id": "..."}

Prompts and model answers must never reach a log aggregator by accident, so a
redaction processor runs on every record: content fields (``prompt``, ``messages``,
``response``, ...) are replaced by ``"[redacted]"`` in any event at info level and
above, at any depth; they survive only in debug-level events. Secret fields
(``api_key``, ``authorization``, ``token``, ...) are redacted always, debug included.
A key matches exactly or as a ``_``-suffix (``system_prompt``, ``openai_api_key``),
so counts like ``prompt_tokens`` stay visible.

Celery replaces the root logger's handlers unless told not to: the worker app sets
``worker_hijack_root_logger=False`` and calls ``configure_logging`` itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shadowcanary.errors import ConfigError

REDACTED = "[redacted]"
CONTENT_KEYS = frozenset(
    {"prompt", "messages", "content", "text", "response", "completion", "arguments"}
)
SECRET_KEYS = frozenset({"api_key", "authorization", "token", "secret", "password"})
LEVELS = ("debug", "info", "warning", "error", "critical")
_LEADING_FIELDS = ("timestamp", "level", "logger", "event")

# Third-party loggers whose INFO lines are noise for an operator (pgserver logs every
# command line it runs).
_QUIET_LOGGERS = {
    "pgserver": logging.WARNING,
    # One line per HTTP request to the model API: metrics carry this, logs need not.
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,
    "openai": logging.WARNING,
}


# Loggers are cached on first use in production (cheaper calls). A test process
# reconfigures logging many times and relies on structlog.testing.capture_logs, which a
# cached logger ignores, so tests/conftest.py turns caching off.
CACHE_LOGGERS = True


class _ShadowcanaryHandler(logging.StreamHandler[TextIO]):
    """Marks the handler we install, so reconfiguring replaces it instead of adding one."""


def configure_logging(
    level: str = "info", *, json: bool = True, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging through one redacting chain to ``stream``.

    Args:
        level: minimum level, one of debug/info/warning/error/critical.
        json: one JSON object per line (production); False gives coloured console lines.
        stream: where lines go; stderr by default so stdout stays free for CLI output.

    Raises:
        ConfigError: ``level`` is not a known level name.
    """
    name = level.lower()
    if name not in LEVELS:
        raise ConfigError(
            f"unknown log level {level!r}",
            hint=f"set SHADOWCANARY_LOG_LEVEL to one of {', '.join(LEVELS)}",
        )

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            redact_sensitive,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Everything that can change between calls lives in the handler below, so
        # loggers cached on first use stay correct after a reconfiguration.
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if json
        else structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from stdlib loggers (Celery, httpx, ...) get the same fields and redaction;
        # ExtraAdder first so that ``extra={"prompt": ...}`` is redacted too.
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared, redact_sensitive],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _leading_fields_first,
            renderer,
        ],
    )
    handler = _ShadowcanaryHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ShadowcanaryHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name.upper())
    for logger_name, quiet_level in _QUIET_LOGGERS.items():
        logging.getLogger(logger_name).setLevel(max(quiet_level, root.level))


def configure_command_logging(level: str, log_format: str | None, *, verbose: bool) -> None:
    """Logging for a CLI command, whose own output is for a person.

    Only warnings and errors, in human form, so log lines do not drown the command's
    output (migrations, webhook sends). ``verbose`` shows ``level`` and above, still in
    human form; ``log_format="json"`` keeps the JSON lines a log shipper reads.
    """
    if log_format == "json":
        configure_logging(level)
        return
    floor = level if verbose else _higher(level, "warning")
    configure_logging(floor, json=False)


def _higher(level: str, floor: str) -> str:
    return max(level.lower(), floor, key=LEVELS.index) if level.lower() in LEVELS else level


def redact_sensitive(_logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace content fields above debug and secret fields always."""
    keep_content = str(event_dict.get("level", method_name)).lower() == "debug"
    for key in list(event_dict):
        if key != "event":
            event_dict[key] = _scrub(key, event_dict[key], keep_content)
    return event_dict


def _leading_fields_first(
    _logger: WrappedLogger, _method_name: str, event_dict: EventDict
) -> EventDict:
    """Put timestamp, level, logger and event first so raw lines read left to right."""
    head = {k: event_dict.pop(k) for k in _LEADING_FIELDS if k in event_dict}
    return {**head, **event_dict}


def _scrub(key: str, value: Any, keep_content: bool) -> Any:
    if _matches(key, SECRET_KEYS) or (not keep_content and _matches(key, CONTENT_KEYS)):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _scrub(str(k), v, keep_content) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub("", item, keep_content) for item in value]
    return value


def _matches(key: str, names: frozenset[str]) -> bool:
    normalised = key.lower().replace("-", "_")
    return normalised in names or any(normalised.endswith(f"_{name}") for name in names)


def _is_tty(stream: TextIO | None) -> bool:
    target = stream if stream is not None else sys.stderr
    return bool(getattr(target, "isatty", lambda: False)())
