"""The report as Markdown: the same figures as tables, for a ticket, a PR or a chat.

Texts from the store may contain Markdown or HTML. Table cells escape both; prompts
and answers sit in fenced blocks longer than any backtick run inside them, so a
renderer shows them literally.
"""

from __future__ import annotations

import html
import re

from shadowcanary.report import formatting as fmt
from shadowcanary.report.judge_section import judge_markdown
from shadowcanary.report.model import QUANTILES, ArmCost, ReportData
from shadowcanary.report.outcomes import outcome_markdown

_BACKTICKS = re.compile(r"`+")


def _cell(value: object) -> str:
    """Safe inside a table cell: no HTML, no pipes, no line breaks."""
    text = html.escape(str(value), quote=False)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _text(value: object) -> str:
    """Safe as running text: HTML escaped (Markdown renderers pass raw HTML through)."""
    return html.escape(str(value), quote=False)


def _fence(text: str) -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _header(*names: str) -> list[str]:
    return [_row(*names), "|" + "|".join("---" for _ in names) + "|"]


def _measured_on(cost: ArmCost) -> str:
    if cost.source == "live":
        return f"{fmt.count(cost.requests)} live requests"
    if cost.source == "shadow":
        return f"{fmt.count(cost.requests)} shadow replays"
    return fmt.NO_DATA


def render_markdown(data: ReportData) -> str:
    """The report as a Markdown document."""
    r, cost, sim = data.rollout, data.cost, data.similarity
    out = [
        f"# Rollout report: {_text(r.name)}",
        "",
        f"{_text(r.baseline)} → {_text(r.candidate)} on flag **{_text(r.flag)}** "
        f"(Unleash project {_text(r.project)}, environment {_text(r.environment)}). "
        f"Status{fmt.whole_rollout(data.tenant)} **{_text(r.status)}**, candidate at "
        f"**{r.percent} %** (steps {' → '.join(str(s) for s in r.steps)} %).",
        "",
        f"Generated {fmt.when(data.generated_at)}; figures from {fmt.when(data.since)} "
        f"to {fmt.when(data.until)}.",
        "",
    ]
    if r.phase:
        out += [
            f"Phase{fmt.whole_rollout(data.tenant)}: {_text(r.phase)}. Shadow gate: "
            f"{_text(r.gate_rule)}. Watch after 100 %: {_text(r.watch_rule)}. "
            f"Decommission {_text(r.baseline)}? {_text(r.decommission)}.",
            "",
        ]
    if data.tenant_scope is not None:
        note = fmt.tenant_note(data.tenant_scope, data.since, data.until)
        out += [f"_{_text(note)}_", ""]
    if data.last_decision is not None:
        d = data.last_decision
        out += [
            f"**Last decision{fmt.whole_rollout(data.tenant)}** ({fmt.when(d.at)}, "
            f"{_text(d.actor)}): **{_text(d.action)}** — "
            f"{_text(d.reason)}",
            "",
        ]
    out += ["## Live health per arm", ""]
    if data.has_live_data:
        quantile_names = [f"p{round(q * 100)}" for q in QUANTILES]
        out += _header("arm", "model", "requests", "error rate", *quantile_names, "mean latency")
        for arm, s in data.arms.items():
            out.append(
                _row(
                    arm,
                    s.model,
                    fmt.count(s.requests),
                    fmt.percent(s.error_rate),
                    *(fmt.ms(s.latency_ms[q]) for q in QUANTILES),
                    fmt.ms(s.latency_mean_ms),
                )
            )
    else:
        out.append(f"_{fmt.NO_DATA}_")
    out += ["", "## Tokens and cost per request", ""]
    out += _header(
        "arm", "model", "measured on", "prompt tokens", "completion tokens", "cost per request"
    )
    for c in (cost.baseline, cost.candidate):
        out.append(
            _row(
                c.arm,
                c.model,
                _measured_on(c),
                fmt.number(c.prompt_tokens),
                fmt.number(c.completion_tokens),
                fmt.usd(c.cost_per_request_usd),
            )
        )
    out.append("")
    if cost.monthly_delta_usd is not None:
        out.append(
            f"**Projected monthly cost delta: {fmt.usd(cost.monthly_delta_usd, signed=True)}** "
            f"at {fmt.number(cost.requests_per_day, 0)} requests/day "
            f"({fmt.usd(cost.baseline_monthly_usd)} → {fmt.usd(cost.candidate_monthly_usd)} "
            "per month)."
        )
    else:
        out.append(f"**Projected monthly cost delta:** {fmt.NO_DATA}.")
    out += ["", f"_Assumption:_ {_text(cost.assumption)}"]
    if data.outcomes is not None:
        out += outcome_markdown(data.outcomes, _cell)
    out += ["", "## Similarity vs noise floor", ""]
    if sim.candidate_n or sim.noise_n:
        out.append(
            f"Candidate vs live: mean {fmt.number(sim.candidate_mean, 3)} over "
            f"{fmt.count(sim.candidate_n)} comparisons; noise floor (baseline vs itself): mean "
            f"{fmt.number(sim.noise_mean, 3)} over {fmt.count(sim.noise_n)}."
        )
        out += ["", *_header("similarity", "candidate", "noise floor")]
        for i, (cand, noise) in enumerate(zip(sim.candidate, sim.noise, strict=True)):
            if cand or noise:
                out.append(_row(f"{sim.edges[i]:.2f} to {sim.edges[i + 1]:.2f}", cand, noise))
    else:
        out.append(f"_{fmt.NO_DATA}_")
    out += ["", "## Rollback triggers (latest decision)", ""]
    if data.triggers:
        out += _header(
            "trigger", "mode", "verdict", "statistic", "threshold", "estimate", "upper", "margin"
        )
        for t in data.triggers:
            p = t.latest
            if p is None:
                continue
            out.append(
                _row(
                    t.name,
                    t.mode,
                    p.verdict,
                    fmt.statistic(p.statistic),
                    fmt.statistic(p.threshold),
                    fmt.statistic(p.estimate),
                    fmt.statistic(p.upper),
                    fmt.statistic(t.margin),
                )
            )
    elif data.tenant is not None:
        out.append(f"_{fmt.TRIGGERS_WITHHELD}_")
    else:
        out.append(f"_{fmt.NO_DATA}_")
    if data.shadow_spend:
        out += ["", "## Shadow spend per decision", ""]
        out += _header("decided at", "decision", "at %", "replays", "tokens", "cost")
        for spent in data.shadow_spend[-30:]:  # the newest; the audit log has every one
            out.append(
                _row(
                    fmt.when(spent.at),
                    spent.action,
                    "-" if spent.percent is None else f"{spent.percent} %",
                    fmt.count(spent.replays),
                    fmt.count(spent.tokens),
                    f"${spent.cost_usd:.4f}",
                )
            )
    out += ["", f"## Step history{fmt.whole_rollout(data.tenant)}", ""]
    if data.steps:
        out += _header("when", "flag", "action", "by", "reason")
        for mark in data.steps:
            out.append(
                _row(
                    fmt.when(mark.at),
                    fmt.step(mark.from_percent, mark.to_percent),
                    mark.action,
                    mark.actor,
                    mark.reason,
                )
            )
    else:
        out.append(f"_{fmt.NO_DATA}_")
    if data.tenant is None:
        out += judge_markdown(data.judge, _fence)
    out += ["", "## Most divergent prompts", ""]
    if not data.divergent:
        out.append(f"_{fmt.NO_DATA}_")
    for i, pair in enumerate(data.divergent, 1):
        out += [
            f"### {i}. similarity {pair.similarity:.3f} — route {_text(pair.route)}, "
            f"event {_text(pair.event_id)}",
            "",
            "Prompt:",
            "",
            _fence(pair.prompt),
            "",
            f"Live answer ({_text(pair.live_model)}):",
            "",
            _fence(pair.live_answer),
            "",
            f"Candidate answer ({_text(pair.candidate_model or r.candidate)}):",
            "",
            _fence(pair.candidate_answer),
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"
