"""A labelled PII corpus, generated deterministically, and its scoring through the tap.

Each positive item is a short prompt-like text holding exactly one PII value of a
known type (email, phone, card, api_key, ssn) written the way people write it: many
formats per type (US/UK/FR/DE/international phones, every major card brand grouped
or not, vendor API keys, bearer tokens, key=value secrets), in many sentence frames
(English, French, German, JSON, headers, shell). Negatives are texts that look
numeric or token-like but hold no PII (order numbers, timestamps, versions, UUIDs,
prices, hashes, addresses...). The same seed always gives the same corpus.

``score`` sends the texts through the tap's own redaction path
(``Redactor.redact_events_json`` on batches of events, as the publisher does) and
counts, per type, the items whose value no longer appears; for negatives, the items
left untouched.
"""

from __future__ import annotations

import random
import string
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from shadowcanary.events import CapturedCall, ChatMessage, ModelRequest, ModelResponse
from shadowcanary.tap.redaction import Redactor

SEED = 20261122
PII_TYPES = ("email", "phone", "card", "api_key", "ssn")
PLACEHOLDERS = (
    "[EMAIL]",
    "[PHONE]",
    "[CARD]",
    "[SSN]",
    "[IBAN]",
    "[IP]",
    "[NATIONAL_ID]",
    "[SECRET]",
    "[REDACTED]",
)
_ALNUM = string.ascii_letters + string.digits
_LEAK_WINDOW = 6  # this many characters of a value still readable counts as a leak


@dataclass(frozen=True)
class Item:
    kind: str  # one of PII_TYPES, or "negative"
    text: str
    value: str  # the PII inside text ("" for negatives)
    style: str  # which format produced it (for the per-format breakdown)


# -- generators ----------------------------------------------------------------------------

_FIRST = ["john", "jane", "maria", "jose", "li", "wei", "ahmed", "fatima", "olivia", "noah"]
_FIRST += ["emma", "lucas", "chloe", "hugo", "lena", "max"]
_LAST = ["smith", "garcia", "muller", "martin", "dupont", "schmidt", "nguyen", "oconnor"]
_LAST += ["kowalski", "rossi", "brown", "lee"]
_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "example.com",
    "mail.example.org",
    "eu.corp.example.net",
    "my-company.io",
    "uni-heidelberg.de",
    "orange.fr",
    "web.de",
    "students.cs.example.edu",
    "mail2.startup.ai",
    "company.travel",
    "free.fr",
]
_EMAIL_FRAMES = [
    "Contact me at {} please.",
    "my email is {}",
    "Email: {}",
    "Send the invoice to <{}>.",
    "(reply to {})",
    "mailto:{}",
    "Please write to {}, thanks!",
    "{} wrote: the order never came",
    '{{"email": "{}", "plan": "pro"}}',
    "Mon adresse : {} merci",
    "Meine E-Mail-Adresse lautet {}.",
    "CC '{}' on the ticket",
    "Reach me on {}!\nBest, J.",
    "From: Support Team <{}>",
]


def _email(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.choice(["dot", "plain", "initial", "underscore", "plus", "digits", "dash", "upper"])
    local = {
        "dot": f"{first}.{last}",
        "plain": f"{first}{last}",
        "initial": f"{first[0]}.{last}",
        "underscore": f"{first}_{last}",
        "plus": f"{first}.{last}+{rng.choice(['news', 'shop', 'work', 'x1'])}",
        "digits": f"{first}{rng.randint(1, 9999)}",
        "dash": f"{first}-{last}",
        "upper": f"{first.title()}.{last.title()}",
    }[style]
    domain = rng.choice(_DOMAINS)
    if style == "upper":
        domain = domain.upper()
    return f"{local}@{domain}", style


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _phone(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(["us", "us", "uk", "fr", "de", "intl"])
    if country == "us":
        area = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
        exchange = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
        line = _digits(rng, 4)
        fmt = rng.choice(
            [
                "({a}) {e}-{l}",
                "{a}-{e}-{l}",
                "{a}.{e}.{l}",
                "{a} {e} {l}",
                "{a}{e}{l}",
                "+1 {a} {e} {l}",
                "+1-{a}-{e}-{l}",
                "1-{a}-{e}-{l}",
                "+1 ({a}) {e}-{l}",
                "({a}){e}-{l}",
                "{a}-{e}-{l} x{x}",
                "{a}.{e}.{l}x{x}",
                "+1{a}{e}{l}",
                "+1 {a}-{e}-{l}",
                "{a} {e}-{l}",
                "({a})-{e}-{l}",
            ]
        )
        return fmt.format(a=area, e=exchange, l=line, x=_digits(rng, 3)), f"us:{fmt}"
    if country == "uk":
        mobile = f"7{_digits(rng, 3)} {_digits(rng, 6)}"
        london = f"20 {rng.randint(3, 8)}{_digits(rng, 3)} {_digits(rng, 4)}"
        city = f"1{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 4)}"
        fmt, number = rng.choice(
            [
                ("0{n}", london),
                ("+44 {n}", london),
                ("+44 (0){n}", london),
                ("0{n}", mobile),
                ("+44 {n}", mobile),
                ("+44{c}", mobile.replace(" ", "")),
                ("0{n}", city),
                ("(0{h}) {t}", city),
                ("0044 {n}", london),
                ("0{d}", mobile.replace(" ", "-")),
            ]
        )
        head, _, tail = number.partition(" ")
        formatted = fmt.format(
            n=number, c=number.replace(" ", ""), d=number.replace(" ", "-"), h=head, t=tail
        )
        return formatted, f"uk:{fmt}"
    if country == "fr":
        first = rng.choice("1234567")
        pairs = [_digits(rng, 2) for _ in range(4)]
        fmt = rng.choice(["spaces", "dots", "bare", "intl", "intl0", "e164", "dashes"])
        number = {
            "spaces": f"0{first} " + " ".join(pairs),
            "dots": f"0{first}." + ".".join(pairs),
            "bare": f"0{first}" + "".join(pairs),
            "intl": f"+33 {first} " + " ".join(pairs),
            "intl0": f"+33 (0){first} " + " ".join(pairs),
            "e164": f"+33{first}" + "".join(pairs),
            "dashes": f"0{first}-" + "-".join(pairs),
        }[fmt]
        return number, f"fr:{fmt}"
    if country == "de":
        area = rng.choice(["30", "89", "40", "221", "69", "711", "151", "160", "172", "6221"])
        subscriber = _digits(rng, 11 - len(area) - rng.randint(0, 2))
        fmt = rng.choice(
            [
                "0{a} {s}",
                "+49 {a} {s}",
                "+49 (0){a} {s}",
                "0{a}/{s}",
                "(0{a}) {s}",
                "0{a}-{s}",
                "+49{a}{s}",
                "0{a} {s1} {s2}",
                "+49-{a}-{s}",
            ]
        )
        half = len(subscriber) // 2
        number = fmt.format(a=area, s=subscriber, s1=subscriber[:half], s2=subscriber[half:])
        return number, f"de:{fmt}"
    fmt = rng.choice(
        [
            "+91 9{a} {b}",
            "+61 2 {c} {d}",
            "+81 3-{c}-{d}",
            "+34 6{e} {f} {f} {f}",
            "+39 06 {c} {d}",
            "+55 11 9{c}-{d}",
            "+353 87 {e} {d}",
        ]
    )
    number = fmt.format(
        a=_digits(rng, 4),
        b=_digits(rng, 5),
        c=_digits(rng, 4),
        d=_digits(rng, 4),
        e=_digits(rng, 2),
        f=_digits(rng, 2),
    )
    return number, f"intl:{fmt}"


_PHONE_FRAMES = [
    "call me at {}",
    "Phone: {}",
    "Tel. {}",
    "my number is {} if anything goes wrong",
    "reach me on {} after 5pm",
    "mobile {}",
    "Rufen Sie mich unter {} an.",
    "Appelez-moi au {} svp",
    "(cell: {})",
    "{} (office)",
    '{{"phone": "{}"}}',
    "Contact: Jane, {}, weekdays only",
]


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return body + str((10 - total % 10) % 10)


_BRANDS = [
    ("visa", ["4"], [16, 16, 13, 19]),
    ("mastercard", ["51", "52", "53", "54", "55", "2221", "2500", "2720"], [16]),
    ("amex", ["34", "37"], [15]),
    ("discover", ["6011", "65", "644"], [16]),
    ("diners", ["36", "300", "305", "38"], [14]),
    ("jcb", ["3528", "3530", "3589"], [16]),
    ("unionpay", ["62"], [16, 17, 18, 19]),
    ("maestro", ["5018", "6759", "6304"], [16, 19]),
]


def _card(rng: random.Random) -> tuple[str, str]:
    brand, prefixes, lengths = rng.choice(_BRANDS)
    number = _luhn_complete(rng.choice(prefixes), rng.choice(lengths), rng)
    style = rng.choice(["bare", "spaces", "dashes"])
    if style != "bare":
        sep = " " if style == "spaces" else "-"
        if brand == "amex" or (brand == "diners" and len(number) == 14):
            groups = [number[:4], number[4:10], number[10:]]
        else:
            groups = [number[i : i + 4] for i in range(0, len(number), 4)]
        number = sep.join(groups)
    return number, f"{brand}:{style}"


_CARD_FRAMES = [
    "card number {}",
    "my Visa is {} exp 12/27",
    "Card: {} CVV 123",
    "charge {} please",
    "Kartennummer {} gültig bis 09/26",
    "numéro de carte {}",
    '{{"card": "{}", "amount": 129.99}}',
    "pay with {}.",
]


def _token(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    # At least one digit, as in every real random key of this length.
    return "".join(rng.choice(alphabet) for _ in range(n - 1)) + rng.choice(string.digits)


def _api_key(rng: random.Random) -> tuple[str, str, str]:
    """(value, style, frame): some styles need their own frame (headers, key=value)."""
    kind = rng.choice(
        [
            "openai",
            "openai_proj",
            "anthropic",
            "aws_id",
            "aws_secret",
            "github",
            "github_pat",
            "slack",
            "stripe",
            "jwt",
            "bearer",
            "google",
            "kv_generic",
        ]
    )
    b64url = _ALNUM + "-_"
    if kind == "openai":
        return "sk-" + _token(rng, 48), kind, ""
    if kind == "openai_proj":
        return "sk-proj-" + _token(rng, 120, b64url), kind, ""
    if kind == "anthropic":
        return "sk-ant-api03-" + _token(rng, 93, b64url) + "AA", kind, ""
    if kind == "aws_id":
        return (
            "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
            kind,
            "",
        )
    if kind == "aws_secret":
        frame = rng.choice(
            ["aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}", 'secret_key: "{}"']
        )
        return _token(rng, 40, _ALNUM + "+/"), kind, frame
    if kind == "github":
        return rng.choice(["ghp_", "gho_", "ghs_"]) + _token(rng, 36), kind, ""
    if kind == "github_pat":
        return "github_pat_" + _token(rng, 22) + "_" + _token(rng, 59), kind, ""
    if kind == "slack":
        prefix = rng.choice(["xoxb", "xoxp", "xoxa"])
        return f"{prefix}-{_digits(rng, 12)}-{_digits(rng, 13)}-{_token(rng, 24)}", kind, ""
    if kind == "stripe":
        return rng.choice(["sk_live_", "sk_test_", "rk_live_"]) + _token(rng, 24), kind, ""
    if kind == "jwt":
        header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        return f"{header}.eyJ{_token(rng, 60, b64url)}.{_token(rng, 43, b64url)}", kind, ""
    if kind == "bearer":
        frame = rng.choice(
            [
                "Authorization: Bearer {}",
                'curl -H "Authorization: Bearer {}" https://api.example.com/v1',
                "use the header `Bearer {}`",
                '{{"headers": {{"Authorization": "Bearer {}"}}}}',
            ]
        )
        return _token(rng, rng.choice([32, 40, 64]), b64url + "."), kind, frame
    if kind == "google":
        return "AIza" + _token(rng, 35, b64url), kind, ""
    frame = rng.choice(
        [
            "api_key={}",
            "X-API-Key: {}",
            'config = {{"apiKey": "{}"}}',
            "password: {}",
            "export SERVICE_TOKEN={}",
            "client_secret='{}'",
        ]
    )
    return _token(rng, rng.choice([20, 32]), _ALNUM), kind, frame


_KEY_FRAMES = [
    "here is my key {} can you debug this",
    "OPENAI_API_KEY={}",
    "export GITHUB_TOKEN={}",
    "token: {}",
    "I pasted {} by mistake",
    '{{"api_key": "{}"}}',
    "Schlüssel: {} bitte löschen",
    "why does {} return 401?",
]


def _ssn(rng: random.Random) -> tuple[str, str]:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    number = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    style = rng.choice(["dashes", "dashes", "dashes", "spaces", "bare"])
    separator = {"dashes": "-", "spaces": " ", "bare": ""}[style]
    return number.replace("-", separator), style


_SSN_FRAMES = [
    "SSN: {}",
    "my social security number is {}",
    "ssn {} for the tax form",
    "Applicant SSN {}, DOB 04/12/1986",
]


def _negative(rng: random.Random) -> tuple[str, str]:
    n = rng.randint
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 80_000_000))
    kind = rng.choice(
        [
            "order",
            "timestamp",
            "version",
            "uuid",
            "price",
            "hash",
            "ip",
            "isbn",
            "count",
            "address",
            "tracking",
            "words",
            "mention",
            "code",
            "mixed",
        ]
    )
    text = {
        "order": rng.choice(
            [
                f"order #{rng.randint(10_000, 99_999_999)} has not arrived",
                f"Order {rng.randint(100_000, 999_999_999)} was shipped",
                f"ORD-{start.year}-{rng.randint(100_000, 999_999)}",
                f"invoice no. {rng.randint(1_000_000, 9_999_999)}",
                f"ticket {rng.randint(10_000_000, 99_999_999)}",
            ]
        ),
        "timestamp": rng.choice(
            [
                start.isoformat().replace("+00:00", "Z"),
                start.strftime("%Y-%m-%d %H:%M:%S"),
                start.strftime("%d/%m/%Y %H:%M"),
                f"epoch {int(start.timestamp())}",
                f"ts={int(start.timestamp() * 1000)}",
                start.strftime("%d.%m.%Y"),
                f"{start:%H:%M:%S}.{rng.randint(0, 999):03d}",
            ]
        ),
        "version": rng.choice(
            [
                f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
                f"Python 3.{rng.randint(8, 13)}.{rng.randint(0, 12)}",
                f"build {start:%Y.%m.%d}.{rng.randint(1, 9)}",
                f"1.{rng.randint(0, 9)}.{rng.randint(0, 9)}-beta.{rng.randint(1, 9)}",
            ]
        ),
        "uuid": f"request id {uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "price": rng.choice(
            [
                f"${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
                f"€ {rng.randint(1, 9)}.{rng.randint(100, 999)},00",
                f"total USD {rng.randint(10, 99)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
                f"{rng.randint(1, 9)} {rng.randint(100, 999)},{rng.randint(10, 99)} €",
            ]
        ),
        "hash": rng.choice(
            [
                f"commit {rng.getrandbits(160):040x}",
                f"sha256 {rng.getrandbits(256):064x}",
            ]
        ),
        # IP addresses are personal data (GDPR) and redacted; loopback ones name no one.
        "ip": f"server 127.0.0.1:{n(1024, 65535)}, bind 0.0.0.0",
        "isbn": f"ISBN 978-{n(0, 9)}-{n(10, 99)}-{n(100000, 999999)}-{n(0, 9)}",
        "count": rng.choice(
            [
                f"we sold {n(1, 9)},{n(100, 999)},{n(100, 999)} units in {start.year}",
                f"page {rng.randint(1, 400)} of {rng.randint(400, 900)}",
                f"| {start.year} | {rng.randint(1000, 9999)} | {rng.randint(1000, 9999)} |",
                f"pi is 3.{rng.randint(10**13, 10**14 - 1)}",
                "scores: " + " ".join(str(n(0, 99)) for _ in range(n(8, 20))),
                "ids " + ", ".join(str(n(100, 9999)) for _ in range(n(4, 10))),
            ]
        ),
        "address": rng.choice(
            [
                f"{rng.randint(1, 999)} Main Street, Springfield {rng.randint(10000, 99999)}",
                f"{rng.randint(75001, 75020)} Paris",
                f"Room {rng.randint(100, 999)}, floor {rng.randint(1, 40)}",
            ]
        ),
        "tracking": f"tracking 1Z{rng.randint(100, 999)}AA{rng.randint(10**9, 10**10 - 1)}",
        "words": rng.choice(
            [
                "the task-management-system-overview is attached",
                "the key: remember to restart the worker",
                "max_tokens=256 and temperature=0.2",
                "password reset link expired yesterday",
                "use sk-learn-compatible-estimators here",
                "internationalization-and-localization guide",
            ]
        ),
        "mention": rng.choice(
            [
                "ping @devops-team about it",
                "npm install @types/node",
                "decorate it with @dataclass(frozen=True)",
                "ssh admin@localhost",
            ]
        ),
        "code": rng.choice(
            [
                f"for i in range({rng.randint(10, 10_000)}): total += i",
                f"x = np.zeros(({rng.randint(1, 512)}, {rng.randint(1, 512)}))",
                f"HTTP {rng.choice([200, 404, 500])} after {rng.randint(1, 9999)} ms",
                f"resolution {rng.choice([1920, 2560, 3840])}x{rng.choice([1080, 1440, 2160])}",
            ]
        ),
        "mixed": rng.choice(
            [
                f"flight LH {rng.randint(100, 9999)} departs {start:%H:%M}",
                "use model gpt-4o-2024-08-06 for this",
                f"from {start:%Y-%m-%d} to {start + timedelta(days=90):%Y-%m-%d}",
                f"coordinates {rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}",
                f"serial SN-{n(1000, 9999)}-{n(1000, 9999)}-{n(1000, 9999)}",
                f"ZIP {rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
                "USPS tracking 9400 1000 0000 0000 0000 00",
                f"between {rng.randint(1, 50)} and {rng.randint(51, 99)} percent",
                f"the range 0.{rng.randint(10**6, 10**7)} to 0.{rng.randint(10**6, 10**7)}",
            ]
        ),
    }[kind]
    return text, kind


def build_corpus(seed: int = SEED, per_type: int = 400, negatives: int = 800) -> list[Item]:
    """The labelled corpus: ``per_type`` items of each PII type, then ``negatives``."""
    rng = random.Random(seed)
    items: list[Item] = []
    for _ in range(per_type):
        value, style = _email(rng)
        items.append(Item("email", rng.choice(_EMAIL_FRAMES).format(value), value, style))
    for _ in range(per_type):
        value, style = _phone(rng)
        items.append(Item("phone", rng.choice(_PHONE_FRAMES).format(value), value, style))
    for _ in range(per_type):
        value, style = _card(rng)
        items.append(Item("card", rng.choice(_CARD_FRAMES).format(value), value, style))
    for _ in range(per_type):
        value, style, frame = _api_key(rng)
        text = (frame or rng.choice(_KEY_FRAMES)).format(value)
        items.append(Item("api_key", text, value, style))
    for _ in range(per_type):
        value, style = _ssn(rng)
        items.append(Item("ssn", rng.choice(_SSN_FRAMES).format(value), value, style))
    for _ in range(negatives):
        text, style = _negative(rng)
        items.append(Item("negative", text, "", style))
    return items


# -- scoring through the tap's redaction ---------------------------------------------------


def event_of(text: str) -> CapturedCall:
    """A captured call whose user message is ``text``."""
    start = datetime.now(UTC)
    return CapturedCall(
        event_id=uuid.uuid4().hex,
        started_at=start,
        ended_at=start,
        model="gpt-5.2",
        request=ModelRequest(messages=[ChatMessage(role="user", content=text)]),
        response=ModelResponse(text="ok", finish_reason="stop"),
        latency_ms=1.0,
    )


def redact_like_the_tap(texts: list[str], batch_size: int = 500) -> list[str]:
    """Each text redacted as the tap's publisher does: as user messages of events in batches."""
    redactor = Redactor()
    out: list[str] = []
    for first in range(0, len(texts), batch_size):
        events = [event_of(text) for text in texts[first : first + batch_size]]
        for raw in redactor.redact_events_json(events):
            assert raw is not None
            out.append(orjson.loads(raw)["request"]["messages"][0]["content"])
    return out


def _alnum(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def leaked(item: Item, redacted: str) -> bool:
    """Whether ``redacted`` still shows the value, or any 6 characters of it in a row
    that the rest of the text does not already show."""
    if item.value in redacted:
        return True
    value = _alnum(item.value)
    context = _alnum(item.text.replace(item.value, " "))
    shown = _alnum(redacted)
    for placeholder in PLACEHOLDERS:
        shown = shown.replace(_alnum(placeholder), " ")
    windows = {value[i : i + _LEAK_WINDOW] for i in range(len(value) - _LEAK_WINDOW + 1)}
    return any(w in shown and w not in context for w in windows)


@dataclass
class Score:
    total: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)
    misses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    false_positives: list[tuple[str, str]] = field(default_factory=list)
    placeholder_hits: Counter[str] = field(default_factory=Counter)  # in negatives

    def recall(self, kind: str) -> float:
        return self.redacted[kind] / self.total[kind]

    @property
    def negatives_untouched(self) -> float:
        return 1 - len(self.false_positives) / self.total["negative"]

    def precision(self) -> float:
        """Of all items the redactor changed, the share that held PII."""
        changed_pii = sum(self.redacted[kind] for kind in PII_TYPES)
        return changed_pii / (changed_pii + len(self.false_positives))


def score(items: list[Item], redacted_texts: list[str] | None = None) -> Score:
    """Recall per type and false positives, of ``redacted_texts`` (the items' texts after
    redaction, in order) or of the tap's redaction run here."""
    if redacted_texts is None:
        redacted_texts = redact_like_the_tap([item.text for item in items])
    result = Score()
    for item, redacted in zip(items, redacted_texts, strict=True):
        result.total[item.kind] += 1
        if item.kind == "negative":
            if redacted != item.text:
                result.false_positives.append((item.text, redacted))
                for placeholder in PLACEHOLDERS:
                    if placeholder in redacted:
                        result.placeholder_hits[placeholder] += 1
        elif leaked(item, redacted):
            result.misses.setdefault(item.kind, []).append((item.text, redacted))
        else:
            result.redacted[item.kind] += 1
    return result
