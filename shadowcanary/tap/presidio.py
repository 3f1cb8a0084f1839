"""Names, postal addresses and other context-dependent PII by Presidio: an optional plug-in.

The built-in detectors (``tap.pii``) find what has a shape: emails, phones, cards,
IBANs, IP addresses, keys. Names and postal addresses have none; finding them takes
a language model (Presidio's analyzer runs spaCy's NER). That costs milliseconds per
text where the built-ins cost microseconds per event, so it is off by default and
never imported unless asked for:

* install ``pip install 'shadowcanary[presidio]'`` and a spaCy model
  (``python -m spacy download en_core_web_lg``);
* set ``SHADOWCANARY_TAP__PRESIDIO_ENTITIES='["PERSON", "LOCATION"]'`` (and
  ``SHADOWCANARY_TAP__PRESIDIO_LANGUAGE``, ``en`` by default).

It runs on the tap's publishing thread, never the caller's: the caller still only
enqueues. Each distinct text is analysed once (the redactor's cache makes repeated
system prompts free) and only texts with a capitalised word go to the model. The
publisher's budget then no longer holds: at a few ms per new text it publishes a few
hundred events/s per process, and beyond that the tap does what it always does when
it cannot keep up, dropping events (counted in ``shadowcanary_tap_dropped_total``)
rather than blocking the service. Size the sample rate to that. Not measured in this
repository's benchmarks: CI does not install Presidio or download spaCy models.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from shadowcanary.errors import ConfigError

__all__ = ["presidio_detector"]

_CAPITALISED = re.compile(r"\b[A-ZÀ-Þ][a-zß-ÿ]")


def _replace(text: str, results: Sequence[Any]) -> str:
    """``text`` with each analyzer result's span replaced by ``[ENTITY]``; overlaps keep
    the earliest, longest span."""
    out: list[str] = []
    done = 0
    for result in sorted(results, key=lambda r: (r.start, -r.end)):
        if result.start < done:
            continue
        out.append(text[done : result.start])
        out.append(f"[{result.entity_type}]")
        done = result.end
    out.append(text[done:])
    return "".join(out)


def presidio_detector(
    entities: Sequence[str], language: str = "en", score_threshold: float = 0.5
) -> Callable[[str], str]:
    """A text filter replacing Presidio's ``entities`` (e.g. PERSON, LOCATION) with
    ``[ENTITY]`` placeholders, for ``Redactor(detectors=...)``.

    Raises:
        ConfigError: presidio-analyzer (or its spaCy model) is not installed, or an
            entity is not one the analyzer knows for ``language``.
    """
    try:
        from presidio_analyzer import AnalyzerEngine  # optional and heavy: only when asked for
    except ImportError as exc:
        raise ConfigError(
            "SHADOWCANARY_TAP__PRESIDIO_ENTITIES is set but presidio-analyzer is not installed",
            hint="pip install 'shadowcanary[presidio]' and a spaCy model "
            "(python -m spacy download en_core_web_lg), or unset the setting",
        ) from exc
    try:
        engine = AnalyzerEngine(supported_languages=[language])
    except (OSError, ValueError) as exc:  # spaCy raises OSError for a missing model
        raise ConfigError(
            f"Presidio could not load its language model for {language!r}: {exc}",
            hint="install the spaCy model Presidio uses, e.g. "
            "python -m spacy download en_core_web_lg",
        ) from exc
    known = set(engine.get_supported_entities(language=language))
    unknown = sorted(set(entities) - known)
    if unknown:
        raise ConfigError(
            f"Presidio does not know the entities {unknown} for {language!r}",
            hint=f"use some of {sorted(known)} in SHADOWCANARY_TAP__PRESIDIO_ENTITIES",
        )
    wanted = list(entities)

    def detect(text: str) -> str:
        if _CAPITALISED.search(text) is None:
            return text  # names and addresses are capitalised: skip the model
        results = engine.analyze(
            text=text, entities=wanted, language=language, score_threshold=score_threshold
        )
        return _replace(text, results) if results else text

    return detect
