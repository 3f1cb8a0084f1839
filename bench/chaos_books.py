"""Chaos books: real tap traffic into two supervised workers while faults hit, then the books.

Faults on a schedule drawn from ``--seed`` (``kill -9`` and SIGSTOP/SIGCONT of a worker,
``kill -9`` of Redis restarted from its AOF, Postgres stopped), ``--kills-per-minute``
of them over ``--seconds``. Afterwards every event is looked up in Postgres
(``shadowcanary/testing/chaos.py``, shared with ``tests/faults/test_chaos_books.py``).

Targets: ``lost_beyond_documented``, ``no_outcome``, ``double_outcome`` and
``duplicates`` 0; ``recovery_s_max`` at most the visibility timeout + 30 s. The baseline
ratio is ``stored / published`` of the same run (1.0 = every published event stored;
below it by the documented AOF window only). Last stdout line, one JSON object with
published, stored, lost_beyond_documented, no_outcome, double_outcome, duplicates,
recovery_s_max.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from shadowcanary.testing.chaos import ChaosConfig, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--kills-per-minute", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s through Tap.emit")
    parser.add_argument("--openai-rate", type=float, default=5.0, help="tap_openai calls/s")
    parser.add_argument("--seed", type=int, default=None, help="replay a run's schedule")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"chaos seed {seed}", file=sys.stderr)
    config = ChaosConfig(
        seconds=args.seconds,
        kills_per_minute=args.kills_per_minute,
        seed=seed,
        emit_rate=args.rate,
        openai_rate=args.openai_rate,
    )
    result = run_chaos(config, log=lambda line: print(line, file=sys.stderr))
    published = result["published"] or 1
    result["stored_over_published"] = round(result["stored"] / published, 5)
    for key in ("lost_examples", "no_outcome_examples", "double_outcome_examples"):
        if result[key]:
            print(f"{key}: {result[key]}", file=sys.stderr)
    print(json.dumps(result))
    bad = sum(
        result[k] for k in ("lost_beyond_documented", "no_outcome", "double_outcome", "duplicates")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
