"""Webhook notifications: Slack-compatible JSON (``text`` + ``blocks``) with the numbers.

A notification says what happened to a rollout (a decision, an operator command, a
manual override, an outage), why, the flag percentage before and after, and the
numbers of the triggers that mattered, so the person reading it in a channel can act
without opening anything else. Slack, Mattermost, Rocket.Chat and most chat tools
accept this payload on an incoming webhook; ``text`` is the fallback the others show.

Sending never raises into the tick: a webhook that is down, slow or answers an error
is logged (by host only: a Slack webhook URL *is* a secret) and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import structlog

from shadowcanary.judge.decide import Decision, DecisionKind
from shadowcanary.judge.triggers import TriggerResult, Verdict
from shadowcanary.rollout_records import RolloutRecord

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 3.0
# Slack rejects a section text over 3,000 characters; reasons can list many triggers.
_MAX_TEXT = 2_900
_MAX_TRIGGER_LINES = 8

_TITLES = {"override": "MANUAL OVERRIDE"}
_ICONS = {
    "advance": ":arrow_up:",
    "complete": ":white_check_mark:",
    "rollback": ":rotating_light:",
    "hold": ":pause_button:",
    "override": ":raised_hand:",
    "alert": ":warning:",
    "start": ":rocket:",
    "pause": ":double_vertical_bar:",
    "resume": ":arrow_forward:",
    "promote": ":fast_forward:",
    "abort": ":octagonal_sign:",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one rollout."""

    rollout: str
    event: str  # advance | complete | rollback | hold | override | alert | operator
    summary: str  # one line: "ROLLBACK checkout-gpt55: 30 % -> 0 %"
    reason: str
    actor: str
    from_percent: int | None = None
    to_percent: int | None = None
    escalate: bool = False
    escalation: str | None = None  # who to page, from the plan
    triggers: tuple[TriggerResult, ...] = ()

    @classmethod
    def of_decision(cls, record: RolloutRecord, decision: Decision, actor: str) -> Notification:
        """The message for a decision the controller acted on (or escalated)."""
        to = decision.to_percent
        change = (
            f"{decision.from_percent} % -> {to} %"
            if to is not None
            else f"stays at {decision.from_percent} %"
        )
        return cls(
            rollout=record.name,
            event=decision.kind.value,
            summary=f"{decision.kind.value.upper()} {record.name}: {change}",
            reason=decision.reason,
            actor=actor,
            from_percent=decision.from_percent,
            to_percent=to,
            escalate=decision.escalate,
            escalation=record.plan.escalation,
            triggers=_notable(decision),
        )

    @classmethod
    def change(
        cls,
        record: RolloutRecord,
        event: str,
        reason: str,
        actor: str,
        from_percent: int | None,
        to_percent: int | None,
    ) -> Notification:
        """A change that is not the judge's: an override found, an operator's command."""
        title = _TITLES.get(event, event.upper())
        if to_percent is None:
            moved = f"at {from_percent} %" if from_percent is not None else ""
        elif from_percent is None or from_percent == to_percent:
            moved = f"{to_percent} %"
        else:
            moved = f"{from_percent} % -> {to_percent} %"
        return cls(
            rollout=record.name,
            event=event,
            summary=f"{title} {record.name}: {moved}".rstrip(": "),
            reason=reason,
            actor=actor,
            from_percent=from_percent,
            to_percent=to_percent,
            # A person changed the flag behind the controller's back: someone must look.
            escalate=event == "override",
            escalation=record.plan.escalation,
        )

    @classmethod
    def alert(
        cls, record: RolloutRecord, reason: str, actor: str, *, escalate: bool
    ) -> Notification:
        """A dependency went down (escalate) or came back."""
        what = "HOLD" if escalate else "RECOVERED"
        return cls(
            rollout=record.name,
            event="alert",
            summary=f"{what} {record.name}: {reason.split(';', 1)[0]}",
            reason=reason,
            actor=actor,
            from_percent=record.percent,
            escalate=escalate,
            escalation=record.plan.escalation,
        )


def _notable(decision: Decision) -> tuple[TriggerResult, ...]:
    """The triggers worth a line: harmful ones first, then the ones holding the step."""
    harm = [t for t in decision.triggers if t.verdict is Verdict.HARM]
    if decision.kind is DecisionKind.ROLLBACK or harm:
        return tuple(harm)
    return tuple(t for t in decision.triggers if t.blocks_advance)[:_MAX_TRIGGER_LINES]


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _trigger_line(t: TriggerResult) -> str:
    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    return (
        f"• *{t.name}* ({t.mode.value}): {t.verdict.value}; estimate {num(t.estimate)}, "
        f"upper {num(t.upper)} vs margin {num(t.margin)}; "
        f"statistic {t.statistic:.3g} vs {t.threshold:.3g}; n = {t.n_candidate} canary / "
        f"{t.n_baseline} baseline"
    )


def slack_payload(message: Notification) -> dict[str, Any]:
    """The webhook body: ``text`` (fallback and notifications) and Block Kit ``blocks``."""
    icon = _ICONS.get(message.event, ":information_source:")
    head = f"{icon} {message.summary}"
    if message.escalate:
        who = f" {message.escalation}" if message.escalation else ""
        head += f" — needs a person{who}"
    fields = [
        {"type": "mrkdwn", "text": f"*Rollout*\n{message.rollout}"},
        {"type": "mrkdwn", "text": f"*Event*\n{message.event}"},
        {"type": "mrkdwn", "text": f"*From*\n{_percent(message.from_percent)}"},
        {"type": "mrkdwn", "text": f"*To*\n{_percent(message.to_percent)}"},
        {"type": "mrkdwn", "text": f"*Actor*\n{message.actor}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(head)}},
        {"type": "section", "fields": fields},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*Reason*\n{message.reason}")},
        },
    ]
    if message.triggers:
        lines = "\n".join(_trigger_line(t) for t in message.triggers[:_MAX_TRIGGER_LINES])
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Triggers*\n{lines}")}}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"`shadowcanary rollout status {message.rollout}` · "
                    f"`shadowcanary rollout rollback {message.rollout}`",
                }
            ],
        }
    )
    return {"text": _clip(f"{head}: {message.reason}"), "blocks": blocks}


def _percent(value: int | None) -> str:
    return "—" if value is None else f"{value} %"


def _where(url: str) -> str:
    """Scheme and host of a webhook URL: its path and query often hold the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def redacted_webhook(url: str) -> str:
    """A webhook URL with its path and query (the secret, for Slack) replaced.

    Still a valid http(s) URL, so a plan holding it validates: what the audit log keeps
    of a plan, so replaying a decision works without storing the secret a second time.
    """
    return f"{_where(url)}/<redacted>"


class Notifier(Protocol):
    """Delivers notifications; never raises."""

    def send(self, webhooks: Sequence[str], message: Notification) -> None: ...


class WebhookNotifier:
    """POSTs the Slack-compatible payload to each webhook with a short timeout."""

    def __init__(
        self, *, timeout_s: float = DEFAULT_TIMEOUT_S, client: httpx.Client | None = None
    ) -> None:
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._owns_client = client is None

    def send(self, webhooks: Sequence[str], message: Notification) -> None:
        if not webhooks:
            return
        body = slack_payload(message)
        for url in webhooks:
            try:
                response = self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                log.warning(
                    "webhook failed",
                    rollout=message.rollout,
                    webhook=_where(url),
                    error=type(exc).__name__,
                )
                continue
            if response.status_code >= 400:
                log.warning(
                    "webhook refused",
                    rollout=message.rollout,
                    webhook=_where(url),
                    status=response.status_code,
                )
            else:
                log.info(
                    "webhook sent",
                    rollout=message.rollout,
                    webhook=_where(url),
                    kind=message.event,
                )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
