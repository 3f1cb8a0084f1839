"""Whether a number written in text is a phone number.

Called by ``tap.pii_numbers`` on each run of digits and separators it found, with
what the words around the run say. Rules, cheapest first:

* written internationally (``+``, or ``00`` and a country's number), grouped like a
  North American number, or a national number with a trunk ``0``;
* right after a word that announces a phone ("phone", "Tel.", "call me at",
  "Telefon", "numéro", "電話"...): any 7-15 digits that are not a date;
* standing alone (no word right after it, which would make it a count) and grouped
  the way phone numbers are written (2-5 groups of 2-8 digits, 8-13 digits in all:
  ``21 2195-5308``, ``32 115 14 61``, ``573 911 171``), unless the grouping says it
  is something else (a range ``2019-2024``, a decimal ``7642.6939``, a postcode
  ``60688-648``, a uniform run of four-digit blocks);
* standing alone as bare digits: only when libphonenumber (``phonenumbers``) says it
  is a mobile number (or, keeping a leading 0, a fixed-line one), as written, of one
  of the regions where
  numbers are written without a trunk prefix (``_BARE_REGIONS``): its metadata's
  patterns for the region, a few µs, run only on 9-12 bare digits no other rule
  settled, a bounded number of times per scan (``CheckBudget``), results cached.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

import phonenumbers

__all__ = ["CheckBudget", "Context", "is_phone"]


class Context(StrEnum):
    """What the words right before a number make it."""

    NONE = "none"
    ID = "id"  # "order", "invoice", "#": an identifier, never a phone
    CODE = "code"  # "EAN", "ISBN", "tracking", "build": a code, neither phone nor card
    SSN = "ssn"
    PHONE = "phone"  # "phone", "call me at", "Tel.": a phone unless it is a date
    AMOUNT = "amount"  # a currency sign or decimals around it: a price
    QUANTITY = "quantity"  # a word right after it ("123456789 units"): a count


_SEPARATORS = " ().-/"
_NANP_GROUPED = re.compile(
    r"(?:1[ .\-]?)?(?:\([0-9]{3}\)[ .\-]?|[0-9]{3}[ .\-/])[0-9]{3}[ .\-][0-9]{4}"
)
_NANP_BARE = re.compile(r"1?[2-9][0-9]{2}[2-9][0-9]{6}")
_DATE = re.compile(r"[0-9]{1,2}([./-])[0-9]{1,2}\1(?:[0-9]{4}|[0-9]{2})|[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NATIONAL = re.compile(r"\(?0[1-9][0-9]{0,4}\)?(?:[ ./\-]?[0-9]{2,8}){1,5}")
# 2-5 groups: the first of 2-5 digits (maybe in parentheses), the rest of 2-8.
_GROUPED = re.compile(r"\(?[0-9]{2,5}\)?(?:(?:[ \-./]|\)[ \-]?)[0-9]{2,8}){1,4}")
_GROUP = re.compile(r"[0-9]+")

# Regions whose numbers are commonly written as bare digits with no trunk prefix.
_BARE_REGIONS = ("IT", "PL", "ES", "PT", "IN", "DK", "NO", "BE", "CH", "CZ")


def _bare_shapes() -> tuple[tuple[frozenset[int], re.Pattern[str], re.Pattern[str]], ...]:
    """Each bare region's possible national lengths, and its mobile and fixed-line
    number patterns, from libphonenumber's metadata."""
    shapes = []
    for region in _BARE_REGIONS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if (
            metadata is None
            or metadata.general_desc is None
            or metadata.mobile is None
            or metadata.fixed_line is None
        ):
            continue
        shapes.append(
            (
                frozenset(metadata.general_desc.possible_length or ()),
                re.compile(metadata.mobile.national_number_pattern or r"(?!)"),
                re.compile(metadata.fixed_line.national_number_pattern or r"(?!)"),
            )
        )
    return tuple(shapes)


_BARE_SHAPES = _bare_shapes()


class CheckBudget:
    """How many more libphonenumber checks the text being redacted may spend."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


@lru_cache(maxsize=4_096)  # pure; ids and numbers repeat from call to call
def _valid_bare(number: str) -> bool:
    """Whether ``number`` (bare digits) is, as written, a mobile or fixed-line number of
    one of ``_BARE_REGIONS``: libphonenumber's metadata for the region, read directly
    (``phonenumbers.parse`` costs ~40 µs a region; these regexes a few)."""
    size = len(number)
    # Fixed-line patterns are broad (counts and epoch seconds fit many): only numbers
    # keeping their leading 0 (Italian landlines) are checked against them.
    landline = number[0] == "0"
    for lengths, mobile, fixed_line in _BARE_SHAPES:
        if size in lengths and (
            mobile.fullmatch(number) or (landline and fixed_line.fullmatch(number))
        ):
            return True
    return False


def _grouped_like_a_phone(number: str, digits: str) -> bool:
    if not (8 <= len(digits) <= 13) or _GROUPED.fullmatch(number) is None:
        return False
    groups = _GROUP.findall(number)
    separators = set(_GROUP.sub("", number))
    if len(groups) == 2:
        first, second = groups
        if len(second) < 4:
            return False  # "60688-648": a Brazilian postcode; phones end in 4+ digits
        if "." in separators or (first.startswith(("19", "20")) and len(first) == 4):
            return False  # "7642.6939" is a decimal, "2019 2024" two years
        if len(first) == len(second) and 0 < int(second) - int(first) < 1000:
            return False  # "1234-1256": a range
    return not (len(groups) >= 4 and all(len(group) == 4 for group in groups))


def _international(number: str, digits: str) -> bool:
    if number[0] == "+":
        return 8 <= len(digits) <= 15
    # "0044 20 7946 0958", "001-415-555-0100": one group, then a separator, so that
    # padded ids ("0001234567") stay.
    return (
        number[:2] == "00"
        and 10 <= len(digits) - 2 <= 15
        and any(c in number[:6] for c in _SEPARATORS)
    )


def is_phone(
    number: str, digits: str, *, context: Context, whole: bool, budget: CheckBudget
) -> bool:
    """Whether ``number`` (its ``digits``) is a phone number.

    ``whole``: the number is the whole run found in the text, not a piece of a longer
    run (the looser rules apply to whole runs only). ``budget``: how many more
    libphonenumber checks this text may spend (decremented here).
    """
    if number[0] == "+" or number[:2] == "00":
        if _international(number, digits):
            return True
    elif _NANP_GROUPED.fullmatch(number) or _NANP_BARE.fullmatch(number):
        return True
    if _DATE.fullmatch(number.partition(" ")[0]):
        return False  # "09/09/2025 10:41": a date, then the hour
    if (
        number.lstrip("(")[:1] == "0"
        and (10 <= len(digits) <= 12 or (len(digits) == 9 and not number.isdigit()))
        and _NATIONAL.fullmatch(number) is not None
    ):
        return True
    if not whole or context in (Context.AMOUNT, Context.QUANTITY):
        return False
    if context == Context.PHONE:
        return 7 <= len(digits) <= 15
    if not number.isdigit():
        return _grouped_like_a_phone(number, digits)
    if 9 <= len(digits) <= 12 and budget.left > 0:
        budget.left -= 1
        return _valid_bare(number)
    return False
