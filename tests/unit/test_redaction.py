"""Redaction: what is replaced, what is left alone, and every field of an event is covered."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import orjson
import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.events import (
    CapturedCall,
    ChatMessage,
    ContentPart,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    now_utc,
)
from shadowcanary.tap.redaction import Redactor, luhn_valid


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # emails
        ("mail jane.doe+tag@example.co.uk now", "mail [EMAIL] now"),
        ("<a.b@c-d.io>", "<[EMAIL]>"),
        ("two: x@y.com, z_9@sub.example.org.", "two: [EMAIL], [EMAIL]."),
        # phones: international and US formats
        ("call +44 20 7946 0958 today", "call [PHONE] today"),
        ("call +14155550100", "call [PHONE]"),
        ("(415) 555-0100", "[PHONE]"),
        ("415-555-0100 or 415.555.0100 or 415 555 0100", "[PHONE] or [PHONE] or [PHONE]"),
        ("1-800-555-0100", "[PHONE]"),
        ("+33 (0)1 23 45 67 89", "[PHONE]"),
        # payment cards, Luhn-valid, any grouping
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("4111-1111-1111-1111", "[CARD]"),
        ("5500005555555559", "[CARD]"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("ref 12345 4111 1111 1111 1111", "ref 12345 [CARD]"),
        ("ref 12345 4111111111111111 and 12 4155550100", "ref 12345 [CARD] and 12 [PHONE]"),
        # keys and secrets
        ("key sk-proj-Abcdefghijklmnop0123456789", "key [SECRET]"),
        ("sk-ant-api03-abcdefghijklmnopqrstu", "[SECRET]"),
        ("aws AKIAIOSFODNN7EXAMPLE.", "aws [SECRET]."),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[SECRET]"),
        ("xoxb-1234567890-abcdefghij", "[SECRET]"),
        ("stripe sk_live_abcdefghijklmnop1234", "stripe [SECRET]"),
        ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [SECRET]"),
        ("api_key=abc123", "api_key=[SECRET]"),
        ("API-KEY: zzz", "API-KEY: [SECRET]"),
        ('password: "hunter 2"', 'password: "[SECRET]"'),
        ('{"password": "pw", "token":"t0k"}', '{"password": "[SECRET]", "token":"[SECRET]"}'),
        ("client_secret='s3cr3t'", "client_secret='[SECRET]'"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "[SECRET]",
        ),
        # phones without separators, with extensions, and national formats
        ("call 4155550100 now", "call [PHONE] now"),
        ("ext: 555-123-4567x1234.", "ext: [PHONE]."),
        ("UK 07700 900123, (0161) 496 0123", "UK [PHONE], [PHONE]"),
        ("FR 06.12.34.56.78 ou 0612345678", "FR [PHONE] ou [PHONE]"),
        ("DE 030/1234567 or +49 (0)151 23456789", "DE [PHONE] or [PHONE]"),
        ("0044 20 7946 0958", "[PHONE]"),
        # US social security numbers
        ("SSN 123-45-6789, alt 123 45 6789", "SSN [SSN], alt [SSN]"),
        ("my social security number is 123456789", "my social security number is [SSN]"),
        # more vendors and headers
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [SECRET]",
        ),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [SECRET]"),
        ("echo sk-proj-abcdefghijklmnopqrstuvwxyz", "echo [SECRET]"),  # no digit, known kind
        (
            "glpat-abcdefghij0123456789 and hf_abcdefghijklmnopqrstuvwxyz012345",
            "[SECRET] and [SECRET]",
        ),
        # phones written as people of other countries write them (issue 17)
        ("Tel: 21 2195-5308", "Tel: [PHONE]"),
        ("ligue 21 2195-5308 hoje", "ligue [PHONE] hoje"),
        ("zadzwoń 573 911 171", "zadzwoń [PHONE]"),
        ("32 115 14 61 (biuro)", "[PHONE] (biuro)"),
        ("電話 080-9141-7776", "電話 [PHONE]"),
        ("chiamami al 3420837783.", "chiamami al [PHONE]."),
        ("numero 3420837783", "numero [PHONE]"),
        # cards of every network's range and length
        ("maestro 675950718667", "maestro [CARD]"),
        ("jcb 213124103659802 and 3596365765779724", "jcb [CARD] and [CARD]"),
        ("diners 38409531003431", "diners [CARD]"),
        ("paid (4111 1111 1111 1111) today", "paid ([CARD]) today"),
        # bank accounts and IP addresses (personal data under GDPR)
        ("IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX", "IBAN [IBAN], BIC COBADEFFXXX"),
        ("to GB82WEST12345698765432.", "to [IBAN]."),
        ("from 203.0.113.7:443 and 10.1.2.3/24", "from [IP]:443 and [IP]/24"),
        ("client 2001:db8:85a3::8a2e:370:7334 said", "client [IP] said"),
        ("ssh deploy@fe80::1ff:fe23:4567:890a", "ssh deploy@[IP]"),
        # national identity numbers with a check digit (python-stdnum)
        ("DNI 18034063Q, NIE X9549656X.", "DNI [NATIONAL_ID], NIE [NATIONAL_ID]."),
        ("codice fiscale BCCFRC15M25E852P", "codice fiscale [NATIONAL_ID]"),
        ("CPF 187.244.670-14 ok", "CPF [NATIONAL_ID] ok"),
        ("NIR 172023201312126 et 263122B03375413", "NIR [NATIONAL_ID] et [NATIONAL_ID]"),
    ],
)
def test_redacts(redactor: Redactor, text: str, expected: str) -> None:
    """Each kind of PII or secret is replaced by its typed placeholder, the rest kept."""
    assert redactor.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 shipped",  # 13 digits, not Luhn-valid
        "order number 4111111111111112",  # 16 digits, Luhn fails
        "on 2024-01-15 at 10:30 we sold 1,234 units for $5,000.00",
        "version 1.2.3 build 20240115",
        "id 550e8400-e29b-41d4-a716-446655440000",
        "max_tokens=100, tokens: 500, keyboard: yes",
        "the key point is speed",
        "answer = 42; 3 + 4 = 7",
        "user@localhost has no domain",
        "a very-long-hyphenated-identifier-without-secrets",
        "",
        "order #4155550100 and invoice no. 4155550100",  # ids after '#' or "order"
        "on 09/09/2025 10:41 and 15.03.2024 14:00",  # dates then hours
        "ts=1700000000123 epoch 1700000000",  # epoch ms and s: no card prefix, no phone
        "ISBN 978-3-16-148410-0, listen on 127.0.0.1:8080 and 0.0.0.0, ::1",
        "use sk-learn-compatible-estimators",  # "sk-" without a digit
        "ORD-0012345678 and v2/20240115",
        "USPS tracking 9400 1000 0000 0000 0000 00",
        "we shipped 123456789 units",  # nine bare digits without an SSN word
        "pi is 3.22618800994371",  # decimals that pass Luhn after the point
        "scores: 38 0 0 65 14 44 26 40 26 70 24",  # not a "00" dialling prefix
        # issue 17's hard negatives: numbers that are not PII under the looser rules
        "EAN 4006381333931 and IMEI 490154203237518",  # barcodes pass Luhn
        "from 2019-2024, pages 1234-1256",  # years and ranges are not phones
        "Rua das Flores 60688-648",  # a Brazilian postcode
        "we sold 12 345 678 units for 12 345 678,90 €",  # counts and amounts
        "the number of rows is 123456789",  # "number" without "my"
        "running version 1.2.3.4 on 10:41:00, mac 00:1a:2b:3c:4d:5e",
        "std::vector<int> v; a[1::2]; TIME 12:30:45",
        "build 10.0.19045.3693, shipment 3048 3010 7223 2200 3721",
        "0314 6922 7728 2085 4962 is on its way",  # a code printed in blocks
        "BIC DEUTDEFF500 and ISO ABCD12345678901234",  # no IBAN country, mod 97 fails
        "ref 18034063A and BCCFRC15M25E852X",  # DNI and codice fiscale shapes, bad check
    ],
)
def test_leaves_ordinary_text_alone(redactor: Redactor, text: str) -> None:
    """Order numbers, dates, versions, ids and prose that merely mentions keys are not redacted."""
    assert redactor.redact_text(text) == text


def test_luhn() -> None:
    """The Luhn check accepts real test card numbers and rejects a changed digit."""
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_custom_patterns_are_applied() -> None:
    """Configured regexes are redacted as [REDACTED] on top of the built-in patterns."""
    redactor = Redactor([r"ACME-\d{6}", r"(?i)project\s+falcon"])
    assert redactor.redact_text("ticket ACME-123456 for Project Falcon, x@y.com") == (
        "ticket [REDACTED] for [REDACTED], [EMAIL]"
    )


@pytest.mark.parametrize("pattern", ["(unclosed", "a{2,1}", "x*"])
def test_invalid_custom_pattern_is_a_config_error_naming_it(pattern: str) -> None:
    """A bad regex (or one matching the empty string) fails at startup, naming the pattern."""
    with pytest.raises(ConfigError) as info:
        Redactor(["ok-\\d+", pattern])
    assert repr(pattern) in str(info.value)
    assert "REDACT_PATTERNS" in str(info.value) or "empty" in str(info.value)


def test_long_runs_of_small_numbers_cost_little(redactor: Redactor) -> None:
    """A huge list of small numbers is one digit run, split into pieces of a few groups:
    linear time (~0.1 s idle here; quadratic would take minutes), and no false card."""
    numbers = " ".join(str(i % 997) for i in range(50_000))
    started = time.process_time()
    assert redactor.redact_text(numbers) == numbers
    assert time.process_time() - started < 10.0


def test_long_unbroken_input_is_handled(redactor: Redactor) -> None:
    """Long strings without separators (base64 blobs, digit runs) are processed, not hung on."""
    blob = "A" * 200_000 + "@" + "b" * 1_000
    assert redactor.redact_text(blob) == blob
    digits = "7" * 100_000
    assert redactor.redact_text(digits) == digits
    assert redactor.redact_text("a@" * 50_000) == "a@" * 50_000


def _event(**overrides: object) -> CapturedCall:
    start = now_utc()
    fields: dict[str, object] = {
        "event_id": uuid.uuid4().hex,
        "started_at": start,
        "ended_at": start + timedelta(milliseconds=3),
        "model": "gpt-5.2",
        "request": ModelRequest(messages=[ChatMessage(role="user", content="hello")]),
        "response": ModelResponse(text="hi", finish_reason="stop"),
        "latency_ms": 3.0,
    }
    fields.update(overrides)
    return CapturedCall(**fields)  # type: ignore[arg-type]


def test_redact_event_covers_every_text_field(redactor: Redactor) -> None:
    """Contents, text parts, names, file names, tool traffic, response and string parameters."""
    mail = "jane@example.com"
    event = _event(
        request=ModelRequest(
            messages=[
                ChatMessage(role="system", content=f"owner {mail}"),
                ChatMessage(
                    role="user",
                    name=mail,
                    content=[
                        ContentPart(type="text", text=f"me: {mail}"),
                        ContentPart(type="file", file={"filename": f"{mail}.pdf", "file_id": "f1"}),
                        ContentPart(type="image_url", image_url={"url": "https://x.org/a.png"}),
                    ],
                ),
                ChatMessage(
                    role="assistant",
                    tool_calls=[ToolCall(id="1", name="send", arguments=f'{{"to": "{mail}"}}')],
                ),
                ChatMessage(role="tool", tool_call_id="1", content=f"sent to {mail}"),
            ],
            parameters={"metadata": {"who": mail}, "stop": [mail], "temperature": 0.2},
        ),
        response=ModelResponse(
            text=f"done {mail}",
            refusal=f"no {mail}",
            tool_calls=[ToolCall(id="2", name="cc", arguments=f'["{mail}"]')],
            finish_reason="stop",
        ),
    )
    redacted = redactor.redact_event(event)
    dumped = redacted.model_dump_json()
    assert mail not in dumped
    assert dumped.count("[EMAIL]") == 11
    assert "https://x.org/a.png" in dumped and '"file_id":"f1"' in dumped
    assert redacted.request.parameters["temperature"] == 0.2
    assert redacted.event_id == event.event_id
    assert mail in event.model_dump_json()  # the original is untouched


def test_clean_event_comes_back_as_the_same_object(redactor: Redactor) -> None:
    """An event without PII is returned as is: no copy on the hot path of the publisher."""
    event = _event()
    assert redactor.redact_event(event) is event


def _redacted_json(redactor: Redactor, event: CapturedCall) -> bytes:
    raw = redactor.redact_events_json([event])[0]
    assert raw is not None
    return raw


# Texts whose JSON has escapes right next to (or inside) what is redacted.
_ESCAPE_CASES = [
    "line\nbob@example.com",  # "\n" then the local part: the "n" must not join it
    'say "bob@example.com" now',
    "path C:\\bob@example.com\\x",
    "tab\tcard 4111 1111 1111 1111\t",
    "nul \x00 bob@example.com \x1f end",
    "café ☕ bob@example.com 😀",
    "unicode\u2028bob@example.com\u2029",
    'token: "sk-proj-Abcdefghijklmnop0123456789"\r\n',
    "api_key=abc123\\",
    '\\"bob@example.com\\"',
    "ends with backslash bob@example.com \\",
]


@pytest.mark.parametrize("text", _ESCAPE_CASES)
def test_event_json_is_the_redacted_event(redactor: Redactor, text: str) -> None:
    """redact_events_json writes exactly the redacted event, escapes included."""
    event = _event(
        request=ModelRequest(
            messages=[ChatMessage(role="user", content=text, name="u1")],
            parameters={"metadata": {"note": text}, "stop": [text, "x"], "n": 2},
        ),
        response=ModelResponse(text=f"re: {text}", finish_reason="stop"),
    )
    raw = _redacted_json(redactor, event)
    assert CapturedCall.model_validate_json(raw) == redactor.redact_event(event)
    assert b"bob@example.com" not in raw and b"4111 1111" not in raw and b"abc123" not in raw


def test_event_json_covers_every_text_field(redactor: Redactor) -> None:
    """Every text field is redacted in the JSON, identically to redact_event."""
    mail = "jane@example.com"
    event = _event(
        request=ModelRequest(
            messages=[
                ChatMessage(
                    role="user",
                    name=mail,
                    content=[
                        ContentPart(type="text", text=f"me: {mail}"),
                        ContentPart(type="file", file={"filename": f"{mail}.pdf", "file_id": "f1"}),
                        ContentPart(type="refusal", refusal=f"not {mail}"),
                    ],
                ),
                ChatMessage(
                    role="assistant",
                    tool_calls=[ToolCall(id="1", name="send", arguments=f'{{"to": "{mail}"}}')],
                ),
            ],
            tools=[ToolDefinition(name="send", parameters={"type": "object"})],
            parameters={"metadata": {"who": mail, "ids": [1, [mail]]}, "stop": [mail]},
        ),
        response=ModelResponse(
            text=f"done {mail}",
            refusal=f"no {mail}",
            tool_calls=[ToolCall(id="2", name="cc", arguments=f'["{mail}"]')],
            finish_reason="stop",
        ),
    )
    raw = _redacted_json(redactor, event)
    assert CapturedCall.model_validate_json(raw) == redactor.redact_event(event)
    assert mail.encode() not in raw
    assert raw.count(b"[EMAIL]") == 11
    assert mail in event.model_dump_json()  # the original is untouched


class _MyMessage(ChatMessage):
    """A caller's own subclass of a message model."""


def test_subclassed_models_are_redacted_too(redactor: Redactor) -> None:
    """A subclass of one of the event models is written with its texts redacted."""
    event = _event(
        request=ModelRequest(messages=[_MyMessage(role="user", content="bob@example.com")])
    )
    raw = _redacted_json(redactor, event)
    assert b"bob@example.com" not in raw
    assert CapturedCall.model_validate_json(raw).request.messages[0].content == "[EMAIL]"


def test_wire_form_knows_every_field() -> None:
    """A field added to the event models must be added to tap.wire (and its texts redacted)."""
    known = {
        CapturedCall: "arm cached_tokens completion_tokens ended_at error_class event_id "
        "http_status latency_ms model prompt_tokens reasoning_tokens request response rollout "
        "route schema_version started_at status stickiness_key tenant tokens_estimated ttft_ms",
        # api and context_messages hold no text: a Literal and a count.
        ModelRequest: "api context_messages messages parameters tools",
        ChatMessage: "content name role tool_call_id tool_calls",
        ContentPart: "file image_url input_audio refusal text type",
        ToolCall: "arguments id name",
        ModelResponse: "finish_reason refusal text tool_calls",
    }
    assert {model: " ".join(sorted(model.model_fields)) for model in known} == known


@pytest.mark.parametrize(
    "parameters",
    [
        {"bob@example.com": 1, "note": "bob@example.com"},  # a text that is also a key
        {"a": 'x "bob@example.com', "note": "bob@example.com"},
        {"a": [4111111111111111, ":[4111111111111111,"]},
        {"big": 2**70, "note": "bob@example.com"},  # beyond orjson's 64-bit integers
    ],
)
def test_event_json_of_awkward_parameters(
    redactor: Redactor, parameters: dict[str, object]
) -> None:
    """Texts that also occur as keys or inside other values, and huge integers, still give
    valid JSON of the redacted event."""
    event = _event(
        request=ModelRequest(
            messages=[ChatMessage(role="user", content="hi bob@example.com")],
            parameters=parameters,  # type: ignore[arg-type]
        )
    )
    parsed = CapturedCall.model_validate_json(_redacted_json(redactor, event))
    assert parsed == redactor.redact_event(event)
    assert parsed.request.messages[0].content == "hi [EMAIL]"


def test_clean_event_json_is_the_event(redactor: Redactor) -> None:
    """An event without PII is written as is."""
    event = _event()
    assert CapturedCall.model_validate_json(_redacted_json(redactor, event)) == event


def test_batch_texts_never_merge_and_repeats_are_redacted_alike(redactor: Redactor) -> None:
    """Texts of different events are redacted apart, also when one ends where another starts."""
    events = [
        _event(request=ModelRequest(messages=[ChatMessage(role="user", content=text)]))
        for text in [
            "call 415 555",
            "0100 please",
            "x@example.com",
            "nul\x00y@example.com",  # carries the separator itself: redacted on its own
            "x@example.com",
            "sk-",
        ]
    ]
    contents = [
        orjson.loads(raw or b"null")["request"]["messages"][0]["content"]
        for raw in redactor.redact_events_json(events)
    ]
    assert contents == [
        "call 415 555",
        "0100 please",
        "[EMAIL]",
        "nul\x00[EMAIL]",
        "[EMAIL]",
        "sk-",
    ]


def test_one_unwritable_event_costs_only_itself(redactor: Redactor) -> None:
    """An event that cannot be written (a lone surrogate) is None; the others are written."""
    bad = _event(request=ModelRequest(messages=[ChatMessage(role="user", content="a \ud800 b")]))
    good = _event()
    out = redactor.redact_events_json([good, bad, good])
    assert out[1] is None
    assert out[0] is not None and out[2] is not None


def test_custom_patterns_never_reach_into_another_text() -> None:
    """A custom regex that can match NUL ('.') redacts within its own text only."""
    redactor = Redactor([r"internal.*"])
    event = _event(
        request=ModelRequest(messages=[ChatMessage(role="user", content="see internal notes")]),
        response=ModelResponse(text="keep me", finish_reason="stop"),
    )
    raw = _redacted_json(redactor, event)
    assert b'"content":"see [REDACTED]"' in raw
    assert b'"text":"keep me"' in raw
