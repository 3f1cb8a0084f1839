"""Payment card numbers: the networks' issuer ranges (IIN) and lengths, and Luhn.

A number is a card when its leading digits fall in a range a network issues from and
its length is one that network uses, and its Luhn sum is valid. The ranges are the
networks' published ones (ISO/IEC 7812 IINs as listed by the networks and collected
on Wikipedia's "Payment card number" page), kept coarse where networks overlap
(Maestro and Discover share 6xxx): the question is "could this be a card", not
"which brand".
"""

from __future__ import annotations

__all__ = ["is_card_number", "luhn_valid"]

# (lowest prefix, highest prefix, lengths): prefixes compared on as many leading digits
# as they have. Ordered by network for reading; lookups go through _BY_FIRST_DIGIT.
_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa (13 digits: old cards, still generated)
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),  # Discover, RuPay
    ("300", "305", frozenset(range(14, 20))),  # Diners Club International
    ("3095", "3095", frozenset(range(14, 20))),
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    # JCB issues from 3528-3589; generators and test cards use all of 35xx.
    ("35", "35", frozenset(range(16, 20))),
    ("2131", "2131", frozenset({15})),  # JCB, 15 digits
    ("1800", "1800", frozenset({15})),
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("81", "81", frozenset(range(16, 20))),  # UnionPay, RuPay
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
    ("50", "50", frozenset(range(12, 20))),  # Maestro (5018, 5020, 5038...), Verve
    ("56", "69", frozenset(range(12, 20))),  # Maestro (6304, 6759, 676x...), InterPayment
    ("0604", "0604", frozenset(range(12, 20))),  # Maestro UK, old range
    ("9792", "9792", frozenset({16})),  # Troy
)
_BY_FIRST_DIGIT: dict[str, tuple[tuple[str, str, frozenset[int]], ...]] = {
    digit: tuple(r for r in _RANGES if r[0][0] <= digit <= r[1][0]) for digit in "0123456789"
}
MIN_LENGTH, MAX_LENGTH = 12, 19


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (what every payment card number passes)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _in_range(digits: str) -> bool:
    size = len(digits)
    for low, high, lengths in _BY_FIRST_DIGIT[digits[0]]:
        head = digits[: len(low)]
        if low <= head <= high and size in lengths:
            return True
    return False


def is_card_number(digits: str) -> bool:
    """Whether ``digits`` (digits only) is a number some card network could issue."""
    return MIN_LENGTH <= len(digits) <= MAX_LENGTH and _in_range(digits) and luhn_valid(digits)
