"""Numbers that are PII: payment cards, phone numbers, US social security numbers.

Numbers are classified by shape rather than matched by one regex per format: a run
of digits with the separators people write (space . - / parentheses) is a card if
its digits are in a card network's issuer range and length with a valid Luhn sum
(``tap.pii_cards``), an SSN if written 3-2-4 (or nine digits right after "SSN"), a
phone by the rules of ``tap.pii_phones``. What the words right before a number say
counts: "order", "invoice" or ``#`` make it an identifier, "EAN", "ISBN", "tracking"
or "build" a code, "phone" or "call me at" a phone, a currency sign a price. Dates,
times, versions, prices and ids glued to letters are left alone. A run holding
several numbers is split into its longest PII pieces.

The only full scan of the text is for digit runs, on a copy where every digit is
'0' so that ``re`` can skip ahead to a literal character.
"""

from __future__ import annotations

import re

from shadowcanary.tap.pii_cards import is_card_number, luhn_valid
from shadowcanary.tap.pii_phones import CheckBudget, Context, is_phone

__all__ = ["CARD", "PHONE", "SSN", "luhn_valid", "position_bytes", "redact_numbers"]

PHONE = "[PHONE]"
CARD = "[CARD]"
SSN = "[SSN]"

_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    """``text`` with each span replaced by ``placeholder``; a span overlapping an earlier one
    is skipped."""
    out: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start < done:
            continue
        out.append(text[done:start])
        out.append(placeholder)
        done = end
    out.append(text[done:])
    return "".join(out)


def position_bytes(text: str) -> bytes:
    """``text`` as one byte per character (non-Latin-1 characters become '?'), so that
    ``bytes.translate`` / ``bytes.find`` (C speed) give positions valid in ``text``."""
    return text.encode("latin-1", "replace")


# Runs of digits and the separators numbers are written with, found on a copy of the
# text where every digit is '0': a literal first character lets ``re`` skip ahead fast.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
# A '.' followed by a space ends a sentence, not a group: "... 70. 572 775 009".
_NUMBERISH = re.compile(rb"0(?:[0 ()\-/]|\.(?! )){5,}0")
_GROUPS = re.compile(r"[0-9]+")
_MIN_DIGITS, _MAX_DIGITS = 8, 19  # the shortest phone, the longest card
_MAX_GROUPS_PER_NUMBER = 8  # "+44 (0) 20 7946 0958" has 5; bounds the work on long lists
# libphonenumber checks one scan (a batch's texts joined) may spend on bare digits: a
# few µs each, but a batch full of distinct bare numbers (CSVs of ids) must stay cheap.
_BARE_CHECKS_PER_SCAN = 256
# Words right before a number that make it an identifier rather than a phone.
_ID_WORDS = frozenset(
    [
        "order",
        "invoice",
        "ticket",
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
        "zip",
        "postcode",
        "plz",
        "cp",
        "cap",
        "customer",
        "user",
        "page",
        "pages",
        "pp",
    ]
)
# ... a code: neither a phone nor a card (EAN/IMEI numbers pass Luhn by chance).
_CODE_WORDS = frozenset(
    [
        "ean",
        "gtin",
        "isbn",
        "upc",
        "imei",
        "barcode",
        "tracking",
        "shipment",
        "parcel",
        "build",
        "version",
        "release",
        "epoch",
        "ts",
        "timestamp",
        "serial",
        "sn",
    ]
)
# ... a phone, in the languages of the tap's users so far.
_PHONE_WORDS = frozenset(
    [
        "phone",
        "tel",
        "telephone",
        "mobile",
        "cell",
        "cellphone",
        "call",
        "fax",
        "whatsapp",
        "sms",
        "contact",
        "reach",
        "ring",
        "telefon",
        "telefonnummer",
        "rufnummer",
        "handy",
        "mobil",
        "anrufen",
        "téléphone",
        "tél",
        "portable",
        "appelez",
        "appeler",
        "numéro",
        "teléfono",
        "móvil",
        "llámame",
        "llamar",
        "número",
        "celular",
        "telefono",
        "cellulare",
        "chiamami",
        "chiamare",
        "numero",
        "telefone",
        "ligue",
        "ligar",
        "telefoon",
        "bel",
        "mobiel",
        "nummer",
        "numer",
        "zadzwoń",
        "komórka",
        "komórkowy",
        "電話",
        "携帯",
        "電話番号",
        "番号",
    ]
)
_SSN_WORDS = frozenset(("ssn", "security"))
# The words before the number, looking through "no." / "nr" / "number", "is", "me at".
# Possessive quantifiers and a word start: tried at every position of the window, the
# pattern must fail fast where it does not fit (no backtracking into a word).
_LAST_WORDS = re.compile(
    r"(?<!\w)(\w++)[^\w.!?;。—]*+(?:(no|nr|num|number|n°)\W*+)?"
    r"((?:(?:is|are|was|were|of|equals|me|at|on|under|au|al|unter)\W*+){0,2})\Z"
)
# A number after "<word> is", "of", "was"... not announced as a phone is a value: a count.
_VALUE_LINKS = frozenset(("is", "are", "was", "were", "of", "equals"))
_POSSESSIVES = frozenset(("my", "her", "his", "our", "your", "their", "mein", "mon", "mi"))
_WORD_AFTER = re.compile(r"[ \t]+[^\W\d_]")
_CURRENCY = frozenset("$€£¥₹")
_SSN = re.compile(r"(?!000|666|9)[0-9]{3}([- ])(?!00)[0-9]{2}\1(?!0000)[0-9]{4}")


def _is_card(number: str, digits: str) -> bool:
    if not is_card_number(digits):
        return False
    # Written in groups of at least four (4-4-4-4, 4-6-5, 4-4-4-4-3, 4-4-4-1) or bare: a
    # list of small numbers ("23 24 25 26 27 28 29") can pass Luhn by chance.
    groups = _GROUPS.findall(number)
    return all(len(group) >= 4 for group in groups[:-1])


def _classify(number: str, context: Context, *, whole: bool, budget: CheckBudget) -> str | None:
    """The placeholder for ``number``, or None when it is not PII.

    ``whole``: the number is the whole run found, not a piece of it.
    """
    digits = "".join(_GROUPS.findall(number))
    if context in (Context.ID, Context.CODE):
        # "order 4155550100" is an order number, "EAN 4006381333931" a barcode; a card
        # after "order" or "account" is still a card.
        return CARD if context == Context.ID and _is_card(number, digits) else None
    if number[0] != "+":
        if _SSN.fullmatch(number):
            return SSN
        if _is_card(number, digits):
            return CARD
    if is_phone(number, digits, context=context, whole=whole, budget=budget):
        return PHONE
    return None


def _printed_in_blocks(run: str, groups: list[tuple[int, int]]) -> bool:
    """Whether ``run`` is five or more four-digit blocks with one separator: a code
    printed in blocks (a tracking number), longer than any card, not several numbers."""
    if len(groups) < 5 or any(end - start != 4 for start, end in groups):
        return False
    return len({run[end] for _, end in groups[:-1]}) == 1


def _redact_number_run(run: str, context: Context, budget: CheckBudget) -> str:
    """``run`` with the PII numbers in it replaced: the whole run, or the longest pieces."""
    placeholder = _classify(run, context, whole=True, budget=budget)
    if placeholder is not None:
        return placeholder
    groups = [match.span() for match in _GROUPS.finditer(run)]
    if len(groups) < 2 or context == Context.CODE or _printed_in_blocks(run, groups):
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
            piece = run[start : groups[j][1]]
            placeholder = _classify(piece, context, whole=False, budget=budget)
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


def _context(text: str, start: int, end: int) -> Context:
    """What the words right before a number make it (and a currency sign, decimals or
    a word right after it)."""
    before = text[max(0, start - 32) : start].lower()
    before = before[before.rfind("\x00") + 1 :]  # a batch's texts are joined with NUL
    stripped = before.rstrip(" :.")
    if stripped.endswith("#"):
        return Context.ID
    if stripped[-1:] in _CURRENCY or text[end : end + 2].strip()[:1] in _CURRENCY:
        return Context.AMOUNT
    if end + 1 < len(text) and text[end] in ",." and text[end + 1].isdigit():
        return Context.AMOUNT  # "12 345 678,90": an amount with decimals
    match = _LAST_WORDS.search(before)
    word = match.group(1) if match is not None else ""
    if word in _ID_WORDS:
        return Context.ID
    if word in _CODE_WORDS:
        return Context.CODE
    if word in _SSN_WORDS:
        return Context.SSN
    if word in _PHONE_WORDS:
        return Context.PHONE
    if match is not None and match.group(2) and word in _POSSESSIVES:
        return Context.PHONE  # "my number is ...", not "the number of rows is ..."
    if _WORD_AFTER.match(text, end) or (
        match is not None and _VALUE_LINKS.intersection(match.group(3).split())
    ):
        return Context.QUANTITY
    return Context.NONE


def redact_numbers(text: str) -> str:
    """``text`` with every card, phone and SSN replaced by its placeholder."""
    out: list[str] = []
    done = 0
    size = len(text)
    budget = CheckBudget(_BARE_CHECKS_PER_SCAN)
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
        context = _context(text, start, end)
        if context == Context.SSN and len(run) == 9 and run.isdigit():
            redacted = SSN  # nine bare digits are an SSN only when said to be one
        else:
            redacted = _redact_number_run(run, context, budget)
        if redacted != run and run[0] == "(" and redacted.startswith((CARD, SSN)):
            redacted = "(" + redacted  # "(4111 1111 1111 1111)": the parenthesis stays
        if redacted != run:
            out.append(text[done:start])
            out.append(redacted)
            done = extension if redacted.endswith(PHONE) else end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)
