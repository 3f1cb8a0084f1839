"""Fuzzing the event contract (hypothesis): validation and the worker's decode path.

Properties:
- any bytes, any JSON document, any mutation of a valid event: ``parse_event`` returns
  an event or raises ``InvalidEvent``/``PayloadTooLarge``, nothing else; what it
  accepts can always be encoded and stored (jsonb);
- any valid event survives the wire exactly: JSON text, the tap's zlib+orjson message
  decoded the way a Celery worker decodes it (kombu), and the store's JSON encoder.
"""

from __future__ import annotations

import copy
import math
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kombu import compression, serialization

from shadowcanary.errors import InvalidEvent, PayloadTooLarge
from shadowcanary.events import CapturedCall, parse_event
from shadowcanary.store.db import json_for_postgres
from shadowcanary.tap import publisher
from tests.corpus.hostile_events import good_event

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9_.:/@+\-éß京]{1,40}", fullmatch=True)
# Any Unicode text a caller can send (st.text excludes lone surrogates: no UTF-8 for them).
texts = st.text(max_size=200)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=25,
)
tool_calls = st.fixed_dictionaries(
    {"id": st.text(max_size=20), "name": st.text(min_size=1, max_size=30), "arguments": texts}
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.dictionaries(texts, json_values, max_size=2)}
    ),
)
messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
        "content": st.one_of(st.none(), texts, st.lists(parts, max_size=3)),
    },
    optional={"name": texts, "tool_calls": st.lists(tool_calls, max_size=2)},
)


@st.composite
def valid_events(draw: st.DrawFn) -> CapturedCall:
    """A valid event with arbitrary text, names, tools and parameters."""
    data = good_event()
    latency = draw(st.floats(min_value=0, max_value=3_600_000))
    data.update(
        route=draw(names),
        tenant=draw(names),
        rollout=draw(st.none() | names),
        model=draw(names),
        latency_ms=latency,
        ttft_ms=draw(st.none() | st.floats(min_value=0, max_value=latency)),
        prompt_tokens=draw(st.none() | st.integers(0, 1_000_000_000)),
    )
    data["request"] = {
        "messages": draw(st.lists(messages, min_size=1, max_size=4)),
        "tools": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(min_size=1, max_size=30)},
                    optional={
                        "description": texts,
                        "parameters": st.dictionaries(texts, json_values, max_size=3),
                    },
                ),
                max_size=2,
            )
        ),
        "parameters": draw(st.dictionaries(texts, json_values, max_size=4)),
    }
    data["response"] = {
        "text": draw(st.none() | texts),
        "tool_calls": draw(st.lists(tool_calls, max_size=2)),
        "finish_reason": draw(st.sampled_from([None, "stop", "length", "tool_calls"])),
    }
    return CapturedCall.model_validate(data)


# Hostile values: what JSON decoders let through that our own encoders would not emit.
hostile_scalars = st.one_of(
    json_scalars,
    st.floats(),  # NaN, +-Infinity
    st.integers(min_value=-(2**200), max_value=2**200),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Lo"]), max_size=20),
    st.sampled_from(["", "\x00", "ok", "baseline", "candidate", "1e999", "-0", "null"]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=12) | st.sampled_from(list(CapturedCall.model_fields)),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of a JSON document (for mutations)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


# -- checks ----------------------------------------------------------------------------


def _parse_or_reject(raw: Any) -> CapturedCall | None:
    """parse_event's only outcomes: an event, or one of the two documented errors."""
    try:
        return parse_event(raw, max_bytes=200_000)
    except (InvalidEvent, PayloadTooLarge) as exc:
        message = str(exc)
        assert message and len(message) < 4_000, message[:300]
        return None


def _storable(event: CapturedCall) -> None:
    """What was accepted can be written: orjson (tap, worker) and jsonb (store)."""
    document = event.model_dump(mode="json")
    orjson.dumps(document)
    stored = orjson.loads(json_for_postgres(document))
    assert "\\u0000" not in json_for_postgres(document)
    assert stored["event_id"] == event.event_id


def _worker_decode(message_body: bytes) -> list[dict[str, Any]]:
    """How a Celery worker turns the tap's message body back into event dicts (kombu)."""
    header = publisher._ZLIB_CONTENT_TYPE
    body = compression.decompress(message_body, header)  # type: ignore[no-untyped-call]
    args, _kwargs, _embed = serialization.loads(body, "application/json", "utf-8")  # type: ignore[no-untyped-call]
    events: list[dict[str, Any]] = args[0]
    return events


# -- properties ------------------------------------------------------------------------


@FUZZ
@given(valid_events())
def test_valid_events_round_trip_through_every_wire_form(event: CapturedCall) -> None:
    """JSON text, dict, and the tap's compressed message as the worker decodes it: same event."""
    text = event.model_dump_json()
    assert parse_event(text) == event
    assert parse_event(text.encode()) == event
    assert parse_event(event.model_dump(mode="json")) == event
    # Celery protocol 2 body: [args, kwargs, embed]; args = [list of events].
    body = publisher._encode([[[orjson.Fragment(text.encode())]], {}, {}])
    assert zlib.decompress(body)  # really compressed, as the header says
    (decoded,) = _worker_decode(body)
    assert parse_event(decoded) == event
    _storable(event)


@FUZZ
@given(st.binary(max_size=2_000))
def test_any_bytes_are_an_event_or_a_documented_error(raw: bytes) -> None:
    """Arbitrary bytes (invalid UTF-8, NUL, truncated JSON) never raise anything else."""
    _parse_or_reject(raw)


@FUZZ
@given(hostile_values)
def test_any_json_document_is_an_event_or_a_documented_error(document: Any) -> None:
    """Arbitrary decoded JSON (NaN, huge ints, lone surrogates, wrong shapes) at the top level."""
    raw = document if isinstance(document, dict) else {"event_id": "x" * 8, "model": document}
    event = _parse_or_reject(raw)
    if event is not None:
        _storable(event)


@FUZZ
@given(st.data())
def test_any_mutation_of_a_valid_event_is_accepted_storably_or_rejected(
    data: st.DataObject,
) -> None:
    """One field anywhere in a valid event replaced by a hostile value (or deleted)."""
    event = good_event()
    path = data.draw(st.sampled_from(_paths(event)), label="path")
    mutated = copy.deepcopy(event)
    parent: Any = mutated
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(hostile_values, label="value")
    accepted = _parse_or_reject(mutated)
    if accepted is not None:
        _storable(accepted)
        # Whatever was accepted says what it was sent: no silent coercion of text to numbers.
        assert accepted.event_id == mutated["event_id"]


@FUZZ
@given(
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
)
def test_numbers_out_of_range_name_the_field(value: float) -> None:
    """latency_ms and token counts outside their range are rejected naming the field."""
    assume(not (math.isfinite(value) and 0 <= value <= 3_600_000))
    event = good_event() | {"latency_ms": value, "ttft_ms": None}
    with pytest.raises(InvalidEvent, match="latency_ms"):
        parse_event(event)
    if isinstance(value, int) and not 0 <= value <= 1_000_000_000:
        with pytest.raises(InvalidEvent, match="prompt_tokens"):
            parse_event(good_event() | {"prompt_tokens": value})
