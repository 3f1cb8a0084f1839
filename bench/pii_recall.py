"""PII redaction recall per type on the labelled corpus, through the tap's own redaction.

The corpus (tests/corpus/pii/corpus.py) is generated from a fixed seed: a few hundred
items per PII type in many real-world formats, and negatives that look numeric or
token-like but hold no PII. Prints a per-type table, the misses and false positives
(``--show N``), and as its last line one JSON object with the figures.

Usage: ``python bench/pii_recall.py [--per-type 400] [--negatives 800] [--show 5]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.corpus.pii.corpus import PII_TYPES, build_corpus, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=400)
    parser.add_argument("--negatives", type=int, default=800)
    parser.add_argument("--show", type=int, default=5, help="misses shown per type")
    args = parser.parse_args()

    result = score(build_corpus(per_type=args.per_type, negatives=args.negatives))
    print(f"{'type':<10} {'items':>6} {'redacted':>9} {'recall':>8}")
    for kind in PII_TYPES:
        print(
            f"{kind:<10} {result.total[kind]:>6} {result.redacted[kind]:>9} "
            f"{result.recall(kind):>8.2%}"
        )
    negatives = result.total["negative"]
    print(
        f"{'negatives':<10} {negatives:>6} {len(result.false_positives):>9} changed  "
        f"untouched {result.negatives_untouched:.2%}  precision {result.precision():.2%}"
    )
    for kind, misses in result.misses.items():
        for text, redacted in misses[: args.show]:
            print(f"  miss {kind}: {text!r} -> {redacted!r}")
    for text, redacted in result.false_positives[: args.show]:
        print(f"  false positive: {text!r} -> {redacted!r}")
    figures = {f"recall_{kind}": round(result.recall(kind), 4) for kind in PII_TYPES}
    figures["negatives_untouched"] = round(result.negatives_untouched, 4)
    figures["precision"] = round(result.precision(), 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
