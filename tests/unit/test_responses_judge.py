"""The scorers on Responses captures: text.format, function calls, reasoning tokens."""

from __future__ import annotations

import pytest

from shadowcanary.events import ToolCall
from shadowcanary.judge import compare
from shadowcanary.judge.types import CallOutput
from shadowcanary.tap.responses_capture import responses_request

SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok", "late"]}},
    "required": ["status"],
}
STRICT = {"type": "json_schema", "name": "status", "schema": SCHEMA, "strict": True}


@pytest.mark.parametrize(
    ("fmt", "text", "invalid"),
    [
        (STRICT, '{"status": "ok"}', False),
        (STRICT, '{"status": "lost"}', True),
        (STRICT, "not json", True),
        ({"type": "json_object"}, '{"a": 1}', False),
        ({"type": "json_object"}, "plain words", True),
        ({"type": "text"}, "plain words", False),
    ],
)
def test_text_format_of_a_responses_call_is_checked_like_response_format(
    fmt: dict[str, object], text: str, invalid: bool
) -> None:
    """A Responses call's text.format (schema inline) flags JSON that breaks it."""
    request = responses_request({"input": "Status?", "text": {"format": fmt}})
    good = CallOutput(model="a", text='{"status": "ok"}')
    result = compare(good, CallOutput(model="b", text=text), request)
    assert result.other_flags.json_invalid is invalid
    assert result.reference_flags.json_invalid is False


def test_function_calls_and_reasoning_tokens_are_compared() -> None:
    """Function tools offered in the Responses body check the call's arguments; a
    reasoning-token difference is named in the notes."""
    tool = {"type": "function", "name": "lookup", "parameters": SCHEMA}
    request = responses_request({"input": "Order?", "tools": [tool]})
    call = ToolCall(id="c1", name="lookup", arguments='{"status": "ok"}')
    bad = ToolCall(id="c2", name="lookup", arguments='{"status": 3}')
    reference = CallOutput(model="a", text=None, tool_calls=(call,), reasoning_tokens=64)
    other = CallOutput(model="b", text=None, tool_calls=(bad,), reasoning_tokens=192)
    result = compare(reference, other, request)
    assert result.tool_name_agreement is True and result.tool_args_agreement is False
    assert result.other_flags.tool_schema_invalid and not result.reference_flags.tool_schema_invalid
    assert "reasoning tokens 64 -> 192 (+128, billed as output)" in result.notes
