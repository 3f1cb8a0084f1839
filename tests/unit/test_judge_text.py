"""Text scorers: normalisation, matching, similarity, refusal and length."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shadowcanary.judge.text import (
    cosine_similarity,
    exact_match,
    length_ratio,
    lexical_similarity,
    looks_like_refusal,
    normalize,
    normalized_match,
    normalized_tokens,
    token_similarity,
)

LOREM_A = (
    "Kubernetes schedules pods onto nodes according to resource requests, "
    "taints, tolerations and affinity rules declared in the pod specification."
)
LOREM_B = (
    "Sourdough bread needs a lively starter, patient fermentation overnight "
    "and a very hot oven with steam for a crisp crust."
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        (None, ""),
        ("   \n\t  ", ""),
        ("Hello", "hello"),
        ("  Hello,   WORLD!  ", "hello world"),
        ("line one\nline two\r\n\tline three", "line one line two line three"),
        ("Don't stop", "dont stop"),
        ("Don\u2019t stop", "dont stop"),
        ("1,000 users", "1000 users"),
        ("\u201cquoted\u201d \u2014 dash", "quoted dash"),
        ("\uff28\uff45\uff4c\uff4c\uff4f", "hello"),  # full-width letters (NFKC)
        ("\ufb01ne", "fine"),  # "fi" ligature (NFKC)
        ("Stra\u00dfe", "strasse"),  # casefold, not lower
        ("caf\u00e9", "caf\u00e9"),
        ("cafe\u0301", "caf\u00e9"),  # combining accent composes under NFKC
        ("zero\u200bwidth", "zerowidth"),  # format character removed
        ("\ufeffBOM first", "bom first"),
        ("price: $5 + tax = ~6 | <ok>", "price 5 tax 6 ok"),
        ("\u00a0non\u00a0breaking\u2003spaces", "non breaking spaces"),
        ("\u00bfQu\u00e9 tal? \u00a1Bien!", "qu\u00e9 tal bien"),
        ("\u4f60\u597d\uff0c\u4e16\u754c\u3002", "\u4f60\u597d\u4e16\u754c"),
        ("rocket \U0001f680 stays", "rocket \U0001f680 stays"),  # emoji is a symbol, kept
        ("\U00010100x", "x"),  # astral punctuation (Aegean word separator) removed
        ("lone \ud800 surrogate", "lone \ud800 surrogate"),
        ("...", ""),
        ("**bold** and `code`", "bold and code"),
    ],
)
def test_normalize(text: str | None, expected: str) -> None:
    """normalize applies NFKC, casefold, punctuation/format removal and space collapsing."""
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        (None, ()),
        ("", ()),
        ("  ", ()),
        ("A b, C.", ("a", "b", "c")),
        ("x\u3000y", ("x", "y")),  # ideographic space splits
    ],
)
def test_normalized_tokens(text: str | None, tokens: tuple[str, ...]) -> None:
    """normalized_tokens are the words of normalize."""
    assert normalized_tokens(text) == tokens


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", True),
        (None, None, True),
        (None, "", True),
        ("Paris", "Paris", True),
        ("Paris", "paris", False),
        ("Paris", "Paris ", False),
        ("Paris", None, False),
        ("caf\u00e9", "cafe\u0301", False),  # different code points
        ("\U0001f680", "\U0001f680", True),
    ],
)
def test_exact_match(a: str | None, b: str | None, expected: bool) -> None:
    """exact_match compares code points, None counting as empty."""
    assert exact_match(a, b) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", True),
        (None, "  \n", True),
        ("Paris", "paris.", True),
        ("The answer is 42.", "the   answer is 42", True),
        ("caf\u00e9", "CAFE\u0301", True),
        ("Paris", "Lyon", False),
        ("42", "4 2", False),
        ("Paris", "", False),
        ("don't", "do not", False),
    ],
)
def test_normalized_match(a: str | None, b: str | None, expected: bool) -> None:
    """normalized_match ignores case, whitespace, punctuation and Unicode form."""
    assert normalized_match(a, b) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 1.0),
        (None, None, 1.0),
        (None, "", 1.0),
        ("   ", "\n", 1.0),
        ("Paris", "", 0.0),
        ("", "Paris", 0.0),
        ("Paris", "paris!", 1.0),
        ("Paris", "Lyon", 0.0),
        ("the cat sat", "the cat sat", 1.0),
        ("the cat sat", "the dog sat", 2 / 3),
        ("a b c d", "a b", 2 * 2 / 6),
        ("a b", "b a", 2 * 1 / 4),  # order matters, as in a diff
        ("\u4f60\u597d", "\u4f60\u597d", 1.0),
        (LOREM_A, LOREM_A.upper(), 1.0),
    ],
)
def test_lexical_similarity_table(a: str | None, b: str | None, expected: float) -> None:
    """lexical_similarity is 2*LCS/(len a + len b) over normalised words."""
    assert lexical_similarity(a, b) == pytest.approx(expected)


def test_lexical_similarity_identical_long_text_is_one() -> None:
    """Identical ~2k-character texts score exactly 1.0."""
    text = (LOREM_A + " ") * 14
    assert len(text) > 2000
    assert lexical_similarity(text, text) == 1.0


def test_lexical_similarity_unrelated_texts_is_low() -> None:
    """Unrelated texts score low (word-level, so shared letters do not count)."""
    assert lexical_similarity(LOREM_A, LOREM_B) < 0.15


def test_lexical_similarity_is_symmetric_and_bounded() -> None:
    """Similarity is symmetric and stays within [0, 1]."""
    pairs = [(LOREM_A, LOREM_B), ("a b c", "c b a"), ("x", "x y z"), ("", "q")]
    for a, b in pairs:
        forward, backward = lexical_similarity(a, b), lexical_similarity(b, a)
        assert forward == pytest.approx(backward)
        assert 0.0 <= forward <= 1.0


def test_lexical_similarity_small_edit_scores_high() -> None:
    """A one-word edit in a long answer keeps similarity close to 1."""
    edited = LOREM_A.replace("nodes", "machines")
    assert 0.9 < lexical_similarity(LOREM_A, edited) < 1.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((), (), 1.0),
        (("x",), (), 0.0),
        (("x", "y"), ("x", "y"), 1.0),
        (("x", "y"), ("y", "z"), 0.5),
    ],
)
def test_token_similarity(a: tuple[str, ...], b: tuple[str, ...], expected: float) -> None:
    """token_similarity works on pre-normalised token sequences."""
    assert token_similarity(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("u", "v", "expected"),
    [
        ([1.0, 0.0], [1.0, 0.0], 1.0),
        ([1.0, 0.0], [0.0, 1.0], 0.0),
        ([1.0, 0.0], [-1.0, 0.0], -1.0),
        ([1.0, 1.0], [1.0, 0.0], 1 / math.sqrt(2)),
        ([3.0, 4.0], [6.0, 8.0], 1.0),  # scale does not matter
        ([0.0, 0.0], [1.0, 2.0], 0.0),  # zero vector: no direction
        ([0.0, 0.0], [0.0, 0.0], 0.0),
        ([], [], 0.0),
        ([1, 2, 3], [1, 2, 3], 1.0),  # ints accepted
        ([1e-300, 1e-300], [1e-300, 1e-300], 1.0),  # tiny: no underflow to 0
        ([1e300, -1e300], [1e300, 1e300], 0.0),  # huge: no overflow to inf
        ([0.1] * 1536, [0.1] * 1536, 1.0),  # identical, rounding clipped to 1
    ],
)
def test_cosine_similarity(u: list[float], v: list[float], expected: float) -> None:
    """cosine_similarity is the cosine of the angle, 0.0 for zero vectors."""
    result = cosine_similarity(u, v)
    assert result == pytest.approx(expected)
    assert -1.0 <= result <= 1.0


@pytest.mark.parametrize(
    ("u", "v", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "dimensions differ"),
        ([1.0], [], "dimensions differ"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "flat vectors"),
        ([float("nan"), 1.0], [1.0, 1.0], "NaN or infinite"),
        ([1.0, 1.0], [float("inf"), 1.0], "NaN or infinite"),
    ],
)
def test_cosine_similarity_rejects_bad_vectors(u: list[Any], v: list[Any], message: str) -> None:
    """Mismatched, non-flat or non-finite vectors raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        cosine_similarity(u, v)


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I can\u2019t help with that.",
        "i cant help with that",
        "I cannot assist with this request.",
        "I'm sorry, but I cannot help with that.",
        "I\u2019m sorry, but I can\u2019t provide that information.",
        "I am sorry, but I am unable to comply.",
        "I'm really sorry, but I won't be able to do that.",
        "Sorry, I can't do that.",
        "Sorry but I cannot write that.",
        "I apologize, but I can't generate that content.",
        "Unfortunately, I cannot share that.",
        "I'm afraid I can't do that, Dave.",
        "As an AI language model, I cannot provide medical advice.",
        "As an AI, I can't give legal advice.",
        "I'm unable to help with this.",
        "I'm not able to assist with that.",
        "We cannot help with that.",
        "I must decline.",
        "I have to respectfully decline this request.",
        "I understand your frustration. However, I cannot help with that.",
        "No, I won't do that.",
        "**I can't help with that.**",
        '"I cannot assist with that request."',
        "  \n  I CAN'T HELP WITH THAT.",
    ],
)
def test_looks_like_refusal_detects_refusals(text: str) -> None:
    """Common English refusals at the start of an answer are detected."""
    assert looks_like_refusal(text) is True


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "Paris.",
        "Sorry for the confusion, the answer is 4.",
        "I'm sorry to hear that. Try restarting the router.",
        "Sorry! I misread the question: it is 42.",
        "I can't help but notice the off-by-one error.",
        "I cannot stress this enough: back up your data.",
        "I can't believe how fast this is.",
        "I cannot find the file you mentioned in the context.",
        "I'm sorry, but I can't find any record of that order.",
        "The error message says: I can't help with that.",
        "The bot replied 'I can't help with that' which is a known bug.",
        "Nobody can help with that except the vendor.",
        "Can I help with that? Yes: run `make test`.",
        "Here is a long answer. " * 20 + "I can't help with that.",
        "No me es posible ayudar con eso.",  # non-English: out of scope
    ],
)
def test_looks_like_refusal_leaves_ordinary_answers(text: str | None) -> None:
    """Ordinary apologies, idioms, quotes and late mentions are not refusals."""
    assert looks_like_refusal(text) is False


@pytest.mark.parametrize(
    ("reference", "other", "expected"),
    [
        ("abcd", "ab", 0.5),
        ("ab", "abcd", 2.0),
        ("abc", "abc", 1.0),
        ("", "", 1.0),
        ("", "x", None),
        ("x", "", 0.0),
        (None, "x", None),
        ("x", None, None),
        (None, None, None),
        ("\U0001f680\U0001f680", "\U0001f680", 0.5),  # characters, not bytes
    ],
)
def test_length_ratio(reference: str | None, other: str | None, expected: float | None) -> None:
    """length_ratio is len(other)/len(reference), None where undefined."""
    result = length_ratio(reference, other)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)
