"""Flag backends behind one protocol, and the model router of the request path.

- ``flags.base``: ``FlagBackend`` / ``FlagEvaluator`` protocols, ``FlagSpec``, ``FlagState``
- ``flags.unleash``: ``UnleashFlags`` (Admin API; Unleash is the system of record)
- ``flags.embedded``: ``EmbeddedFlags`` (the same feature JSON in Postgres)
- ``flags.router``: ``ModelRouter`` and the evaluators ``EmbeddedEvaluator``,
  ``StaticEvaluator`` (and ``UnleashClientEvaluator``, from ``flags.unleash_sdk``)

Names are imported on first use, so ``import flags`` (or ``flags.base``) stays cheap
for code that never evaluates a flag.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flags.base import FlagBackend, FlagEvaluator, FlagSpec, FlagState, Stickiness

if TYPE_CHECKING:
    from flags.embedded import EmbeddedFlags
    from flags.router import (
        EmbeddedEvaluator,
        ModelRouter,
        StaticEvaluator,
    )
    from flags.unleash import UnleashFlags
    from flags.unleash_sdk import UnleashClientEvaluator

_LAZY = {
    "EmbeddedFlags": "flags.embedded",
    "UnleashFlags": "flags.unleash",
    "ModelRouter": "flags.router",
    "EmbeddedEvaluator": "flags.router",
    "StaticEvaluator": "flags.router",
    "UnleashClientEvaluator": "flags.unleash_sdk",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flags' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "EmbeddedEvaluator",
    "EmbeddedFlags",
    "FlagBackend",
    "FlagEvaluator",
    "FlagSpec",
    "FlagState",
    "ModelRouter",
    "StaticEvaluator",
    "Stickiness",
    "UnleashClientEvaluator",
    "UnleashFlags",
]
