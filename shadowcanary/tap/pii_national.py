"""National identity numbers with a check digit, validated by python-stdnum.

Only those whose written shape is distinctive enough to find in free text without a
word announcing them, so that the check digit (not the shape) decides:

* Spain's DNI / NIE (``12345678Z``, ``X1234567L``): ``stdnum.es.nif``;
* Italy's codice fiscale (``RSSMRA85T10A562S``): ``stdnum.it.codicefiscale``;
* Brazil's CPF as printed (``123.456.789-09``): ``stdnum.br.cpf``;
* France's NIR, 15 characters (``185057800608436``, Corsica ``2A``/``2B``):
  ``stdnum.fr.nir``.

Numbers with a check digit but no distinctive shape (Poland's PESEL, the Dutch BSN,
India's Aadhaar: 9-12 bare digits) are left to the phone rules and custom patterns:
one random number in ten passes a mod-10 or mod-11 check, too many false positives
for ids, counts and timestamps.

Found on a class-mapped copy of the text (capitals -> 'A', digits -> '0', '.' and
'-' kept, the rest ' ') with ``bytes.find`` on literal shapes.
"""

from __future__ import annotations

from collections.abc import Callable

from stdnum.br import cpf
from stdnum.es import nif
from stdnum.fr import nir
from stdnum.it import codicefiscale

from shadowcanary.tap.pii_numbers import position_bytes, replace_spans

__all__ = ["NATIONAL_ID", "redact_national_ids"]

NATIONAL_ID = "[NATIONAL_ID]"

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CLASS = bytes(
    0x41
    if 0x41 <= b <= 0x5A
    else 0x30
    if 0x30 <= b <= 0x39
    else b
    if b in (0x2E, 0x2D)  # '.' and '-'
    else 0x20
    for b in range(256)
)
# (shape on the class copy, characters before the shape that belong to it, validator)
_SHAPES: tuple[tuple[bytes, int, Callable[[str], bool]], ...] = (
    (b"0000000A", 1, nif.is_valid),  # DNI: 8 digits and a letter; NIE: X/Y/Z, 7, letter
    (b"AAAAAA00A00A000A", 0, codicefiscale.is_valid),
    (b"000.000.000-00", 0, cpf.is_valid),
    (b"000000000000000", 0, nir.is_valid),
    (b"000000A00000000", 0, nir.is_valid),  # born in Corsica: department 2A / 2B
)


def _spans(text: str, classes: bytes) -> list[tuple[int, int]]:
    spans = []
    for shape, lead, valid in _SHAPES:
        at = classes.find(shape)
        while at != -1:
            start, end = at - lead if at >= lead else at, at + len(shape)
            glued_after = end < len(text) and text[end] in _WORD
            if not glued_after:
                for first in (start, at) if start != at else (at,):
                    if (first == 0 or text[first - 1] not in _WORD) and valid(text[first:end]):
                        spans.append((first, end))
                        break
            at = classes.find(shape, at + 1)
    return spans


def redact_national_ids(text: str) -> str:
    """``text`` with each DNI/NIE, codice fiscale, CPF and NIR replaced by its placeholder."""
    spans = _spans(text, position_bytes(text).translate(_CLASS))
    return replace_spans(text, spans, NATIONAL_ID) if spans else text
