"""Text scorers: matching, lexical and embedding similarity, refusal and length.

Pure functions: no I/O, no clock, no randomness. ``None`` texts (an answer that was
only tool calls) count as the empty string wherever a number must come out.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import Indel

# Planes 0, 1 and 14 hold every punctuation (P*) and format (Cf) character Unicode
# defines; scanning only them keeps the one-off build near 30 ms, not 250 ms.
_SCANNED_PLANES = (range(0x20000), range(0xE0000, 0xE1000))
_UNICODE_SIZE = 0x110000
# Prefix of an answer searched for a refusal: refusals open the answer, and looking
# further finds quoted or hypothetical refusals inside ordinary answers.
_REFUSAL_WINDOW_CHARS = 300


@dataclass(frozen=True, slots=True)
class _Deleters:
    """What normalisation deletes, in the two forms that are fast on their kind of text.

    ``str.translate`` is fast only on ASCII text; for anything else a read-only
    boolean lookup table indexed by code point does the whole text in one numpy step.
    """

    ascii_table: Mapping[int, None]
    deleted: npt.NDArray[np.bool_]  # deleted[code_point]


@functools.cache
def _deleters() -> _Deleters:
    """Built on first use so importing the judge stays cheap.

    ASCII symbols (``$+<=>^`|~``) go too, as in SQuAD's answer normalisation; format
    characters (zero-width space, BOM, soft hyphen) are invisible and only add noise.
    """
    deleted = np.zeros(_UNICODE_SIZE, dtype=np.bool_)
    for char in string.punctuation:
        deleted[ord(char)] = True
    for plane in _SCANNED_PLANES:
        for code_point in plane:
            category = unicodedata.category(chr(code_point))
            if category[0] == "P" or category == "Cf":
                deleted[code_point] = True
    deleted.flags.writeable = False
    ascii_table = MappingProxyType({cp: None for cp in range(0x80) if deleted[cp]})
    return _Deleters(ascii_table=ascii_table, deleted=deleted)


def _delete_punctuation(text: str) -> str:
    deleters = _deleters()
    if text.isascii():
        return text.translate(deleters.ascii_table)
    # surrogatepass: a lone surrogate in model output must not make scoring fail.
    code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kept = code_points[~deleters.deleted[code_points]]
    return kept.tobytes().decode("utf-32-le", "surrogatepass")


def normalized_tokens(text: str | None) -> tuple[str, ...]:
    """The words of :func:`normalize` (computed once per text when scoring a pair)."""
    if not text:
        return ()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return tuple(_delete_punctuation(folded).split())


def normalize(text: str | None) -> str:
    """Canonical form for comparison: NFKC, case-folded, punctuation removed, spaces collapsed.

    Punctuation is deleted rather than turned into a space so that ``don't`` and
    ``dont``, or ``1,000`` and ``1000``, compare equal.
    """
    return " ".join(normalized_tokens(text))


def exact_match(a: str | None, b: str | None) -> bool:
    """Byte-for-byte equal texts (``None`` counts as empty)."""
    return (a or "") == (b or "")


def normalized_match(a: str | None, b: str | None) -> bool:
    """Equal after :func:`normalize`."""
    return normalized_tokens(a) == normalized_tokens(b)


def token_similarity(a_tokens: Sequence[str], b_tokens: Sequence[str]) -> float:
    """Similarity of two token sequences: 2·LCS / (len(a) + len(b)), in [0, 1].

    Two empty sequences are identical (1.0). Order matters, as in a diff.
    """
    return float(Indel.normalized_similarity(a_tokens, b_tokens))


def lexical_similarity(a: str | None, b: str | None) -> float:
    """Word-level similarity of two answers in [0, 1]; 1.0 when they normalise equal.

    The measure is the Indel (insert/delete) similarity over normalised words, i.e.
    the share of words in a longest common subsequence. Words rather than characters
    so that unrelated English texts score low instead of ~0.5 from shared letters.
    """
    return token_similarity(normalized_tokens(a), normalized_tokens(b))


def cosine_similarity(u: Sequence[float], v: Sequence[float]) -> float:
    """Cosine of the angle between two embedding vectors, in [-1, 1].

    Returns 0.0 when either vector is all zeros (no direction to compare).

    Raises:
        ValueError: the vectors are not one-dimensional, differ in length or hold
            NaN/infinite values.
    """
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(
            f"embeddings must be flat vectors, got shapes {a.shape} and {b.shape}; "
            "pass one vector per text"
        )
    if a.shape != b.shape:
        raise ValueError(
            f"embedding dimensions differ ({a.shape[0]} vs {b.shape[0]}); "
            "both texts must be embedded by the same model"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("embeddings contain NaN or infinite values; check the embeddings endpoint")
    a_scale, b_scale = float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0))
    if a_scale == 0.0 or b_scale == 0.0:
        return 0.0
    # Cosine ignores scale; dividing by the largest component first keeps the norms
    # from underflowing to 0 or overflowing to inf on extreme magnitudes.
    a, b = a / a_scale, b / b_scale
    cosine = float(np.dot(a, b)) / (float(np.linalg.norm(a)) * float(np.linalg.norm(b)))
    # Rounding can push identical vectors a hair past 1.
    return min(1.0, max(-1.0, cosine))


def length_ratio(reference: str | None, other: str | None) -> float | None:
    """``len(other) / len(reference)`` in characters.

    ``None`` when either text is missing or the reference is empty but the other is
    not (the ratio is undefined); two empty texts have ratio 1.0.
    """
    if reference is None or other is None:
        return None
    if not reference:
        return 1.0 if not other else None
    return len(other) / len(reference)


_SUBJECT_CANNOT = (
    r"(?:i|we)(?:"
    r" (?:can'?t|cannot|can not|won'?t|will not|am not going to|must decline to"
    r"|(?:won'?t|will not) be able to|(?:am|are) (?:unable|not able) to)"
    r"|'(?:m|re) (?:unable|not able|not going) to"
    r")"
)
_REFUSED_ACTION = (
    r"(?:help|assist|comply|provide|fulfill?|support|do|answer|engage|create|generate"
    r"|write|produce|share|give|participate|complete|continue|discuss|offer|respond)"
)
_APOLOGY = (
    r"(?:(?:i'm|i am) (?:so |very |really |truly )?sorry|sorry|i apologi[sz]e"
    r"|unfortunately|(?:i'm|i am) afraid)"
)
_OBJECT = r"(?:(?:you )?with )?(?:that|this|it|your|these|those|such|the request|requests)\b"
_SENTENCE_START = r"(?:^|(?<=[.!?] ))(?:(?:however|but|sadly|regrettably|no),? )?"
_REFUSAL = re.compile(
    _SENTENCE_START
    + r"(?:"
    # "I'm sorry, but I can't help with ...", "Unfortunately, I cannot provide ..."
    + rf"{_APOLOGY}[,.!]? (?:but )?{_SUBJECT_CANNOT} {_REFUSED_ACTION}\b"
    # "As an AI language model, I cannot ..."
    + rf"|as an ai(?: language model| model| assistant)?,? {_SUBJECT_CANNOT} {_REFUSED_ACTION}\b"
    # Bare "I can't help with that": needs an object so "I can't help but ..." passes.
    + rf"|{_SUBJECT_CANNOT} {_REFUSED_ACTION} {_OBJECT}"
    + r"|i (?:must|have to) (?:respectfully |politely )?(?:decline|refuse)\b"
    + r")"
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def looks_like_refusal(text: str | None) -> bool:
    """Whether an answer opens by declining the request, in conservative English patterns.

    Catches "I can't help with that", "I'm sorry, but I cannot ...", "As an AI
    language model, I can't ...", "I must decline". Leaves alone ordinary apologies
    ("Sorry for the confusion, the answer is 4"), "I can't help but notice", and
    refusals quoted deep inside an answer. Non-English refusals are not detected.
    """
    if not text:
        return False
    head = text[: _REFUSAL_WINDOW_CHARS * 2].translate(_APOSTROPHES).casefold()
    head = " ".join(head.split())[:_REFUSAL_WINDOW_CHARS].lstrip("\"'*_>#- ")
    return _REFUSAL.search(head) is not None
