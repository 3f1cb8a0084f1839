"""The live path inside services: capture model calls without ever hurting them.

``Tap`` buffers and publishes captured calls (fail open, bounded, batched);
``tap_openai`` captures every chat completion of an OpenAI client (``last_event_id()``
is the last captured call's id, for ``Tap.outcome``); ``Redactor`` and
``Sampler`` are what the tap applies before anything leaves the process.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shadowcanary.tap.emitter import DropReason, Tap, TapStats
    from shadowcanary.tap.event_ids import last_event_id
    from shadowcanary.tap.openai_wrapper import tap_openai
    from shadowcanary.tap.redaction import Redactor
    from shadowcanary.tap.sampling import Sampler

# Imported on first use (PEP 562): ``shadowcanary.tap.redaction`` alone (the CLI's
# audit, the report) must not pull in the OpenAI client's types and Celery.
_EXPORTS = {
    "DropReason": "shadowcanary.tap.emitter",
    "Tap": "shadowcanary.tap.emitter",
    "TapStats": "shadowcanary.tap.emitter",
    "tap_openai": "shadowcanary.tap.openai_wrapper",
    "last_event_id": "shadowcanary.tap.event_ids",
    "Redactor": "shadowcanary.tap.redaction",
    "Sampler": "shadowcanary.tap.sampling",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # looked up once
    return value


__all__ = ["DropReason", "Redactor", "Sampler", "Tap", "TapStats", "last_event_id", "tap_openai"]
