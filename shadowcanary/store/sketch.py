"""Mergeable latency sketches (DDSketch, 1 % relative accuracy) and their JSONB form.

A per-minute rollup row keeps one sketch per latency metric so quantiles over any
window are a merge of O(buckets) rows, never a scan of raw requests. The stored
form is JSONB, chosen over protobuf bytes so an operator can read it with psql::

    {"v": 1, "alpha": 0.01, "zero": 3, "bins": {"345": 12, "346": 40}}

``bins`` maps a DDSketch ``LogarithmicMapping`` key (as text: JSON object keys are
strings) to the number of values in that bucket; ``zero`` counts values too small to
map (0 ms). Latencies are never negative, so there is no negative store. Merging is
adding counts key by key, which is exactly what ``DenseStore.merge`` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddsketch import LogarithmicMapping
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.store import DenseStore

RELATIVE_ACCURACY = 0.01
SKETCH_FORMAT_VERSION = 1
# One mapping for the whole process: every stored sketch must share gamma to merge.
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


def _empty_bins() -> dict[int, int]:
    return {}


@dataclass(frozen=True, slots=True)
class QuantileSketch:
    """An immutable DDSketch over non-negative values (milliseconds)."""

    zero_count: int = 0
    bins: Mapping[int, int] = field(default_factory=_empty_bins)

    @classmethod
    def of(cls, values: Iterable[float]) -> QuantileSketch:
        """A sketch of ``values``; negatives (impossible for latencies) count as zero."""
        zero = 0
        bins: Counter[int] = Counter()
        for value in values:
            if value > MAPPING.min_possible:
                bins[MAPPING.key(value)] += 1
            else:
                zero += 1
        return cls(zero_count=zero, bins=dict(bins))

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.bins.values())

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """The sketch of both inputs' values together."""
        if not other.count:
            return self
        if not self.count:
            return other
        bins: Counter[int] = Counter(self.bins)
        bins.update(other.bins)
        return QuantileSketch(zero_count=self.zero_count + other.zero_count, bins=dict(bins))

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1) within 1 % relative error; None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q}")
        if not self.count:
            return None
        store = DenseStore()
        for key in sorted(self.bins):
            store.add(key, self.bins[key])
        sketch = BaseDDSketch(MAPPING, store, DenseStore(), float(self.zero_count))
        value = sketch.get_quantile_value(q)
        return None if value is None else float(value)

    def count_above(self, threshold: float) -> int:
        """How many values the sketch reports above ``threshold`` (>= 0), within 1 %.

        A value counts when its bin's representative value (what ``quantile``
        reports) is above the threshold, so "slower than T" agrees with the quantiles.
        """
        first = first_key_above(threshold)
        return sum(count for key, count in self.bins.items() if key >= first)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": SKETCH_FORMAT_VERSION,
            "alpha": RELATIVE_ACCURACY,
            "zero": self.zero_count,
            "bins": {str(key): count for key, count in sorted(self.bins.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> QuantileSketch:
        """Read the stored form; an absent or empty document is the empty sketch."""
        if not data:
            return cls()
        alpha = data.get("alpha", RELATIVE_ACCURACY)
        if alpha != RELATIVE_ACCURACY:
            # Different gammas cannot be merged; refusing beats silently wrong quantiles.
            raise ValueError(
                f"stored sketch has relative accuracy {alpha}, this build uses {RELATIVE_ACCURACY}"
            )
        bins = {int(key): int(count) for key, count in data.get("bins", {}).items()}
        return cls(zero_count=int(data.get("zero", 0)), bins=bins)


def merge_all(sketches: Iterable[QuantileSketch]) -> QuantileSketch:
    """Merge many sketches with one pass over their bins."""
    zero = 0
    bins: Counter[int] = Counter()
    for sketch in sketches:
        zero += sketch.zero_count
        bins.update(sketch.bins)
    return QuantileSketch(zero_count=zero, bins=dict(bins))


def first_key_above(threshold: float) -> int:
    """The lowest bin key whose representative value is above ``threshold`` (>= 0).

    ``count_above`` in SQL is the sum of the stored ``bins`` with a key at least this.
    """
    if threshold < 0 or threshold != threshold:
        raise ValueError(f"threshold must be a non-negative number, got {threshold}")
    # x lies in bin key(x); the bin below represents less than x, the bin above more.
    key = int(MAPPING.key(max(threshold, MAPPING.min_possible)))
    return key if MAPPING.value(key) > threshold else key + 1
