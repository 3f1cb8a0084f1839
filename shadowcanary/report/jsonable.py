"""The report for machines: every figure of ``ReportData`` as JSON-compatible data.

Times are ISO 8601 UTC strings, quantile keys are "p50"/"p95"/"p99", missing figures
are ``null`` and non-finite numbers are the strings "Infinity"/"-Infinity"/"NaN"
(JSON has no such numbers). ``REPORT_FORMAT`` goes up on any incompatible change.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from typing import Any

from shadowcanary.report.formatting import tenant_note
from shadowcanary.report.model import ReportData

REPORT_FORMAT = 1


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _key(key: Any) -> str:
    # Quantiles are float keys in the model: 0.95 -> "p95".
    return f"p{round(key * 100)}" if isinstance(key, float) else str(key)


def report_dict(data: ReportData) -> dict[str, Any]:
    """The report as a dict (``json.dumps`` ready)."""
    body = _plain(data)
    body["has_live_data"] = data.has_live_data
    if data.tenant_scope is not None:
        # The sentence the other formats show: a JSON report shared with a tenant says
        # what it counts (and when no call of that tenant was found) too.
        body["tenant_note"] = tenant_note(data.tenant_scope, data.since, data.until)
    return {"report_format": REPORT_FORMAT, **body}


def render_json(data: ReportData) -> str:
    return json.dumps(report_dict(data), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
