"""Redaction measured on PII we did not write: Faker's, in 12 locales (issue 17).

National identity numbers (es DNI/NIE, it codice fiscale, br CPF, fr NIR) are held to
the same 99 %, though the issue did not ask for them.

Targets: recall >= 99 % for emails, phones, cards, IBANs, API keys, US SSNs and IP
addresses; negatives (order numbers, dates, versions, prices, tracking ids, UUIDs...)
untouched >= 99.5 %. Phones are held to 99 % on the numbers libphonenumber knows as
valid numbers of their country; Faker also fills its formats with random digits that
are no country's number (en_IN ``##########``, it_IT 11-digit mobiles, en_AU 8-digit
locals) and, standing alone without a word like "phone", cannot be told from a count
or an id: all Faker phones together are held to 97.5 %. ``bench/pii_recall.py``
prints the same figures at a larger size.
"""

from __future__ import annotations

import pytest

from tests.corpus.pii.faker_corpus import (
    LOCALES,
    PII_TYPES,
    LocaleScore,
    LocalItem,
    build_corpus,
    score,
)
from tests.corpus.pii.through_redis import texts_on_the_ingest_queue

TARGETS = {kind: 0.99 for kind in PII_TYPES if kind != "phone"}
PHONE_VALID_TARGET = 0.99
PHONE_ALL_FLOOR = 0.975
NEGATIVES_TARGET = 0.995


@pytest.fixture(scope="module")
def corpus() -> list[LocalItem]:
    return build_corpus(per_type=60, negatives=300)


@pytest.fixture(scope="module")
def result(corpus: list[LocalItem]) -> LocaleScore:
    return score(corpus)


def _misses(result: LocaleScore, kind: str) -> str:
    return "\n".join(
        f"  {locale}: {text!r} -> {out!r}" for locale, text, out in result.misses[kind][:15]
    )


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_recall_per_type_meets_its_target(result: LocaleScore, kind: str) -> None:
    """Each PII type Faker makes is redacted (no 6 characters of it left) in >= 99 % of texts."""
    assert result.count(kind) >= 200
    recall = result.recall(kind)
    assert recall >= TARGETS[kind], f"{kind} recall {recall:.2%}; misses:\n{_misses(result, kind)}"


def test_phone_recall_on_valid_numbers_and_on_all(result: LocaleScore) -> None:
    """Phones valid in their country are redacted in >= 99 % of texts, all Faker's in >= 97.5 %."""
    valid = result.recall("phone", style="valid")
    every = result.recall("phone")
    detail = f"valid {valid:.2%}, all {every:.2%}; misses:\n{_misses(result, 'phone')}"
    assert valid >= PHONE_VALID_TARGET, detail
    assert every >= PHONE_ALL_FLOOR, detail


def test_every_locale_is_measured(result: LocaleScore) -> None:
    """Phones, emails, cards, IBANs and IPs are measured in each of the 12 locales."""
    assert len(LOCALES) >= 10
    for kind in ("phone", "email", "card", "iban", "ip"):
        assert result.locales(kind) == list(LOCALES)


def test_hard_negatives_are_left_alone(result: LocaleScore) -> None:
    """Order numbers, dates, versions, prices, tracking ids, UUIDs... come through unchanged."""
    assert result.negatives >= 3000
    changed = "\n".join(
        f"  {locale}: {text!r} -> {out!r}" for locale, text, out in result.false_positives[:15]
    )
    assert result.negatives_untouched >= NEGATIVES_TARGET, changed


def test_corpus_is_reproducible() -> None:
    """The same seed gives the same corpus; another seed gives another."""
    assert build_corpus(per_type=3, negatives=5) == build_corpus(per_type=3, negatives=5)
    assert build_corpus(per_type=3, negatives=5) != build_corpus(seed=1, per_type=3, negatives=5)


@pytest.mark.integration
def test_the_faker_corpus_never_reaches_redis_unredacted(
    corpus: list[LocalItem], redis_url: str
) -> None:
    """Through a real Tap and a real Redis, what lands on the ingest queue meets the same
    targets: the publisher's batching changes nothing."""
    result = score(
        corpus, texts_on_the_ingest_queue([local.item.text for local in corpus], redis_url)
    )
    for kind, target in TARGETS.items():
        assert result.recall(kind) >= target, _misses(result, kind)
    assert result.recall("phone", style="valid") >= PHONE_VALID_TARGET, _misses(result, "phone")
    assert result.negatives_untouched >= NEGATIVES_TARGET, result.false_positives[:10]
