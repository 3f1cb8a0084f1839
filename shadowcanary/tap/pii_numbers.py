"""Numbers that are PII: payment cards, phone numbers, US social security numbers.

Numbers are classified by shape rather than matched by one regex per format: a run
of digits with the separators people write (space . - / parentheses) is a card if
it has 13-19 digits, a known card prefix and a valid Luhn sum; a phone if it starts
with ``+`` (8-15 digits), is grouped like a North American number, or is a national
number with a trunk ``0`` (UK, FR, DE: 10-12 digits); an SSN if written 3-2-4, or
as nine digits right after "SSN". Dates, times, versions, prices, ids glued to
letters, and numbers right after ``#`` or an "order"/"invoice"-like word are left
alone. A run holding several numbers is split into its longest PII pieces.

The only full scan of the text is for digit runs, on a copy where every digit is
'0' so that ``re`` can skip ahead to a literal character.
"""

from __future__ import annotations

import re

PHONE = "[PHONE]"
CARD = "[CARD]"
SSN = "[SSN]"

_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def position_bytes(text: str) -> bytes:
    """``text`` as one byte per character (non-Latin-1 characters become '?'), so that
    ``bytes.translate`` / ``bytes.find`` (C speed) give positions valid in ``text``."""
    return text.encode("latin-1", "replace")


# Runs of digits and the separators numbers are written with, found on a copy of the
# text where every digit is '0': a literal first character lets ``re`` skip ahead fast.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_NUMBERISH = re.compile(rb"0[0 ().\-/]{5,}0")
_GROUPS = re.compile(r"[0-9]+")
_MIN_DIGITS, _MAX_DIGITS = 8, 19  # the shortest phone, the longest card
_MAX_GROUPS_PER_NUMBER = 8  # "+44 (0) 20 7946 0958" has 5; bounds the work on long lists
# Words right before a number that make it an identifier rather than a phone.
_ID_WORDS = frozenset(
    [
        "order",
        "invoice",
        "ticket",
        "tracking",
        "ref",
        "reference",
        "id",
        "sku",
        "case",
        "account",
        "acct",
        "po",
        "receipt",
        "transaction",
        "confirmation",
    ]
)
# The word before the number, looking through a "no." / "nr" / "number" and an "is".
_LAST_WORD = re.compile(r"([a-z]+)[^a-z0-9]*(?:(?:no|nr|num|number)[^a-z0-9]*)?(?:is[^a-z0-9]*)?\Z")
_SEPARATORS = " ().-/"
_SSN = re.compile(r"(?!000|666|9)[0-9]{3}([- ])(?!00)[0-9]{2}\1(?!0000)[0-9]{4}")
# Grouped 3-3-4 is a phone whatever the digits (people mistype, test data is fake);
# ten bare digits only when they are a valid North American number.
_NANP_GROUPED = re.compile(
    r"(?:1[ .\-]?)?(?:\([0-9]{3}\)[ .\-]?|[0-9]{3}[ .\-/])[0-9]{3}[ .\-][0-9]{4}"
)
_NANP_BARE = re.compile(r"1?[2-9][0-9]{2}[2-9][0-9]{6}")
_DATE = re.compile(r"[0-9]{1,2}([./-])[0-9]{1,2}\1(?:[0-9]{4}|[0-9]{2})|[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NATIONAL = re.compile(r"\(?0[1-9][0-9]{0,4}\)?(?:[ ./\-]?[0-9]{2,8}){1,5}")


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


def _card_brand_prefix(digits: str) -> bool:
    """Whether the number starts like a payment card (Visa, Mastercard, Amex, Discover,
    Diners, JCB, UnionPay, Maestro); epoch milliseconds and most order numbers do not."""
    if digits[0] == "4":
        return True
    two = int(digits[:2])
    four = int(digits[:4])
    return (
        51 <= two <= 55
        or 2221 <= four <= 2720
        or two in (34, 36, 37, 38, 50, 62, 65)
        or 56 <= two <= 69
        or 300 <= four // 10 <= 305
        or 3528 <= four <= 3589
    )


def _is_card(number: str, digits: str) -> bool:
    if not (13 <= len(digits) <= 19 and _card_brand_prefix(digits) and luhn_valid(digits)):
        return False
    # Written in groups of at least four (4-4-4-4, 4-6-5, 4-4-4-4-3, 4-4-4-1) or bare: a
    # list of small numbers ("23 24 25 26 27 28 29") can pass Luhn by chance.
    groups = _GROUPS.findall(number)
    return all(len(group) >= 4 for group in groups[:-1])


def _is_phone(number: str, digits: str) -> bool:
    if number[0] == "+":
        return 8 <= len(digits) <= 15
    if _NANP_GROUPED.fullmatch(number) or _NANP_BARE.fullmatch(number):
        return True
    if digits[:2] == "00":
        # International dialling prefix ("0044 20 7946 0958", "001-415-555-0100", "00 33
        # 1 23..."): written as one group, followed by a separator so padded ids
        # ("0001234567") and lists ("0 0 65 14...") stay.
        return (
            number[:2] == "00"
            and 10 <= len(digits) - 2 <= 15
            and any(c in number[:6] for c in _SEPARATORS)
        )
    if _DATE.fullmatch(number.partition(" ")[0]):
        return False  # "09/09/2025 10:41": a date, then the hour
    return (
        number.lstrip("(")[:1] == "0"
        and (10 <= len(digits) <= 12 or (len(digits) == 9 and not number.isdigit()))
        and _NATIONAL.fullmatch(number) is not None
    )


def _classify(number: str, *, id_context: bool) -> str | None:
    """The placeholder for a whole number, or None when it is not PII."""
    digits = "".join(_GROUPS.findall(number))
    if number[0] == "+":
        return PHONE if _is_phone(number, digits) else None
    if _SSN.fullmatch(number):
        return SSN
    if _is_card(number, digits):
        return CARD
    if id_context:
        return None  # "order 4155550100" is an order number
    return PHONE if _is_phone(number, digits) else None


def _redact_number_run(run: str, *, id_context: bool) -> str:
    """``run`` with the PII numbers in it replaced: the whole run, or the longest pieces."""
    placeholder = _classify(run, id_context=id_context)
    if placeholder is not None:
        return placeholder
    groups = [match.span() for match in _GROUPS.finditer(run)]
    if len(groups) < 2:
        return run
    digits_before = [0]  # digits in the groups before each group
    for group_start, group_end in groups:
        digits_before.append(digits_before[-1] + group_end - group_start)
    out: list[str] = []
    done = i = 0
    while i < len(groups):
        start = groups[i][0]
        if start > 0 and run[start - 1] in "+(":
            start -= 1
            if start > 0 and run[start] == "(" and run[start - 1] == "+":
                start -= 1
        first = run[groups[i][0] : groups[i][1]]
        hopeless = (  # "3.14159...", or "12 13 14...": no PII starts like that
            (start > 1 and run[start - 1] == "." and run[start - 2].isdigit())
            or (run[start] not in "+(0" and len(first) < 3 and first != "1")
        )
        last = -1 if hopeless else min(len(groups), i + _MAX_GROUPS_PER_NUMBER) - 1
        for j in range(last, i - 1, -1):  # the longest piece first ("3.14159...": none)
            digits = digits_before[j + 1] - digits_before[i]
            if not _MIN_DIGITS <= digits <= _MAX_DIGITS:
                continue  # too short or too long to be anything: no regex needed
            placeholder = _classify(run[start : groups[j][1]], id_context=id_context)
            if placeholder is not None:
                out.append(run[done:start])
                out.append(placeholder)
                done = groups[j][1]
                i = j
                break
        i += 1
    if not out:
        return run
    out.append(run[done:])
    return "".join(out)


def _context(text: str, start: int) -> str | None:
    """ "id" after '#' or a word like "order" / "invoice", "ssn" after "SSN" or "social
    security number (is)", else None: what the words right before a number make it."""
    before = text[max(0, start - 24) : start].lower()
    if before.rstrip(" :.").endswith("#"):
        return "id"
    match = _LAST_WORD.search(before)
    word = match.group(1) if match is not None else ""
    if word in _ID_WORDS:
        return "id"
    return "ssn" if word in ("ssn", "security") else None


def redact_numbers(text: str) -> str:
    """``text`` with every card, phone and SSN replaced by its placeholder."""
    out: list[str] = []
    done = 0
    size = len(text)
    for match in _NUMBERISH.finditer(position_bytes(text).translate(_DIGITS_AS_ZERO)):
        start, end = match.span()
        if start > 0 and text[start - 1] in "+(":
            start -= 1
            if start > 0 and text[start] == "(" and text[start - 1] == "+":
                start -= 1
        extension = end
        if end + 1 < size and text[end] in "xX" and text[end + 1].isdigit():
            extension = end + 1  # "555-123-4567x890": the extension goes with the phone
            while extension < size and text[extension].isdigit():
                extension += 1
        if (start > 0 and text[start - 1] in _WORD_CHARS) or (
            extension < size and text[extension] in _WORD_CHARS
        ):
            continue  # glued to letters: part of an id or a key, not a number
        if start > 1 and text[start - 1] in "-/" and text[start - 2] in _WORD_CHARS:
            continue  # "ORD-0012345678", "v2/20240115"
        run = text[start:end]
        context = _context(text, start)
        if context == "ssn" and len(run) == 9 and run.isdigit():
            redacted = SSN  # nine bare digits are an SSN only when said to be one
        else:
            redacted = _redact_number_run(run, id_context=context == "id")
        if redacted != run:
            out.append(text[done:start])
            out.append(redacted)
            done = extension if redacted.endswith(PHONE) else end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)
