"""Bank account numbers (IBAN) and IP addresses: personal data under GDPR, found cheaply.

Both are validated by the libraries that know the rules, only where a cheap scan of a
class-mapped copy of the text (letters -> 'A', digits -> '0', hex -> 'h') found the
shape:

* IBAN: two capital letters and two digits at a word start (``AA00`` found with
  ``bytes.find``), a country python-stdnum knows, then as many characters as that
  country's IBAN has (compact, or in the groups of four it is printed in), checked
  with ``stdnum.iban`` (ISO 7064 mod 97 and the country's BBAN structure). A number
  of another length (a typo, a generator's mistake) still counts when its run of
  capitals and digits passes the mod-97 check alone (1 in 97 random runs would).
* IPv4: four dotted decimal octets not glued to other digits, dots or letters, and not
  right after a word saying it is a version; IPv6: a run of hex groups and colons
  holding at least three groups; both parsed by the standard library's ``ipaddress``.
  Loopback and unspecified addresses (``127.0.0.1``, ``::1``, ``0.0.0.0``) stay: they
  name no one and code in prompts is full of them.
"""

from __future__ import annotations

import ipaddress
import re

from stdnum import iban as _iban
from stdnum import numdb
from stdnum.iso7064 import mod_97_10

from shadowcanary.tap.pii_numbers import position_bytes, replace_spans

__all__ = ["IBAN", "IP", "redact_accounts"]

IBAN = "[IBAN]"
IP = "[IP]"

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _iban_lengths() -> dict[str, int]:
    """Each IBAN country's IBAN length, from python-stdnum's registry (``8!n10!n`` -> 22)."""
    lengths = {}
    for _, country, _, info, _ in numdb.get("iban").prefixes:
        counts = re.findall(r"(\d+)!?[nac]", info.get("bban", ""))
        if counts:
            lengths[country] = 4 + sum(int(count) for count in counts)
    return lengths


_IBAN_LENGTHS = _iban_lengths()
_IBAN_MIN, _IBAN_MAX = 15, 34  # ISO 13616
_IBAN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# Capital letters -> 'A', digits -> '0', everything else -> ' ' (one byte per character).
_UPPER_DIGIT_CLASS = bytes(
    0x41 if 0x41 <= b <= 0x5A else 0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256)
)


def _iban_spans(text: str) -> list[tuple[int, int]]:
    classes = position_bytes(text).translate(_UPPER_DIGIT_CLASS)
    spans = []
    at = classes.find(b"AA00")
    while at != -1:
        length = _IBAN_LENGTHS.get(text[at : at + 2])
        if length is not None and (at == 0 or text[at - 1] not in _WORD):
            end = _iban_end(text, at, length)
            if end is not None and _iban.is_valid(text[at:end]):
                spans.append((at, end))
                at = classes.find(b"AA00", end)
                continue
            # Not the country's length or structure (a typo, a generator's mistake):
            # still an account number if it passes the mod-97 check.
            end = _loose_iban_end(text, at)
            if end is not None:
                spans.append((at, end))
                at = classes.find(b"AA00", end)
                continue
        at = classes.find(b"AA00", at + 1)
    return spans


def _iban_end(text: str, start: int, length: int) -> int | None:
    """Where an IBAN of ``length`` characters starting at ``start`` ends, compact or in
    groups of four with single spaces; None when the text does not hold one."""
    ends = _group_ends(text, start, length)
    if not ends or ends[-1][1] != length:
        return None
    return ends[-1][0]


def _loose_iban_end(text: str, start: int) -> int | None:
    """Where the longest run from ``start`` that passes the IBAN mod-97 check ends."""
    ends = _group_ends(text, start, _IBAN_MAX)
    compact = text[start : ends[-1][0]].replace(" ", "") if ends else ""
    for end, taken in reversed(ends):
        if taken >= _IBAN_MIN and mod_97_10.is_valid(compact[4:taken] + compact[:4]):
            return end
    return None


def _group_ends(text: str, start: int, limit: int) -> list[tuple[int, int]]:
    """(end, characters so far) after each group of capitals and digits from ``start``,
    compact or in groups of four with single spaces, up to ``limit`` characters; empty
    when the run is glued to a word character."""
    ends: list[tuple[int, int]] = []
    taken, i, size = 0, start, len(text)
    while taken < limit and i < size:
        char = text[i]
        if char == " " and taken % 4 == 0 and i + 1 < size and text[i + 1] in _IBAN_CHARS:
            ends.append((i, taken))
            i += 1
            continue
        if char not in _IBAN_CHARS:
            break
        taken += 1
        i += 1
    if i < size and text[i] in _WORD:
        return ends  # glued to more: only the groups before a space count
    ends.append((i, taken))
    return ends


# -- IP addresses ----------------------------------------------------------------------

# The middle of a dotted quad, on a copy where every digit is '0': starting with a
# literal '.', ``re`` skips ahead at C speed (a lookbehind first would not).
_IPV4_MIDDLE = re.compile(rb"\.0{1,3}\.0{1,3}\.")
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_WORD_OR_DOT = _WORD | {"."}
_DOT_DIGITS = frozenset("." + d for d in "0123456789")
_VERSION_WORDS = ("version", "ver", "v", "build", "release", "rev", "firmware", "os")
_HEX_CLASS = bytes(
    0x68
    if chr(b) in "0123456789abcdefABCDEF"
    else 0x3A
    if b == 0x3A
    else 0x2E
    if b == 0x2E
    else 0x20
    for b in range(256)
)
# Two colons with at most four hex digits between them: in every IPv6 address.
_IPV6_SEED = re.compile(rb":h{0,4}:")
_IPV6_RUN = re.compile(r"[0-9A-Fa-f:.]+")


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (address.is_loopback or address.is_unspecified)


def _after_version_word(text: str, start: int) -> bool:
    before = text[max(0, start - 12) : start].lower()
    before = before[before.rfind("\x00") + 1 :].rstrip(" :=")  # texts are joined with NUL
    word = before.rsplit(None, 1)[-1] if before.split() else ""
    return word.strip("(\"'") in _VERSION_WORDS


def _ipv4_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    zeros = position_bytes(text).translate(_DIGITS_AS_ZERO)
    size = len(zeros)
    for match in _IPV4_MIDDLE.finditer(zeros):
        start, end = match.span()
        first = start
        while first > 0 and start - first < 3 and zeros[first - 1] == 0x30:
            first -= 1
        last = end
        while last < size and last - end < 3 and zeros[last] == 0x30:
            last += 1
        if first == start or last == end:
            continue
        if (first and text[first - 1] in _WORD_OR_DOT) or (
            last < size and (text[last] in _WORD or text[last : last + 2] in _DOT_DIGITS)
        ):
            continue  # "1.2.3.4.5", "v1.2.3.4", a longer number
        try:
            address = ipaddress.IPv4Address(text[first:last])
        except ValueError:
            continue  # an octet above 255, or a leading zero: a version or a code
        if _public(address) and not _after_version_word(text, first):
            spans.append((first, last))
    return spans


def _ipv6_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    classes = position_bytes(text).translate(_HEX_CLASS)
    done = 0
    for seed in _IPV6_SEED.finditer(classes):
        if seed.start() < done:
            continue
        start = seed.start()
        while start > 0 and classes[start - 1] in b"h:.":
            start -= 1
        run = _IPV6_RUN.match(text, start)
        if run is None:
            continue
        end = run.end()
        done = end
        candidate = run.group().rstrip(".")
        if (start and text[start - 1] in _WORD) or (end < len(text) and text[end] in _WORD):
            continue  # "std::vector", "a1::b2c" in code
        if sum(1 for group in candidate.split(":") if group) < 3:
            continue  # "1::2" is a slice, "::1" loopback
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue  # a time (10:41:00), a MAC address
        if _public(address):
            spans.append((start, start + len(candidate)))
    return spans


def redact_accounts(text: str) -> str:
    """``text`` with IBANs replaced by ``[IBAN]`` and IP addresses by ``[IP]``."""
    spans = _iban_spans(text)
    if spans:
        text = replace_spans(text, spans, IBAN)
    if "." in text:
        spans = _ipv4_spans(text)
        if spans:
            text = replace_spans(text, spans, IP)
    if "::" in text or text.count(":") >= 7:
        spans = _ipv6_spans(text)
        if spans:
            text = replace_spans(text, spans, IP)
    return text
