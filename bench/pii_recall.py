"""PII redaction recall per type and per locale, through the tap's own redaction.

Two corpora, both generated from fixed seeds:

* the independent one (tests/corpus/pii/faker_corpus.py): PII made by Faker in 12
  locales, embedded in Faker sentences with varied frames, plus hard negatives (order
  numbers, dates, versions, prices, tracking ids, EAN/ISBN, UUIDs...). The headline.
* the in-house one (tests/corpus/pii/corpus.py): formats written by the detectors'
  authors, kept as a regression check.

Prints per-type and per-locale tables, the misses and false positives (``--show N``),
and as its last line one JSON object with the figures of the independent corpus
(``recall_<type>``, ``recall_phone_valid``, ``worst_locale_recall_phone``,
``negatives_untouched``...) and the in-house corpus's (``inhouse_*``).

The baseline, measured in the same run: the redaction of ``--baseline-rev`` (the
detectors before issue 17, loaded from git by ``bench/redaction_cost.py``) on the same
independent corpus (``baseline_*`` keys; ``--baseline-rev ''`` skips it).

Usage: ``python bench/pii_recall.py [--per-type 200] [--negatives 800] [--show 5]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from redaction_cost import BASELINE_REV, BaselineUnavailable, load_baseline

from tests.corpus.pii import corpus as inhouse
from tests.corpus.pii import faker_corpus


def _baseline(items: list[faker_corpus.LocalItem], rev: str) -> dict[str, float | str]:
    """Recall of the detectors at ``rev`` on the same texts."""
    with tempfile.TemporaryDirectory(prefix="sc-bench-baseline-") as scratch:
        redactor = load_baseline(rev, Path(scratch)).Redactor()
        texts = [local.item.text for local in items]
        redacted: list[str] = []
        for first in range(0, len(texts), 500):
            events = [inhouse.event_of(text) for text in texts[first : first + 500]]
            for raw in redactor.redact_events_json(events):
                redacted.append(orjson.loads(raw)["request"]["messages"][0]["content"])
    result = faker_corpus.score(items, redacted)
    print(f"Baseline: the detectors at {rev} on the same texts")
    for kind in faker_corpus.PII_TYPES:
        worst, worst_recall = result.worst_locale(kind)
        print(f"{kind:<12} {result.recall(kind):>8.2%}  {worst} {worst_recall:.2%}")
    print(f"negatives untouched {result.negatives_untouched:.2%}\n")
    figures: dict[str, float | str] = {
        f"baseline_recall_{kind}": round(result.recall(kind), 4) for kind in faker_corpus.PII_TYPES
    }
    figures["baseline_negatives_untouched"] = round(result.negatives_untouched, 4)
    return figures


def _independent(items: list[faker_corpus.LocalItem], show: int) -> dict[str, float | str]:
    started = time.perf_counter()
    result = faker_corpus.score(items)
    elapsed = time.perf_counter() - started
    kinds = faker_corpus.PII_TYPES
    locales = faker_corpus.LOCALES
    print(f"Independent corpus (Faker, {len(locales)} locales): {len(items)} texts")
    print(f"{'type':<12} {'items':>6} {'recall':>8}  worst locale")
    for kind in kinds:
        worst, worst_recall = result.worst_locale(kind)
        print(
            f"{kind:<12} {result.count(kind):>6} {result.recall(kind):>8.2%}  "
            f"{worst} {worst_recall:.2%}"
        )
    print(
        f"{'phone*':<12} {'':>6} {result.recall('phone', style='valid'):>8.2%}  "
        "(*numbers valid in their country per libphonenumber)"
    )
    print(
        f"{'negatives':<12} {result.negatives:>6} untouched {result.negatives_untouched:.2%} "
        f"({len(result.false_positives)} changed)"
    )
    print("\nrecall per locale")
    print(f"{'locale':<7}" + "".join(f"{kind:>12}" for kind in kinds))
    for locale in locales:
        cells = [
            f"{result.recall(kind, locale):>12.1%}" if result.count(kind, locale) else f"{'-':>12}"
            for kind in kinds
        ]
        print(f"{locale:<7}" + "".join(cells))
    for kind in kinds:
        for locale, text, redacted in result.misses[kind][:show]:
            print(f"  miss {kind} ({locale}): {text!r} -> {redacted!r}")
    for locale, text, redacted in result.false_positives[:show]:
        print(f"  false positive ({locale}): {text!r} -> {redacted!r}")
    print(f"(scored in {elapsed:.2f} s through Redactor.redact_events_json)\n")
    figures: dict[str, float | str] = {
        f"recall_{kind}": round(result.recall(kind), 4) for kind in kinds
    }
    figures["recall_phone_valid"] = round(result.recall("phone", style="valid"), 4)
    worst, worst_recall = result.worst_locale("phone")
    figures["worst_locale_recall_phone"] = round(worst_recall, 4)
    figures["worst_locale_phone"] = worst
    figures["negatives_untouched"] = round(result.negatives_untouched, 4)
    return figures


def _inhouse(per_type: int, negatives: int, show: int) -> dict[str, float | str]:
    result = inhouse.score(inhouse.build_corpus(per_type=per_type, negatives=negatives))
    print("In-house corpus (formats written by the detectors' authors)")
    for kind in inhouse.PII_TYPES:
        print(f"{kind:<12} {result.total[kind]:>6} {result.recall(kind):>8.2%}")
    print(f"negatives {result.total['negative']:>6} untouched {result.negatives_untouched:.2%}")
    for kind, misses in result.misses.items():
        for text, redacted in misses[:show]:
            print(f"  miss {kind}: {text!r} -> {redacted!r}")
    for text, redacted in result.false_positives[:show]:
        print(f"  false positive: {text!r} -> {redacted!r}")
    figures: dict[str, float | str] = {
        f"inhouse_recall_{kind}": round(result.recall(kind), 4) for kind in inhouse.PII_TYPES
    }
    figures["inhouse_negatives_untouched"] = round(result.negatives_untouched, 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=200, help="per type and locale")
    parser.add_argument("--negatives", type=int, default=800, help="per locale")
    parser.add_argument("--show", type=int, default=5, help="misses shown per type")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    args = parser.parse_args()

    items = faker_corpus.build_corpus(per_type=args.per_type, negatives=args.negatives)
    figures = _independent(items, args.show)
    figures.update(_inhouse(400, 800, args.show))
    if args.baseline_rev:
        try:
            figures.update(_baseline(items, args.baseline_rev))
        except BaselineUnavailable as exc:
            print(f"Baseline skipped: {exc}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
