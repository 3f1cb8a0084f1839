"""Parsing a request body: fast with orjson, lenient (as before) with the stdlib.

A body the simulator cannot read is a 400 that says why; nothing a client sends may
turn into a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from shadowcanary.sim.reject import Reject
from shadowcanary.sim.state import NO_MODEL


def parse_json_body(raw: bytes, *, model: str = NO_MODEL) -> Any:
    """The request body parsed, or a 400 ``Reject`` (counted under ``model``) saying why."""
    try:
        return orjson.loads(raw)
    except ValueError:
        pass
    # orjson is stricter than the stdlib (lone surrogate escapes, NaN, UTF-16): the
    # simulator accepted those before, and still does, on this rare slow path.
    try:
        return _without_lone_surrogates(json.loads(raw))
    except RecursionError:
        raise Reject(
            400,
            "The JSON body of your request is nested too deeply to parse; "
            "send a flatter JSON object.",
            model=model,
        ) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise Reject(
            400,
            f"We could not parse the JSON body of your request ({exc}). Send a JSON object.",
            model=model,
        ) from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(parsed: Any) -> Any:
    """``parsed`` with each lone surrogate (``"\\ud800"`` in JSON) replaced by U+FFFD.

    The stdlib decodes such an escape into a str that cannot be encoded as UTF-8, which
    would break hashing the prompt and writing the answer; it is data, so it becomes
    the replacement character as any UTF-8 decoder would make of it. Paired escapes are
    already one code point here. Iterative: the parse may be as deep as the stack allows.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, str) and _LONE_SURROGATE.search(value):
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value

    parsed = clean(parsed)
    pending: list[Any] = [parsed]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            for index, item in enumerate(node):
                node[index] = clean(item)
                pending.append(node[index])
        elif isinstance(node, dict):
            for key in [k for k in node if _LONE_SURROGATE.search(k)]:
                node[clean(key)] = node.pop(key)
            for key, item in node.items():
                node[key] = clean(item)
                pending.append(node[key])
    return parsed
