"""Decoding a raw chat completion body (the SDK's low-level post path)."""

from __future__ import annotations

import orjson
import pytest

from shadowcanary.errors import TransientError, UpstreamUnavailable
from shadowcanary.replay.openai_call import _json_object
from shadowcanary.tap.capture import response_from_completion, usage_of

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "é"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}


def test_a_completion_body_decodes_to_its_answer_tool_calls_and_usage() -> None:
    """Text, tool calls (recorded, not run), finish reason and usage come out of raw bytes."""
    completion = _json_object(orjson.dumps(COMPLETION), model="m")
    response, usage = response_from_completion(completion), usage_of(completion)
    assert response.text is None and response.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_1", "lookup", '{"q": "é"}')
    ]
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 7)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"error": {"message": "upstream overloaded"}}', "without choices"),
        (b'{"choices": []}', "without choices"),
    ],
)
def test_a_200_that_is_no_completion_is_a_transient_error_naming_the_model(
    body: bytes, fragment: str
) -> None:
    """A proxy's error page or error document is retried, with a message saying what came."""
    with pytest.raises(UpstreamUnavailable, match=fragment) as caught:
        _json_object(body, model="gpt-5.5")
    assert isinstance(caught.value, TransientError)
    assert caught.value.message.startswith("gpt-5.5:")
    assert caught.value.hint and "base_url" in caught.value.hint


def test_a_200_that_is_no_response_object_is_a_transient_error() -> None:
    """A Responses replay answered with a document without ``output`` is retried."""
    with pytest.raises(UpstreamUnavailable, match="without output"):
        _json_object(b'{"error": {"message": "busy"}}', model="gpt-5.5", answer_key="output")
    decoded = _json_object(b'{"output": [], "status": "completed"}', model="m", answer_key="output")
    assert decoded["status"] == "completed"
