"""CPU the tap's redaction costs per event: today's detectors against a baseline revision.

The publishing thread's budget (issue 17) is at most 2x the CPU per event it spent
before IBANs, IP addresses, libphonenumber and the card networks' ranges were added.
This loads the redaction modules of ``--baseline-rev`` from git into a scratch
package and times both ``Redactor.events_writer`` + ``write_one`` (what the publisher
runs per batch) on the same batches, in this process, alternating rounds:

(a) tap_emit's support-bot events (every one carrying an email), cache cleared per
    batch so every text is scanned;
(b) the independent Faker corpus (tests/corpus/pii/faker_corpus.py): PII of every
    kind in 12 locales plus hard negatives, one text per event;
(c) the worst case for the number rules: rows of 20 bare 9-12 digit numbers, 5
    grouped ones and 3 dotted quads per text (a CSV or a log pasted into a prompt).

Usage: ``python bench/redaction_cost.py [--baseline-rev 81d3375] [--rounds 5]``.
The last stdout line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tap_emit import realistic_events  # noqa: E402

from shadowcanary.events import CapturedCall  # noqa: E402
from shadowcanary.tap.redaction import Redactor  # noqa: E402
from tests.corpus.pii.corpus import event_of  # noqa: E402
from tests.corpus.pii.faker_corpus import build_corpus  # noqa: E402

# The commit before issue 17's detectors: the baseline the budget is measured against.
BASELINE_REV = "81d3375"
_MODULES = ("pii_numbers", "pii", "redaction")


class BaselineUnavailable(RuntimeError):
    """The baseline revision cannot be read from git (a shallow clone, a typo)."""


def load_baseline(rev: str, into: Path) -> ModuleType:
    """The ``redaction`` module of ``rev``, importable as ``baseline_tap.redaction``."""
    package = into / "baseline_tap"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in _MODULES:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:shadowcanary/tap/{name}.py"],
            check=False,
            capture_output=True,
            text=True,
        )
        if shown.returncode != 0:
            raise BaselineUnavailable(
                f"revision {rev!r} is not in this clone ({shown.stderr.strip()}); "
                "fetch the history (git fetch --unshallow) or pass another --baseline-rev"
            )
        source = shown.stdout
        for other in _MODULES:
            source = source.replace(f"shadowcanary.tap.{other} ", f"baseline_tap.{other} ")
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(into))
    return importlib.import_module("baseline_tap.redaction")


def cpu_per_event_us(redactor: Any, batches: list[list[CapturedCall]], *, clear: bool) -> float:
    """Thread CPU µs per event to redact and write ``batches`` as the publisher does."""
    events = 0
    started = time.thread_time()
    for batch in batches:
        if clear:
            redactor._cache.clear()
        writer, readable, _ = redactor.events_writer(batch)
        for event in readable:
            writer.write_one(event)
        events += len(batch)
    return (time.thread_time() - started) / events * 1e6


def numbers_heavy(n: int) -> list[CapturedCall]:
    """Events whose text is a row of bare, grouped and dotted numbers."""
    rng = random.Random(17)
    texts = []
    for _ in range(n):
        bare = [str(rng.randint(10**8, 10**11)) for _ in range(20)]
        grouped = [
            f"{rng.randint(10, 99)} {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
            for _ in range(5)
        ]
        quads = [".".join(str(rng.randint(0, 255)) for _ in range(4)) for _ in range(3)]
        texts.append("row: " + ", ".join(bare + grouped + quads))
    return [event_of(text) for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1_000, help="events per publisher batch")
    args = parser.parse_args()

    support = realistic_events(20_000)
    corpus = [event_of(local.item.text) for local in build_corpus(per_type=40, negatives=200)]
    workloads = {
        "support_bot": [support[i : i + args.batch] for i in range(0, len(support), args.batch)],
        "faker_corpus": [corpus[i : i + args.batch] for i in range(0, len(corpus), args.batch)],
        "numbers_heavy": [numbers_heavy(args.batch) for _ in range(3)],
    }
    with tempfile.TemporaryDirectory(prefix="sc-bench-baseline-") as scratch:
        try:
            baseline_module = load_baseline(args.baseline_rev, Path(scratch))
        except BaselineUnavailable as exc:
            raise SystemExit(f"redaction_cost: {exc}") from exc
        redactors = {"baseline": baseline_module.Redactor(), "now": Redactor()}
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):  # alternate, so load from elsewhere hits both alike
            for workload, batches in workloads.items():
                for name, redactor in redactors.items():
                    cost = cpu_per_event_us(redactor, batches, clear=True)
                    samples.setdefault((workload, name), []).append(cost)
    result: dict[str, Any] = {}
    for workload in workloads:
        baseline = min(samples[(workload, "baseline")])  # least disturbed round
        now = min(samples[(workload, "now")])
        print(
            f"{workload:<13} baseline {baseline:7.2f} µs/event  now {now:7.2f} µs/event  "
            f"ratio {now / baseline:.2f}x  ({len(workloads[workload])} batches)"
        )
        result[f"{workload}_baseline_us"] = round(baseline, 2)
        result[f"{workload}_now_us"] = round(now, 2)
        result[f"{workload}_ratio"] = round(now / baseline, 2)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
