"""The built-in PII and secret detectors, tuned for CPython's ``re`` on large texts.

``redact_builtin`` runs on the texts of a whole tap batch joined with NUL (hundreds
of kilobytes), so every pass is arranged to cost C-speed scanning, not Python work
per character:

* literal anchors are found with ``str.find`` / ``in`` (sublinear), and the regex
  for the shape is only *matched* at each anchor: ``@`` for emails, the vendor
  prefixes of API keys (``sk-``, ``AKIA``, ``ghp_``...), ``bearer`` /
  ``authorization`` for tokens, ``key`` / ``secret`` / ``pass`` / ``token`` /
  ``pwd`` for ``key=value`` secrets;
* the only full scan is the one for digit runs, a character-class regex;
* token boundaries are checked in Python on the few candidates found.

Numbers are classified by shape rather than matched by one regex per format: a run
of digits with the separators people write (space . - / parentheses) is a card if
it has 13-19 digits, a known card prefix and a valid Luhn sum; a phone if it starts
with ``+`` (8-15 digits), is grouped like a North American number, or is a national
number with a trunk ``0`` (UK, FR, DE: 10-12 digits); an SSN if written 3-2-4.
Dates, times, versions, prices, ids glued to letters and numbers right after
``#`` or an "order"/"invoice"-like word are left alone.

Measured against the labelled corpus in ``tests/corpus/pii`` (``bench/pii_recall.py``).
"""

from __future__ import annotations

import re

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
SSN = "[SSN]"
SECRET = "[SECRET]"  # noqa: S105 - a placeholder, not a password

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORD_CHARS = _ALNUM | {"_"}

# -- emails -----------------------------------------------------------------------------

_LOCAL_PART_MAX = 64  # RFC 5321
_LOCAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.%+-'"
_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def _redact_emails(text: str) -> str:
    out: list[str] = []
    done = 0
    for match in _DOMAIN.finditer(text):
        at = match.start()
        floor = max(done, at - _LOCAL_PART_MAX)
        window = text[floor:at]
        # The local part is the run of local-part characters right before '@' (C speed).
        local = len(window) - len(window.rstrip(_LOCAL_CHARS))
        start = at - local
        while start < at and text[start] in ".'-":
            start += 1  # a sentence's quote or dash before the address is not part of it
        if start == at:
            continue
        out.append(text[done:start])
        out.append(EMAIL)
        done = match.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# -- API keys and tokens: vendor prefixes found by str.find, shapes matched there -------

_SECRET_SHAPE = re.compile(
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-). Without one
    # of those sub-prefixes a digit or a capital is required, so hyphenated words that
    # happen to start with "sk-" stay ("sk-learn-compatible").
    r"sk-(?:(?:proj|ant|svcacct|admin)-|(?=[A-Za-z0-9_-]{0,200}[0-9A-Z]))[A-Za-z0-9_-]{16,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret and restricted keys
    r"|whsec_[A-Za-z0-9]{24,}"  # Stripe webhook secret
    r"|A(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[0-9]+-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"  # SendGrid
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
)
_TOKEN_CLASS = bytes(0x61 if chr(b) in _ALNUM or chr(b) in "_.-" else 0x20 for b in range(256))
_LONG_TOKEN_RUN = b"a" * 15  # the shortest shape above
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^\x00]*?-----END [A-Z ]*PRIVATE KEY-----")
# "Bearer <token>" and "Authorization: <scheme> <credential>": the credential.
_BEARER = re.compile(r"(?i)bearer[ \t]+")
_AUTH_HEADER = re.compile(r"(?i)authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:[a-z]+[ \t]+)?")
_CREDENTIAL = re.compile(r"[A-Za-z0-9._~+/-]{8,}=*")


def _replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    for start, end in spans:
        if start < done:
            start = done
        if end <= start:
            continue
        out.append(text[done:start])
        out.append(placeholder)
        done = end
    out.append(text[done:])
    return "".join(out)


def _position_bytes(text: str) -> bytes:
    """``text`` as one byte per character (non-Latin-1 characters become '?'), so that
    ``bytes.translate`` / ``bytes.find`` (C speed) give positions valid in ``text``."""
    return text.encode("latin-1", "replace")


def _redact_prefixed_tokens(text: str) -> str:
    # Every key shape is a run of at least 15 token characters: find those runs with
    # bytes.find on a class map, and look for the vendor shapes inside them only.
    classes = _position_bytes(text).translate(_TOKEN_CLASS)
    at = classes.find(_LONG_TOKEN_RUN)
    spans = []
    while at != -1:
        start = classes.rfind(b" ", 0, at) + 1
        end = classes.find(b" ", at)
        end = len(classes) if end == -1 else end
        for match in _SECRET_SHAPE.finditer(text, start, end):
            if match.start() == 0 or text[match.start() - 1] not in _ALNUM:
                spans.append(match.span())
        at = classes.find(_LONG_TOKEN_RUN, end)
    return _replace_spans(text, spans, SECRET)


def _redact_auth(text: str, lower: str) -> str:
    spans = []
    for anchor, prefix in (("bearer", _BEARER), ("authorization", _AUTH_HEADER)):
        at = lower.find(anchor)
        while at != -1:
            head = None if at and text[at - 1] in _WORD_CHARS else prefix.match(text, at)
            credential = _CREDENTIAL.match(text, head.end()) if head is not None else None
            if credential is not None:
                spans.append(credential.span())  # "Bearer " stays readable
            at = lower.find(anchor, at + 1)
    return _replace_spans(text, spans, SECRET)


# -- key=value secrets: found from the hint words, the key kept readable ------------------

_KV_HINTS = ("key", "secret", "pass", "pwd", "token")
# A key whose letters (lowercase, no '_' or '-') end with one of these names a secret.
_KV_KEY_ENDINGS = (
    "apikey",
    "secretkey",
    "accesskey",
    "privatekey",
    "secret",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "token",
)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_KV_SEPARATOR = re.compile(r"[\"']?[ \t]*[:=][ \t]*")
_KV_VALUE = re.compile(r"\"[^\"\n\x00]+\"|'[^'\n\x00]+'|[^\s\"',;&}\]\x00]+")


def _redact_key_values(text: str, lower: str) -> str:
    spans: dict[int, tuple[int, int, str]] = {}  # by key start: "secret_key" has two hints
    for hint in _KV_HINTS:
        at = lower.find(hint)
        while at != -1:
            start, end = at, at + len(hint)
            while start > 0 and at - start < 40 and text[start - 1] in _KEY_CHARS:
                start -= 1
            while end < len(text) and end - at < 40 and text[end] in _KEY_CHARS:
                end += 1
            key = lower[start:end].replace("_", "").replace("-", "")
            if start not in spans and key.endswith(_KV_KEY_ENDINGS):
                separator = _KV_SEPARATOR.match(text, end)
                value = _KV_VALUE.match(text, separator.end()) if separator else None
                if value is not None:
                    quote = value.group()[0] if value.group()[0] in "\"'" else ""
                    spans[start] = (value.start(), value.end(), quote)
            at = lower.find(hint, end)
    if not spans:
        return text
    out: list[str] = []
    done = 0
    for value_start, value_end, quote in sorted(spans.values()):
        if value_start < done:
            continue
        out.append(text[done:value_start])
        out.append(f"{quote}{SECRET}{quote}")
        done = value_end
    out.append(text[done:])
    return "".join(out)


# -- numbers: cards, phones, SSNs ---------------------------------------------------------

# Runs of digits and the separators numbers are written with, found on a copy of the
# text where every digit is '0': a literal first character lets ``re`` skip ahead fast.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_NUMBERISH = re.compile(rb"0[0 ().\-/]{5,}0")
_GROUPS = re.compile(r"[0-9]+")
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


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _card_brand_prefix(digits) and luhn_valid(digits)


def _is_phone(number: str, digits: str) -> bool:
    if number[0] == "+":
        return 8 <= len(digits) <= 15
    if _NANP_GROUPED.fullmatch(number) or _NANP_BARE.fullmatch(number):
        return True
    if digits[:2] == "00":
        # International dialling prefix ("0044 20 7946 0958", "001-415-555-0100");
        # a separator is required so padded ids ("0001234567") stay.
        return 10 <= len(digits) - 2 <= 15 and any(c in number[:6] for c in _SEPARATORS)
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
    if _is_card(digits):
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
    out: list[str] = []
    done = i = 0
    while i < len(groups):
        start = groups[i][0]
        if start > 0 and run[start - 1] in "+(":
            start -= 1
            if start > 0 and run[start] == "(" and run[start - 1] == "+":
                start -= 1
        last = min(len(groups), i + _MAX_GROUPS_PER_NUMBER) - 1
        for j in range(last, i, -1):  # longest first; a single group was the whole check
            piece = run[start : groups[j][1]]
            placeholder = _classify(piece, id_context=id_context)
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


def _redact_numbers(text: str) -> str:
    out: list[str] = []
    done = 0
    size = len(text)
    for match in _NUMBERISH.finditer(_position_bytes(text).translate(_DIGITS_AS_ZERO)):
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


def redact_builtin(text: str) -> str:
    """``text`` with every built-in PII or secret match replaced by its typed placeholder."""
    if "-----BEGIN" in text:
        text = _PEM.sub(SECRET, text)
    lower = text.lower()
    if "bearer" in lower or "authorization" in lower:
        text = _redact_auth(text, lower)
        lower = text.lower()
    if any(hint in lower for hint in _KV_HINTS):
        text = _redact_key_values(text, lower)
    text = _redact_prefixed_tokens(text)
    if "@" in text:
        text = _redact_emails(text)
    return _redact_numbers(text)
