"""Redaction of PII and secrets before an event leaves the service's process.

Speed matters because this runs on the tap's publishing thread inside users'
services, so every scan is arranged for CPython's ``re``:

* each regex starts with a literal or a character class (never a lookbehind or an
  optional), which lets ``re`` skip to candidates in C; token boundaries are checked
  in Python on the few candidates found;
* emails are anchored on ``@`` and the local part is looked for in a bounded window,
  which keeps the scan linear even on long unbroken strings;
* the regexes for secrets written as ``key=value`` and ``Bearer`` only run when a
  cheap substring test says they could match;
* the texts of one event are joined with NUL and scanned once;
* recent results are cached, since system prompts and earlier conversation turns
  repeat from call to call;
* ``redact_event_json`` splices the redacted texts into the event's JSON instead of
  copying the pydantic models (the copy cost more than the scan); see
  ``event_texts.splice_texts_json``.

Card numbers are Luhn-checked so order numbers and ids survive. Placeholders are typed
(``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[SECRET]``; custom patterns give
``[REDACTED]``) so a reviewer can still tell what kind of value was there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shadowcanary.errors import ConfigError
from shadowcanary.events import CapturedCall
from shadowcanary.tap.event_texts import collect_texts, replace_texts, splice_texts_json

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
SECRET = "[SECRET]"  # noqa: S105 - a placeholder, not a password
REDACTED = "[REDACTED]"

_SEP = "\x00"  # joins the texts of one event; no pattern matches across it
_CACHE_ENTRIES = 512
_CACHE_MAX_CHARS = 8_192
_LOCAL_PART_MAX = 64  # RFC 5321
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.%+-")

# Cheap guards on the UTF-8 bytes (C speed): a byte class map for "could a long token be
# here", and the digits to delete when counting them.
_TOKEN_BYTES = bytes(
    0x61 if chr(b) in _LOCAL_CHARS and chr(b) not in "%+" else 0x20 for b in range(256)
)
_LONG_RUN = b"a" * 15
_NOT_DIGITS = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)
_MIN_NUMBER_DIGITS = 8  # the shortest phone number we redact

# Runs of digits with the separators phone and card numbers use.
_NUMBERISH = re.compile(r"[0-9][0-9 ().-]{5,}[0-9]")
_CARD_GROUPS = re.compile(r"\d+")
_INTL_PHONE = re.compile(
    r"(?<![\d+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,5}(?!\d)"
)
_US_PHONE = re.compile(
    r"(?<![\d+])(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])"
)
_NON_DIGITS = re.compile(r"\D")

# Token-shaped secrets: found as long tokens first, then recognised by their prefix.
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_.-]{15,}")
_SECRET_SHAPE = re.compile(
    r"sk-[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic style
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^\x00]*?-----END [A-Z ]*PRIVATE KEY-----")
_BEARER = re.compile(r"(?<![\w-])((?i:bearer))[ \t]+[A-Za-z0-9._~+/-]{8,}=*")
# key=value secrets keep the key so the prompt stays readable. Found from the ":" or
# "=" backwards, so the case-insensitive key list never scans the whole text.
_KV_HINTS = ("key", "secret", "pass", "pwd", "token")
_KV_KEYS = frozenset(
    (
        "apikey",
        "xapikey",
        "secretkey",
        "clientsecret",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "accesstoken",
        "authtoken",
        "refreshtoken",
        "token",
        "privatekey",
    )
)
_KV_SEP = re.compile(r"[:=]")
_KV_VALUE = re.compile(r"[ \t]*(?:\"[^\"\n\x00]*\"|'[^'\n\x00]*'|[^\s\"',;&}\]\x00]+)")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


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


def _card_span(run: str) -> tuple[int, int] | None:
    """The span of a Luhn-valid 13-19 digit card inside a run of digit groups, if any."""
    groups = [(m.start(), m.end()) for m in _CARD_GROUPS.finditer(run)]
    best: tuple[int, int] | None = None
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += run[groups[last][0] : groups[last][1]]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                span = (groups[first][0], groups[last][1])
                if best is None or span[1] - span[0] > best[1] - best[0]:
                    best = span
    return best


def _phone(match: re.Match[str]) -> str:
    if match.re is _INTL_PHONE:
        # E.164 numbers have 8-15 digits; shorter "+1 2" runs are arithmetic, not phones.
        digits = len(_NON_DIGITS.sub("", match.group()))
        return PHONE if 8 <= digits <= 15 else match.group()
    return PHONE


def _redact_number_run(run: str) -> str:
    span = _card_span(run)
    if span is not None:
        start, end = span
        return _redact_number_run(run[:start]) + CARD + _redact_number_run(run[end:])
    if "+" in run:
        run = _INTL_PHONE.sub(_phone, run)
    return _US_PHONE.sub(_phone, run)


def _redact_numbers(text: str) -> str:
    out: list[str] = []
    done = 0
    for match in _NUMBERISH.finditer(text):
        start, end = match.span()
        if start > 0 and text[start - 1] in "+(":
            start -= 1
        if (start > 0 and text[start - 1] in _WORD_CHARS) or (
            end < len(text) and text[end] in _WORD_CHARS
        ):
            continue  # glued to letters: part of an id or a key, not a number
        redacted = _redact_number_run(text[start:end])
        if redacted != text[start:end]:
            out.append(text[done:start])
            out.append(redacted)
            done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact_emails(text: str) -> str:
    out: list[str] = []
    done = 0
    for match in _DOMAIN.finditer(text):
        at = match.start()
        start = at
        floor = max(done, at - _LOCAL_PART_MAX)
        while start > floor and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        if start == at:
            continue
        out.append(text[done:start])
        out.append(EMAIL)
        done = match.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _secret_token(match: re.Match[str]) -> str:
    # The match starts where a token starts: the class is greedy and leftmost.
    token = match.group()
    shape = _SECRET_SHAPE.match(token)
    if shape is None:
        return token
    return SECRET + token[shape.end() :]


def _redact_builtin(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if b"-----BEGIN" in raw:
        text = _PEM.sub(SECRET, text)
    if b"earer" in raw or b"EARER" in raw:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {SECRET}", text)
    if b":" in raw or b"=" in raw:
        lower = text.lower()
        if any(hint in lower for hint in _KV_HINTS):
            text = _redact_key_values(text)
    if _LONG_RUN in raw.translate(_TOKEN_BYTES):
        text = _LONG_TOKEN.sub(_secret_token, text)
    if b"@" in raw:
        text = _redact_emails(text)
    if len(raw.translate(None, _NOT_DIGITS)) >= _MIN_NUMBER_DIGITS:
        text = _redact_numbers(text)
    return text


def _key_before(text: str, sep: int) -> str:
    """The key written just before a ':' or '=' at ``sep`` (quotes and blanks skipped)."""
    end = sep
    while end > 0 and text[end - 1] in " \t\"'":
        end -= 1
    start = end
    while start > 0 and text[start - 1] in _KEY_CHARS and end - start < 24:
        start -= 1
    return text[start:end]


def _redact_key_values(text: str) -> str:
    out: list[str] = []
    done = 0
    for sep in _KV_SEP.finditer(text):
        at = sep.start()
        if at < done:
            continue
        key = _key_before(text, at).lower().replace("_", "").replace("-", "")
        if key not in _KV_KEYS:
            continue
        value = _KV_VALUE.match(text, at + 1)
        if value is None:
            continue
        raw = value.group().lstrip(" \t")
        quote = raw[0] if raw[:1] in ("'", '"') else ""
        out.append(text[done : value.end() - len(raw)])
        out.append(f"{quote}{SECRET}{quote}")
        done = value.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _compile_custom(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"redaction pattern {pattern!r} is not a valid regular expression: {exc}",
                hint="fix or remove it in SHADOWCANARY_TAP__REDACT_PATTERNS (Python 're' syntax)",
            ) from exc
        if regex.match(""):
            raise ConfigError(
                f"redaction pattern {pattern!r} matches the empty string",
                hint="make it match at least one character, e.g. use '+' instead of '*'",
            )
        compiled.append(regex)
    return compiled


class Redactor:
    """Replaces PII and secrets in text and in every text field of a captured call."""

    __slots__ = ("_cache", "_custom")

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._custom = _compile_custom(extra_patterns)
        self._cache: dict[str, str] = {}

    def redact_text(self, text: str) -> str:
        """``text`` with every PII or secret match replaced by its typed placeholder."""
        return self._redact_many([text])[0] if text else text

    def redact_event(self, event: CapturedCall) -> CapturedCall:
        """``event`` with every text it carries redacted; the same object when nothing matched.

        Covers message contents and text parts, names, file names, tool-call arguments,
        tool results, the response text and refusal, and string request parameters.
        """
        texts = collect_texts(event)
        if not texts:
            return event
        redacted = {
            text: new
            for text, new in zip(texts, self._redact_many(texts), strict=True)
            if new != text
        }
        return replace_texts(event, redacted) if redacted else event

    def redact_event_json(self, event: CapturedCall) -> bytes:
        """The JSON of ``redact_event(event)``, byte for byte, usually without copying models.

        The JSON is pydantic-core's (``model_dump(mode="json")`` written in one pass).
        """
        raw = event.__pydantic_serializer__.to_json(event)
        texts = collect_texts(event)
        if not texts:
            return raw
        changed: dict[str, tuple[str, int]] = {}
        for text, new in zip(texts, self._redact_many(texts), strict=True):
            if new != text:
                seen = changed.get(text)
                changed[text] = (new, seen[1] + 1 if seen is not None else 1)
        if not changed:
            return raw
        spliced = splice_texts_json(raw, changed)
        if spliced is not None:
            return spliced
        # Rare (a redacted text also written elsewhere, e.g. as a key): copy the models.
        redacted = replace_texts(event, {text: new for text, (new, _) in changed.items()})
        return redacted.__pydantic_serializer__.to_json(redacted)

    def _redact_many(self, texts: list[str]) -> list[str]:
        cache = self._cache
        results = [cache.get(text) for text in texts]
        missing = [i for i, result in enumerate(results) if result is None]
        if missing:
            pending = [texts[i] for i in missing]
            if len(pending) == 1 or any(_SEP in text for text in pending):
                redacted = [self._redact_one(text) for text in pending]
            else:
                # No built-in pattern matches across NUL; custom ones may ('.'), so they
                # run on each text alone and never reach into (or merge) another text.
                redacted = _redact_builtin(_SEP.join(pending)).split(_SEP)
                if self._custom:
                    redacted = [self._redact_custom(text) for text in redacted]
            if len(cache) + len(pending) > _CACHE_ENTRIES:
                cache.clear()  # cheaper than LRU bookkeeping; hot prompts come back at once
            for i, text, result in zip(missing, pending, redacted, strict=True):
                results[i] = result
                if len(text) <= _CACHE_MAX_CHARS:
                    cache[text] = result
        return results  # type: ignore[return-value]  # every None was filled above

    def _redact_one(self, text: str) -> str:
        return self._redact_custom(_redact_builtin(text))

    def _redact_custom(self, text: str) -> str:
        for pattern in self._custom:
            text = pattern.sub(REDACTED, text)
        return text
