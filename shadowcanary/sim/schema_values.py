"""Deterministic JSON values that satisfy a JSON schema (and ones that break it).

Used for tool-call arguments and ``response_format: json_schema`` answers. Each leaf
of the generated value draws from its own seed, given by ``seed_for(path)``, so a
diverging model can re-seed only some leaves and stay valid against the schema.

Supported: type (single or list), const, enum, anyOf/oneOf (first usable branch),
allOf (shallow merge), local ``$ref`` (``#/$defs/...``, ``#/definitions/...``),
string formats date-time/date/time/email/uri/uuid, min/max length, numeric bounds
(inclusive and exclusive) and multipleOf, array items/prefixItems/min/maxItems,
object properties/required. ``pattern`` is not honoured (values are plain words).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from typing import Any

from shadowcanary.sim.vocabulary import WORDS

SeedFor = Callable[[str], int]
JsonDict = dict[str, Any]

_MAX_DEPTH = 8
_TYPE_BY_KEYWORD = (
    ("properties", "object"),
    ("required", "object"),
    ("items", "array"),
    ("prefixItems", "array"),
    ("minimum", "number"),
    ("maximum", "number"),
)


def value_for_schema(schema: Any, seed_for: SeedFor) -> Any:
    """A value valid against ``schema`` whose leaf at path ``p`` draws from ``seed_for(p)``."""
    root = schema if isinstance(schema, dict) else {}
    return _value(schema, root, seed_for, "$", 0)


def _value(schema: Any, root: JsonDict, seed_for: SeedFor, path: str, depth: int) -> Any:
    if schema is True or not isinstance(schema, dict):
        return _words(random.Random(seed_for(path)), 1, 4)
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return random.Random(seed_for(path)).choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            usable = [b for b in branches if not _is_null_only(b, root)] or branches
            return _value(usable[0], root, seed_for, path, depth + 1)
    if isinstance(schema.get("allOf"), list):
        return _value(_merge_all_of(schema, root), root, seed_for, path, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, seed_for, path, depth)
    if kind == "array":
        return _array(schema, root, seed_for, path, depth)
    rng = random.Random(seed_for(path))
    if kind == "integer":
        return _integer(schema, rng)
    if kind == "number":
        return _number(schema, rng)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _resolve(schema: JsonDict, root: JsonDict) -> JsonDict:
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
        target: Any = root
        for part in schema["$ref"].lstrip("#").strip("/").split("/"):
            if not part:
                continue
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return {}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest}
        seen += 1
    return schema


def _is_null_only(branch: Any, root: JsonDict) -> bool:
    return isinstance(branch, dict) and _resolve(branch, root).get("type") == "null"


def _merge_all_of(schema: JsonDict, root: JsonDict) -> JsonDict:
    merged: JsonDict = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        part = _resolve(part, root)
        for key, val in part.items():
            if key == "properties" and isinstance(val, dict):
                merged["properties"] = {**merged.get("properties", {}), **val}
            elif key == "required" and isinstance(val, list):
                merged["required"] = sorted({*merged.get("required", []), *val})
            else:
                merged.setdefault(key, val)
    return merged


def _type_of(schema: JsonDict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        return str(non_null[0]) if non_null else "null"
    if isinstance(kind, str):
        return kind
    for keyword, inferred in _TYPE_BY_KEYWORD:
        if keyword in schema:
            return inferred
    return "string"


def _object(schema: JsonDict, root: JsonDict, seed_for: SeedFor, path: str, depth: int) -> Any:
    props = schema.get("properties")
    if not isinstance(props, dict) or depth >= _MAX_DEPTH:
        return {}
    required = set(schema.get("required") or [])
    rng = random.Random(seed_for(path))
    out: JsonDict = {}
    for name, sub in props.items():
        # Optional properties appear in about two thirds of answers, like a real model.
        if name in required or rng.random() < 0.67:
            out[name] = _value(sub, root, seed_for, f"{path}.{name}", depth + 1)
    return out


def _array(schema: JsonDict, root: JsonDict, seed_for: SeedFor, path: str, depth: int) -> Any:
    if depth >= _MAX_DEPTH:
        return []
    rng = random.Random(seed_for(path))
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", max(low, 3)))
    count = max(low, min(high, rng.randint(1, 3)))
    raw_prefix = schema.get("prefixItems")
    prefix: list[Any] = raw_prefix if isinstance(raw_prefix, list) else []
    items = schema.get("items", True)
    out = []
    for i in range(count):
        sub = prefix[i] if i < len(prefix) else items
        if sub is False:
            break
        out.append(_value(sub, root, seed_for, f"{path}[{i}]", depth + 1))
    return out


def _range(schema: JsonDict) -> tuple[float, float, bool, bool]:
    """``(low, high, low_exclusive, high_exclusive)`` with a finite default span."""
    low, high = -math.inf, math.inf
    low_excl = high_excl = False
    if _is_number(schema.get("minimum")):
        low, low_excl = float(schema["minimum"]), schema.get("exclusiveMinimum") is True
    if _is_number(schema.get("exclusiveMinimum")) and schema["exclusiveMinimum"] >= low:
        low, low_excl = float(schema["exclusiveMinimum"]), True
    if _is_number(schema.get("maximum")):
        high, high_excl = float(schema["maximum"]), schema.get("exclusiveMaximum") is True
    if _is_number(schema.get("exclusiveMaximum")) and schema["exclusiveMaximum"] <= high:
        high, high_excl = float(schema["exclusiveMaximum"]), True
    if math.isinf(low) and math.isinf(high):
        low, high = 0.0, 100.0
    elif math.isinf(low):
        low = high - 100.0
    elif math.isinf(high):
        high = low + 100.0
    return low, high, low_excl, high_excl


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _integer(schema: JsonDict, rng: random.Random) -> int:
    low, high, low_excl, high_excl = _range(schema)
    lo = math.floor(low) + 1 if low_excl else math.ceil(low)
    hi = math.ceil(high) - 1 if high_excl else math.floor(high)
    multiple = _number_or_none(schema.get("multipleOf"))
    step = int(multiple) if multiple is not None and multiple.is_integer() and multiple >= 1 else 1
    first = -(-lo // step) * step
    if first > hi:
        return first
    return first + step * rng.randint(0, (hi - first) // step)


def _number(schema: JsonDict, rng: random.Random) -> float | int:
    low, high, low_excl, high_excl = _range(schema)
    step = _number_or_none(schema.get("multipleOf"))
    if step is not None and step > 0:
        k_lo = math.floor(low / step) + 1 if low_excl else math.ceil(low / step)
        k_hi = math.ceil(high / step) - 1 if high_excl else math.floor(high / step)
        value = (k_lo if k_hi < k_lo else rng.randint(k_lo, k_hi)) * step
        return int(value) if float(value).is_integer() else value
    value = low + (high - low) * rng.uniform(0.05, 0.95)
    rounded = round(value, 3)
    # Keep the short, model-like rounding unless it lands on an excluded bound.
    if (
        (low < rounded < high)
        or (rounded == low and not low_excl)
        or (rounded == high and not high_excl)
    ):
        return rounded
    return value


def _string(schema: JsonDict, rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    if fmt == "date":
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "time":
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    if fmt == "email":
        return f"{rng.choice(WORDS)}@example.com"
    if fmt in ("uri", "url"):
        return f"https://example.com/{rng.choice(WORDS)}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    min_len = int(schema.get("minLength", 0))
    max_len = int(schema.get("maxLength", 10_000))
    text = _words(rng, 1, 5)
    while len(text) < min_len:
        text = f"{text} {rng.choice(WORDS)}"
    return text[:max_len]


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def break_schema(value: Any, schema: Any) -> Any:
    """A deterministic variant of ``value`` that no longer validates against ``schema``."""
    if not isinstance(schema, dict) or _type_of(schema) != "object":
        return {"unexpected": True} if not isinstance(value, dict) else [value]
    raw_props = schema.get("properties")
    props: JsonDict = raw_props if isinstance(raw_props, dict) else {}
    required = [r for r in schema.get("required") or [] if r in props]
    broken = dict(value) if isinstance(value, dict) else {}
    if required:
        broken.pop(sorted(required)[0], None)
        return broken
    for name in sorted(props):
        sub = props[name]
        if isinstance(sub, dict) and "type" in sub:
            broken[name] = (
                12345 if _type_of(sub) in ("string", "boolean", "array", "object") else "x"
            )
            return broken
    # Nothing typed to break: an array where an object is expected always fails.
    return [broken]
