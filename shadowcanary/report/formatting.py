"""How report figures read as text, shared by the HTML and Markdown renderers."""

from __future__ import annotations

from datetime import datetime

from shadowcanary.report.model import TenantScope

NO_DATA = "no data yet"
TRIGGERS_WITHHELD = (
    "Not shown in a tenant's report: the triggers' statistics are computed over every "
    "tenant's calls."
)
DASH = "\u2013"  # an absent figure
MINUS = "\u2212"


def tenant_note(scope: TenantScope, since: datetime, until: datetime) -> str:
    """What a tenant's report counts (that tenant's calls alone) and what it leaves out."""
    note = (
        f"Tenant {scope.tenant}: every figure (requests, error rates, latencies, tokens, "
        "cost, similarity) and every prompt and answer shown come from this tenant's calls "
        "only. The rollout's status, candidate share and step history are the whole "
        "rollout's (the flag is shared by every tenant); the rollback triggers' evidence "
        "and the controller's reasons are computed over every tenant's calls and are left "
        "out."
    )
    if scope.starts_at_retention:
        note += (
            f" Raw calls are kept for {scope.retention_days} "
            f"day{'' if scope.retention_days == 1 else 's'} (retention_days): this report "
            f"starts at {when(since)}, not at the rollout's start."
        )
    if not scope.calls:
        note += (
            f" No calls from tenant {scope.tenant} are stored for this rollout between "
            f"{when(since)} and {when(until)}: check the name (it must match exactly what "
            "the services send)."
        )
    return note


def whole_rollout(tenant: str | None) -> str:
    """A label for the rollout's own state in a tenant's report."""
    return "" if tenant is None else " (whole rollout)"


def ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f} ms"


def percent(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def usd(value: float | None, *, signed: bool = False) -> str:
    """Dollars with enough digits for a per-request cost ($0.000412) or a month ($1,234)."""
    if value is None:
        return DASH
    sign = (
        ("+" if value > 0 else MINUS if value < 0 else "") if signed else ("-" if value < 0 else "")
    )
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{magnitude:,.0f}"
    elif magnitude >= 1:
        text = f"{magnitude:,.2f}"
    elif magnitude == 0:
        text = "0"
    else:
        text = f"{magnitude:.6f}".rstrip("0")
    return f"{sign}${text}"


def number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def count(value: int) -> str:
    return f"{value:,}"


def when(moment: datetime | None) -> str:
    return DASH if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def statistic(value: float | None) -> str:
    """An e-value or likelihood ratio: spans many orders of magnitude."""
    if value is None:
        return DASH
    if value == float("inf"):
        return "∞"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-2):
        return f"{value:.2e}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def step(from_percent: int | None, to_percent: int) -> str:
    return f"{to_percent} %" if from_percent is None else f"{from_percent} % → {to_percent} %"
