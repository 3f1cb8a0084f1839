"""The simulator's body parser: lenient JSON is cleaned into data that can be encoded."""

from __future__ import annotations

import json

import pytest

from shadowcanary.sim.json_body import parse_json_body
from shadowcanary.sim.reject import Reject


def test_lone_surrogates_anywhere_become_u_fffd_and_pairs_stay_one_character() -> None:
    raw = b'{"a\\udc00": ["x\\ud800", {"k": [["\\udfff"]]}], "pair": "\\ud83d\\ude00", "n": NaN}'
    body = parse_json_body(raw)
    assert body["a\ufffd"] == ["x\ufffd", {"k": [["\ufffd"]]}]
    assert body["pair"] == "\U0001f600"
    assert body["n"] != body["n"]  # NaN is still accepted, as before
    # Everything in it can now be written out as UTF-8.
    assert json.dumps(body, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"{not json", "could not parse"),
        (b"\xff\xfe{", "could not parse"),
    ],
)
def test_unreadable_bodies_are_a_400_that_says_why(raw: bytes, fragment: str) -> None:
    with pytest.raises(Reject) as raised:
        parse_json_body(raw)
    assert raised.value.status == 400
    assert fragment in raised.value.body["error"]["message"]
