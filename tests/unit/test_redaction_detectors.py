"""The detectors added for issue 17: card ranges, bounded libphonenumber checks, the
plug-in point for slow detectors (Presidio) and its refusal when Presidio is missing."""

from __future__ import annotations

import importlib.util

import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.settings import TapSettings
from shadowcanary.tap import pii_phones
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.pii_accounts import redact_accounts
from shadowcanary.tap.pii_cards import is_card_number
from shadowcanary.tap.pii_numbers import redact_numbers
from shadowcanary.tap.redaction import REDACTED, Redactor

HAS_PRESIDIO = importlib.util.find_spec("presidio_analyzer") is not None


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("4111111111111111", True),  # Visa 16
        ("4222222222222", True),  # Visa 13
        ("5555555555554444", True),  # Mastercard
        ("2223003122003222", True),  # Mastercard 2-series
        ("378282246310005", True),  # Amex 15
        ("6011111111111117", True),  # Discover
        ("30569309025904", True),  # Diners 14
        ("3530111333300000", True),  # JCB 16
        ("213124103659802", True),  # JCB 15 (2131)
        ("180000000000002", True),  # JCB 15 (1800)
        ("675950718667", True),  # Maestro 12
        ("6304000000000000", True),  # Maestro 16
        ("2200000000000004", True),  # Mir
        ("4111111111111112", False),  # Luhn fails
        ("378282246310005" + "0", False),  # Amex is 15 digits, not 16
        ("7000000000000008", False),  # no network issues from 7
        ("41111111111", False),  # too short for any card
    ],
)
def test_card_numbers_follow_network_ranges_and_lengths(digits: str, expected: bool) -> None:
    """A card is a Luhn-valid number in a network's issuer range, of a length it uses."""
    assert is_card_number(digits) is expected


def test_bare_number_checks_are_bounded_per_scan() -> None:
    """A text full of bare numbers spends a bounded number of libphonenumber checks."""
    pii_phones._valid_bare.cache_clear()
    text = "\n".join(f"- {4_000_000_000 + i * 7919}" for i in range(2_000))
    redact_numbers(text)
    assert pii_phones._valid_bare.cache_info().misses <= 256


def test_accounts_leave_text_without_them_as_is() -> None:
    """Text with no IBAN or IP address comes back unchanged (the same string)."""
    text = "Version 1.2.3, at 10:41:00, BIC DEUTDEFF, DE is Germany, ratio 1.5:2"
    assert redact_accounts(text) is text


def test_detectors_run_once_per_distinct_text() -> None:
    """A plugged-in detector sees each distinct text once; its result is cached and used."""
    seen: list[str] = []

    def upper_names(text: str) -> str:
        seen.append(text)
        return text.replace("Alice", "[PERSON]")

    redactor = Redactor(detectors=[upper_names])
    assert redactor.redact_text("Alice wrote from a@b.io") == "[PERSON] wrote from [EMAIL]"
    assert redactor.redact_text("Alice wrote from a@b.io") == "[PERSON] wrote from [EMAIL]"
    assert seen == ["Alice wrote from [EMAIL]"]  # after the built-ins, once


def test_a_failing_detector_never_lets_the_text_through() -> None:
    """A detector that raises makes the whole text [REDACTED], never the original."""

    def broken(text: str) -> str:
        raise RuntimeError("model not loaded")

    assert Redactor(detectors=[broken]).redact_text("Alice lives at 1 Main St") == REDACTED


@pytest.mark.skipif(HAS_PRESIDIO, reason="presidio-analyzer is installed here")
def test_presidio_asked_for_but_missing_is_a_config_error() -> None:
    """Setting Presidio entities without the extra installed refuses to start the tap."""
    settings = TapSettings(presidio_entities=["PERSON"])
    with pytest.raises(ConfigError) as info:
        Tap(settings, "redis://127.0.0.1:1/0")
    assert "presidio" in str(info.value).lower()
    assert "shadowcanary[presidio]" in (info.value.hint or "")
