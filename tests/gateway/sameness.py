"""Compare answers through the gateway with answers straight from the upstream.

The simulator is deterministic (same prompt, same answer) but every call gets a fresh
id and timestamp; those, and only those, are masked before comparing.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PER_CALL_ID = re.compile(r"sim[0-9a-f]{16}")
_PER_CALL_KEYS = frozenset({"created", "created_at", "completed_at"})


def masked(value: Any) -> Any:
    """``value`` with per-call ids and timestamps replaced by placeholders."""
    if isinstance(value, dict):
        return {
            k: "<time>" if k in _PER_CALL_KEYS and v is not None else masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return _PER_CALL_ID.sub("<id>", value)
    return value


def same(through_gateway: Any, direct: Any) -> bool:
    left, right = masked(through_gateway), masked(direct)
    if left != right:
        print("through gateway:", json.dumps(left, sort_keys=True)[:3000])
        print("direct:         ", json.dumps(right, sort_keys=True)[:3000])
    return bool(left == right)
