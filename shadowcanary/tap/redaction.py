"""Redaction of PII and secrets before an event leaves the service's process.

The detectors live in ``tap.pii`` (emails, phones, payment cards, SSNs, API keys and
tokens, ``key=value`` secrets, private keys); this module applies them, plus the
deployment's own regexes, to texts and to whole batches of captured calls.

Speed matters because this runs on the tap's publishing thread inside users'
services: the texts of a whole batch are redacted together, each distinct text once,
joined with NUL into one string so every detector makes one pass per batch (no
built-in pattern matches across NUL); recent results are cached, since system
prompts and earlier conversation turns repeat from call to call.

Placeholders are typed (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[SSN]``, ``[IBAN]``,
``[IP]``, ``[NATIONAL_ID]``, ``[SECRET]``; custom patterns give ``[REDACTED]``) so a
reviewer can still tell what kind of value was there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from shadowcanary.errors import ConfigError
from shadowcanary.events import CapturedCall
from shadowcanary.tap.event_texts import collect_batch_texts, collect_texts, replace_texts
from shadowcanary.tap.pii import (
    CARD,
    EMAIL,
    IBAN,
    IP,
    NATIONAL_ID,
    PHONE,
    SECRET,
    SSN,
    luhn_valid,
    redact_builtin,
)
from shadowcanary.tap.wire import EventsWriter

__all__ = [
    "CARD",
    "EMAIL",
    "IBAN",
    "IP",
    "NATIONAL_ID",
    "PHONE",
    "REDACTED",
    "SECRET",
    "SSN",
    "Redactor",
    "luhn_valid",
]

REDACTED = "[REDACTED]"

_SEP = "\x00"  # joins the texts of one batch; no built-in pattern matches across it
_CACHE_ENTRIES = 512
_CACHE_MAX_CHARS = 8_192


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
    """Replaces PII and secrets in text and in every text field of a captured call.

    ``detectors``: further text filters (``str -> str``), run after the built-in and
    custom patterns on each distinct text not in the cache: the plug-in point for
    detectors too slow for every text, such as ``tap.presidio``. A detector that
    raises replaces the whole text with ``[REDACTED]``: never sent unfiltered.
    """

    __slots__ = ("_cache", "_custom", "_detectors")

    def __init__(
        self, extra_patterns: Iterable[str] = (), detectors: Sequence[Callable[[str], str]] = ()
    ) -> None:
        self._custom = _compile_custom(extra_patterns)
        self._detectors = tuple(detectors)
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

    def events_writer(
        self, events: Sequence[CapturedCall]
    ) -> tuple[EventsWriter, list[CapturedCall], int]:
        """A writer of ``events`` as redacted JSON, the events it can write, and how many
        it cannot (their texts could not be read).

        Built for the tap's publisher: the texts of the whole batch are redacted
        together (one scan over their distinct, uncached texts) and orjson writes the
        events with the changed texts swapped in (``tap.wire``), copying no model.
        """
        texts, readable, in_parameters = collect_batch_texts(events)
        writer = EventsWriter(self._changes(texts), parameters=in_parameters)
        return writer, readable, len(events) - len(readable)

    def redact_events_json(self, events: Sequence[CapturedCall]) -> list[bytes | None]:
        """The JSON of each ``redact_event(event)``, or None for an event that cannot be written."""
        writer, readable, _ = self.events_writer(events)
        ok = {id(event) for event in readable}
        out: list[bytes | None] = []
        for event in events:
            try:
                out.append(writer.write_one(event) if id(event) in ok else None)
            except Exception:  # noqa: BLE001 - e.g. a lone surrogate: drop this event only
                out.append(None)
        return out

    def _redact_many(self, texts: list[str]) -> list[str]:
        changed = self._changes(texts)
        return [changed.get(text, text) for text in texts] if changed else texts

    def _changes(self, texts: list[str]) -> dict[str, str]:
        """Each distinct text that redaction changes, mapped to its redaction."""
        get = self._cache.get
        # Each distinct text once (system prompts repeat within a batch too).
        found = {text: get(text) for text in dict.fromkeys(texts)}
        pending = [text for text, result in found.items() if result is None]
        if pending:
            joined = _SEP.join(pending)
            if joined.count(_SEP) != len(pending) - 1:
                # Some texts carry NUL themselves: those alone go one by one.
                with_nul = [text for text in pending if _SEP in text]
                pending = [text for text in pending if _SEP not in text]
                found.update((text, self._redact_one(text)) for text in with_nul)
                joined = _SEP.join(pending)
            # No built-in pattern matches across NUL; custom ones may ('.'), so they run
            # on each text alone and never reach into (or merge) another text.
            redacted = redact_builtin(joined).split(_SEP) if pending else []
            if self._custom:
                redacted = [self._redact_custom(text) for text in redacted]
            if self._detectors:
                redacted = [self._detect(text) for text in redacted]
            found.update(zip(pending, redacted, strict=True))
            self._remember(pending, redacted)
        return {text: new for text, new in found.items() if new is not None and new != text}

    def _remember(self, texts: list[str], results: list[str]) -> None:
        cache = self._cache
        if len(cache) + len(texts) > _CACHE_ENTRIES:
            cache.clear()  # cheaper than LRU bookkeeping; hot prompts come back at once
        room = _CACHE_ENTRIES - len(cache)
        for text, result in zip(texts, results, strict=False):
            if room <= 0:
                break
            if len(text) <= _CACHE_MAX_CHARS:
                cache[text] = result
                room -= 1

    def _redact_one(self, text: str) -> str:
        return self._detect(self._redact_custom(redact_builtin(text)))

    def _detect(self, text: str) -> str:
        for detector in self._detectors:
            try:
                text = detector(text)
            except Exception:  # noqa: BLE001 - a plug-in's failure must not leak the text
                return REDACTED
        return text

    def _redact_custom(self, text: str) -> str:
        for pattern in self._custom:
            text = pattern.sub(REDACTED, text)
        return text
