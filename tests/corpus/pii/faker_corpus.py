"""An independent PII corpus: values from Faker (a third-party generator), in 12 locales.

``corpus.py`` was written by the same hands as the detectors; this one is not. Every
PII value comes from Faker's own providers for its locale (``phone_number``,
``email``, ``credit_card_number``, ``iban``, ``ssn``, ``ipv4``/``ipv6``), as Faker
writes it, and is embedded in Faker-made sentences of the locale's language with
varied frames, some with a cue word ("phone", "IBAN") and some without. API keys
follow the vendors' documented formats (prefix, alphabet, length) with Faker's
random characters: no library generates them.

Hard negatives are Faker values that look like PII to a careless detector and are
not: order numbers, dates and times, versions, prices (``pricetag``), tracking ids,
EAN/ISBN codes, UUIDs, hashes, postcodes, BIC codes, card expiry dates, lists of
numbers.

The same seed and Faker version always give the same corpus (Faker seeds per
instance; its data can change between major versions, which moves the figures a
little, never the targets).
"""

from __future__ import annotations

import random
import string
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import phonenumbers
from faker import Faker

from tests.corpus.pii.corpus import Item, leaked, redact_like_the_tap

SEED = 17_2026
_FIRST_DAY, _LAST_DAY = datetime(2015, 1, 1), datetime(2026, 12, 31)
LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "pt_BR",
    "pl_PL",
    "ja_JP",
    "en_IN",
    "en_AU",
)
PII_TYPES = ("email", "phone", "card", "iban", "api_key", "ssn", "ip", "national_id")
# Identity numbers with a check digit and a distinctive shape, by the locale that has them.
_NATIONAL_IDS = {"es_ES": ("nif", "nie"), "it_IT": ("ssn",), "pt_BR": ("cpf",), "fr_FR": ("ssn",)}
# Faker's card types (it writes them bare, as most forms and logs do).
_CARD_TYPES = (
    "visa13",
    "visa16",
    "visa19",
    "mastercard",
    "amex",
    "discover",
    "diners",
    "jcb15",
    "jcb16",
    "maestro",
)

# Frames around a value: {v} is the value, {s} a Faker sentence of the locale. Some name
# the kind of value, some do not, some are structured (JSON, CSV, headers, logs).
_FRAMES = {
    "email": [
        "{s} Contact me at {v} please.",
        "{v}",
        "{s} ({v})",
        "Email: {v}. {s}",
        '{{"user": {{"email": "{v}"}}, "note": "{s}"}}',
        "From: {v}\nSubject: {s}",
        "{s} Write to {v}, {s}",
        "name,{v},active",
    ],
    "phone": [
        "{s} Call me at {v}.",
        "{v}",
        "{s} {v}",
        "Tel: {v}",
        "{s} My number is {v}, {s}",
        '{{"phone": "{v}", "comment": "{s}"}}',
        "{v} ({s})",
        "reach me on {v} after five. {s}",
        "contact,{v},weekdays",
        "{s} — {v}",
    ],
    "card": [
        "{s} card number {v}",
        "{v}",
        "{s} Please charge {v} for the order.",
        '{{"pan": "{v}", "memo": "{s}"}}',
        "{s} pay with {v} exp 04/29",
        "card={v}&amount=12.50",
        "{s} {v}",
    ],
    "iban": [
        "{s} IBAN {v}",
        "{v}",
        "{s} Please transfer the refund to {v}. {s}",
        '{{"account": "{v}", "note": "{s}"}}',
        "{s} {v}",
        "beneficiary;{v};EUR",
    ],
    "api_key": [
        "{s} my key is {v}",
        "{v}",
        "export API_KEY={v}",
        '{{"api_key": "{v}"}}',
        "{s} use {v} for the test",
        "client = Client('{v}')",
        "{s}\n{v}\n{s}",
    ],
    "ssn": [
        "{s} SSN {v}",
        "{v}",
        "{s} My social security number is {v}.",
        '{{"ssn": "{v}", "note": "{s}"}}',
        "{s} {v}",
        "applicant,{v},approved",
    ],
    "national_id": [
        "{s} ID {v}",
        "{v}",
        "{s} My tax number is {v}.",
        '{{"document": "{v}", "note": "{s}"}}',
        "{s} {v}",
        "holder;{v};verified",
    ],
    "ip": [
        "{s} The request came from {v}.",
        "{v}",
        "{s} {v} - - [07/Dec/2026:10:41:00 +0000] GET /login",
        '{{"client_ip": "{v}", "msg": "{s}"}}',
        "ssh deploy@{v} failed: {s}",
        "{s} (from {v})",
    ],
}


@dataclass(frozen=True)
class LocalItem:
    """A corpus item and the Faker locale it was made in."""

    item: Item
    locale: str


def _api_key(fake: Faker) -> tuple[str, str]:
    """A key in one of eight vendors' documented formats, the random part from Faker."""
    alnum = string.ascii_letters + string.digits

    def chars(n: int, alphabet: str = alnum) -> str:
        return "".join(fake.random_element(alphabet) for _ in range(n))

    vendor = fake.random_element(
        ["openai", "anthropic", "aws", "github", "stripe", "slack", "google", "gitlab"]
    )
    value = {
        "openai": "sk-proj-" + chars(156, alnum + "-_"),
        "anthropic": "sk-ant-api03-" + chars(93, alnum + "-_") + "AA",
        "aws": "AKIA" + chars(16, string.ascii_uppercase + "234567"),
        "github": "ghp_" + chars(36),
        "stripe": "sk_live_" + chars(99),
        "slack": f"xoxb-{fake.numerify('#' * 12)}-{fake.numerify('#' * 13)}-{chars(24)}",
        "google": "AIza" + chars(35, alnum + "-_"),
        "gitlab": "glpat-" + chars(20, alnum + "-_"),
    }[vendor]
    return value, vendor


def _valid_in(number: str, locale: str) -> bool:
    """Whether libphonenumber knows ``number`` as a valid number of the locale's country."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, locale[-2:]))
    except phonenumbers.NumberParseException:
        return False


def _value(fake: Faker, kind: str, locale: str) -> tuple[str, str]:
    """(value, style) of one PII value of ``kind`` made by Faker in ``locale``."""
    if kind == "email":
        method = fake.random_element(["email", "free_email", "company_email", "ascii_email"])
        return getattr(fake, method)(), method
    if kind == "phone":
        # Faker fills its formats with random digits: some are no number of the country.
        # Labelled (not filtered) so recall can be read on both.
        number = fake.phone_number()
        return number, "valid" if _valid_in(number, locale) else "not_in_numbering_plan"
    if kind == "card":
        card_type = fake.random_element(_CARD_TYPES)
        return fake.credit_card_number(card_type=card_type), card_type
    if kind == "iban":
        iban = fake.iban()
        if fake.boolean():  # the paper format: groups of four (ISO 13616)
            return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)), "grouped"
        return iban, "compact"
    if kind == "api_key":
        return _api_key(fake)
    if kind == "ssn":
        return fake.ssn(), "ssn"
    if kind == "national_id":
        method = fake.random_element(_NATIONAL_IDS[locale])
        return getattr(fake, method)(), f"{locale}:{method}"
    method = fake.random_element(["ipv4", "ipv4_public", "ipv4_private", "ipv6"])
    return getattr(fake, method)(), method


def _negative(fake: Faker) -> tuple[str, str]:
    """(text, style): a text holding no PII that numbers- or token-hungry detectors hit."""

    def moment() -> datetime:
        # Between fixed bounds: Faker's defaults are relative to now (not reproducible).
        return fake.date_time_between(_FIRST_DAY, _LAST_DAY)

    style = fake.random_element(
        [
            "order",
            "date",
            "time",
            "version",
            "price",
            "tracking",
            "ean",
            "isbn",
            "uuid",
            "hash",
            "postcode",
            "bic",
            "expiry",
            "numbers",
            "address",
            "quantity",
            "unlabelled",
        ]
    )
    text = {
        "order": fake.random_element(
            [
                f"Order #{fake.random_number(digits=9, fix_len=True)} has shipped.",
                f"order {fake.random_number(digits=10, fix_len=True)} is delayed",
                f"Your order number is {fake.bothify('??-########').upper()}.",
                f"Invoice {fake.numerify('####-######')} is attached.",
            ]
        ),
        "date": fake.random_element(
            [
                f"Delivered on {moment():%Y-%m-%d}.",
                f"meeting {moment():%d.%m.%Y} at noon",
                f"created_at={moment().isoformat()}",
                f"from {moment():%d/%m/%Y} to {moment():%d/%m/%Y}",
                f"{moment():%d} {fake.month_name()} {moment():%Y}",
            ]
        ),
        "time": f"{moment():%H:%M:%S} {fake.sentence()}",
        "version": fake.random_element(
            [
                f"upgrade to v{fake.numerify('#.##.#')}",
                f"running version {fake.numerify('#.#.##')} on Python 3.11.7",
                f"build {fake.numerify('##.#.#####.####')}",
                f"chrome/{fake.numerify('1##.0.####.##')} safari/537.36",
            ]
        ),
        "price": f"{fake.sentence()} Total: {fake.pricetag()}",
        "tracking": fake.random_element(
            [
                f"tracking {fake.bothify('1Z###??#########').upper()}",
                f"parcel {fake.bothify('??#########??').upper()}",
                f"shipment {fake.numerify('#### #### #### #### ####')}",
            ]
        ),
        "ean": f"EAN {fake.ean13()}",
        "isbn": f"ISBN {fake.isbn13()}",
        "uuid": f"request_id={fake.uuid4()}",
        "hash": fake.random_element([f"sha1 {fake.sha1()}", f"md5: {fake.md5()}"]),
        "postcode": f"{fake.city()} {fake.postcode()}",
        "bic": f"BIC {fake.swift()}",
        "expiry": f"expires {moment():%m/%y}",
        "numbers": "values: " + ", ".join(str(fake.random_int(0, 999)) for _ in range(8)),
        "address": fake.street_address(),
        # Codes with no word saying what they are: the detectors get no hint.
        "unlabelled": fake.random_element(
            [
                f"{fake.sentence()} {fake.isbn13()}",
                f"{fake.sentence()} ({fake.ean13()})",
                f"{fake.numerify('#### #### #### #### ####')} {fake.sentence()}",
                f"{fake.sentence()} {moment():%Y%m%d}-{fake.numerify('####')}",
                f"{fake.sentence()} {fake.numerify('#.##.###')}",
            ]
        ),
        "quantity": f"{fake.random_int(2, 999)} units at {fake.pyfloat(2, 2, positive=True)} each",
    }[style]
    return text, style


def build_corpus(seed: int = SEED, per_type: int = 60, negatives: int = 300) -> list[LocalItem]:
    """``per_type`` items of each PII type per locale, then ``negatives`` per locale.

    SSNs are US numbers: they come from ``en_US`` only (``per_type`` x 4 of them);
    national ids from the four locales of ``_NATIONAL_IDS``.
    """
    items: list[LocalItem] = []
    rng = random.Random(seed)
    for index, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed + index)
        for kind in PII_TYPES:
            if (kind == "ssn" and locale != "en_US") or (
                kind == "national_id" and locale not in _NATIONAL_IDS
            ):
                continue
            count = per_type * 4 if kind == "ssn" else per_type
            for _ in range(count):
                value, style = _value(fake, kind, locale)
                frame = rng.choice(_FRAMES[kind])
                text = frame.format(v=value, s=fake.sentence())
                items.append(LocalItem(Item(kind, text, value, style), locale))
        for _ in range(negatives):
            text, style = _negative(fake)
            items.append(LocalItem(Item("negative", text, "", style), locale))
    return items


@dataclass
class LocaleScore:
    """Each PII item and whether it leaked; the negatives the redaction changed."""

    outcomes: list[tuple[LocalItem, bool]] = field(default_factory=list)
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)
    misses: dict[str, list[tuple[str, str, str]]] = field(default_factory=lambda: defaultdict(list))
    negatives: int = 0

    def recall(self, kind: str, locale: str | None = None, style: str | None = None) -> float:
        """Share of the ``kind`` items (of ``locale``, of ``style``) that did not leak."""
        leaks = [
            leaked_
            for local, leaked_ in self.outcomes
            if local.item.kind == kind
            and locale in (None, local.locale)
            and style in (None, local.item.style)
        ]
        return 1 - sum(leaks) / len(leaks) if leaks else 1.0

    def count(self, kind: str, locale: str | None = None) -> int:
        return sum(
            1
            for local, _ in self.outcomes
            if local.item.kind == kind and locale in (None, local.locale)
        )

    def locales(self, kind: str) -> list[str]:
        return list(dict.fromkeys(x.locale for x, _ in self.outcomes if x.item.kind == kind))

    def worst_locale(self, kind: str) -> tuple[str, float]:
        return min(
            ((locale, self.recall(kind, locale)) for locale in self.locales(kind)),
            key=lambda pair: pair[1],
        )

    @property
    def negatives_untouched(self) -> float:
        return 1 - len(self.false_positives) / self.negatives


def score(items: list[LocalItem], redacted_texts: list[str] | None = None) -> LocaleScore:
    """Recall per type and locale of the tap's redaction (or of ``redacted_texts``)."""
    if redacted_texts is None:
        redacted_texts = redact_like_the_tap([local.item.text for local in items])
    result = LocaleScore()
    for local, redacted in zip(items, redacted_texts, strict=True):
        item = local.item
        if item.kind == "negative":
            result.negatives += 1
            if redacted != item.text:
                result.false_positives.append((local.locale, item.text, redacted))
            continue
        leak = leaked(item, redacted)
        result.outcomes.append((local, leak))
        if leak:
            result.misses[item.kind].append((local.locale, item.text, redacted))
    return result
