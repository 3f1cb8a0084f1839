"""One controller tick for one rollout: re-read the flag, decide, apply, record, tell.

The order is chosen for safety (fail closed, never lose a change):

1. Under the rollout's operation lock (operator commands take it too, so a command
   and a tick never interleave), read the record. Paused, overridden and finished
   rollouts are left alone; a rolled-back rollout only has its flag kept at 0 %.
2. Re-read the flag. If it is not what the controller last set, someone changed it
   outside the controller (the Unleash UI): record MANUAL_OVERRIDE with the observed
   value, stop acting until ``resume``, notify.
3. Before the first step, freeze the baseline p99 from pre-canary traffic and move
   to the first step. Otherwise read the evidence (O(buckets)), ``decide`` and apply.
4. Flag changes follow *intent, flag, record*: an intent entry (the decision, no
   percentage) goes into the audit log first, then the flag is written, then the
   record and the confirming entry (with the evidence to replay the decision) are
   saved in one transaction. If the process dies between the flag write and the
   save, the next tick finds the flag at the intent's target with the intent as the
   newest entry and completes the transition instead of calling it an override; if
   the flag write never happened the flag still equals the record and nothing is
   amiss. (Why not a pending column: the audit log already orders the intent before
   the outcome, and it is where an SRE looks when reconstructing what happened.)
5. Postgres or the flag backend unreachable: HOLD (nothing is written to the flag),
   an ALERT entry and a notification once per outage, and the loop retries with
   backoff. Missing or stale evidence is the judge's HOLD.

The pure policies (``reconcile``, ``should_record_hold``) live in ``policy.py``;
``tests/unit/test_tick.py`` covers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from flags.base import FlagBackend, FlagChange, FlagState
from shadowcanary.controller import metrics
from shadowcanary.controller.notify import Notification, Notifier, redacted_webhook
from shadowcanary.controller.policy import (
    CONTROLLER_ACTOR,
    Sync,
    TickMemory,
    hold_signature,
    pending_intent,
    reconcile,
    should_record_hold,
    step_of,
)
from shadowcanary.errors import (
    FlagNotFound,
    FlagRejected,
    ServiceUnavailable,
    ShadowCanaryError,
)
from shadowcanary.judge.decide import Decision, DecisionInputs, DecisionKind, decide
from shadowcanary.judge.evidence import Evidence
from shadowcanary.judge.sampling import replay_rate
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus
from shadowcanary.store.evidence_reads import newest_data_at
from shadowcanary.store.rollouts import RolloutStore

log = structlog.get_logger(__name__)

# Pre-canary traffic this far before the rollout's start counts for the baseline p99.
PRE_CANARY_LOOKBACK = timedelta(hours=1)
# At every ADVANCE the tail threshold is placed again from the baseline arm's traffic of
# this window (when it has enough): the next step compares both arms near the tail as
# the baseline is now, not as it was before the canary.
RECENT_P99_WINDOW = timedelta(minutes=30)

FlagsFor = Callable[[RolloutPlan], FlagBackend]
EvidenceFor = Callable[[RolloutRecord, datetime], Evidence]
BaselineP99For = Callable[[RolloutRecord, datetime], float | None]
# Baseline requests seen so far towards freezing the p99, and how many it needs.
BaselineSeenFor = Callable[[RolloutRecord, datetime], tuple[int, int]]
RunbookHook = Callable[[RolloutRecord, Decision | None], None]
OperationLock = Callable[[str], AbstractContextManager[object]]


class TickOutcome(StrEnum):
    DECIDED = "decided"  # the judge decided (and the decision was applied)
    IDLE = "idle"  # paused, overridden or finished: nothing to do
    OVERRIDE = "override"  # a manual change was found; the controller stopped
    UNAVAILABLE = "unavailable"  # Postgres or the flag backend is down: held


@dataclass(frozen=True, slots=True)
class TickResult:
    rollout: str
    outcome: TickOutcome
    record: RolloutRecord | None = None
    decision: Decision | None = None
    flag_changed: bool = False
    service: str | None = None  # postgres | flags, when UNAVAILABLE
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TickPorts:
    """Everything a tick touches, injected so the loop, the CLI and tests wire their own."""

    store: RolloutStore
    flags_for: FlagsFor
    notifier: Notifier
    clock: Callable[[], datetime]
    evidence_for: EvidenceFor
    baseline_p99_for: BaselineP99For
    runbook: RunbookHook
    operation_lock: OperationLock = lambda _name: nullcontext()
    actor: str = CONTROLLER_ACTOR
    baseline_seen_for: BaselineSeenFor | None = None
    # Where the adaptive replay rate goes after each decision (judge/sampling.py).
    publish_replay_rate: Callable[[str, float], None] | None = None
    # The baseline arm's p99 over [now - RECENT_P99_WINDOW, now); None: not enough traffic.
    recent_baseline_p99_for: BaselineP99For | None = None


class _Down(Exception):
    """A dependency failed mid-tick; carries which one."""

    def __init__(self, service: str, error: ShadowCanaryError) -> None:
        super().__init__(str(error))
        self.service = service
        self.error = error


@contextmanager
def _guard(service: str) -> Iterator[None]:
    try:
        yield
    except ServiceUnavailable as exc:
        raise _Down(service, exc) from exc


# --- the tick ------------------------------------------------------------------------


def tick(ports: TickPorts, name: str, memory: TickMemory) -> TickResult:
    """Run one tick of rollout ``name``; never raises for an unreachable dependency."""
    now = ports.clock()
    try:
        with _guard("postgres"), ports.operation_lock(name):
            result = _Tick(ports, memory, now).run(name)
    except _Down as down:
        result = _unavailable(ports, memory, name, down, now)
    metrics.TICKS.labels(name, result.outcome.value).inc()
    if result.record is not None:
        metrics.observe_status(name, result.record.status.value)
    return result


@dataclass(slots=True)
class _Tick:
    ports: TickPorts
    memory: TickMemory
    now: datetime

    @property
    def store(self) -> RolloutStore:
        return self.ports.store

    def run(self, name: str) -> TickResult:
        with _guard("postgres"):
            record = self.store.get(name)
        self.memory.record = record
        self._back_up("postgres", record)
        status = record.status
        if status in (RolloutStatus.PAUSED, RolloutStatus.OVERRIDDEN):
            return self._observe(record)
        if status is RolloutStatus.COMPLETED:
            return TickResult(name, TickOutcome.IDLE, record, detail=f"rollout is {status.value}")
        if status is RolloutStatus.ABORTED:
            return TickResult(name, TickOutcome.IDLE, record, detail="rollout was aborted")
        flags = self.ports.flags_for(record.plan)
        try:
            with _guard("flags"):
                state = flags.read(record.plan.flag)
        except FlagNotFound as exc:
            return self._override(record, 0, f"the flag is gone ({exc.message})", flags)
        except FlagRejected as exc:  # a revoked token: as good as down, and an SRE must know
            raise _Down("flags", exc) from exc
        self._back_up("flags", record)
        metrics.observe_percent(name, state.effective_percent)
        if status is RolloutStatus.ROLLED_BACK:
            return self._keep_rolled_back(record, flags, state)
        observed = state.effective_percent
        intent = None
        if observed != record.percent:
            with _guard("postgres"):
                intent = pending_intent(self.store.history(name, limit=20))
        sync = reconcile(record, observed, intent)
        if sync is Sync.OVERRIDE:
            return self._override(record, observed, f"the flag is at {observed} %", flags)
        if sync is Sync.RECOVER and intent is not None:
            record = self._recover(record, observed, intent)
            if record.status is not RolloutStatus.RUNNING:
                return TickResult(name, TickOutcome.DECIDED, record, detail="recovered")
        if record.step_index < 0:
            return self._first_step(record, flags)
        return self._decide_and_apply(record, flags)

    # -- the judge's decision ------------------------------------------------------

    def _judge(self, record: RolloutRecord) -> tuple[Decision, dict[str, Any]]:
        """The judge's decision on the current evidence, and its replayable inputs."""
        with _guard("postgres"):
            evidence = self.ports.evidence_for(record, self.now)
        state = record.judge_state(newest_data_at(evidence))
        decision = decide(record.plan, state, evidence, self.now)
        if self.ports.publish_replay_rate is not None and record.plan.replay_sampling:
            rate = replay_rate(record.plan, state, decision, self.now)
            self.ports.publish_replay_rate(record.name, rate.rate)
            log.info("replay rate", rollout=record.name, rate=rate.rate, reason=rate.reason)
        return decision, json_inputs(DecisionInputs(record.plan, state, evidence, self.now))

    def _decide_and_apply(self, record: RolloutRecord, flags: FlagBackend) -> TickResult:
        if record.baseline_p99_ms is None and record.plan.triggers.p99_latency.enabled:
            record = self._freeze_late(record)
        decision, inputs = self._judge(record)
        metrics.observe_decision(record.name, decision)
        log.info(
            "decision",
            rollout=record.name,
            kind=decision.kind.value,
            from_percent=decision.from_percent,
            to_percent=decision.to_percent,
            reason=decision.reason[:300],
        )
        if decision.kind is DecisionKind.HOLD:
            return self._hold(record, decision, inputs)
        if decision.kind is DecisionKind.COMPLETE:
            entry = self._entry(
                record, AuditAction.COMPLETE, 100, None, decision.reason, decision, inputs
            )
            done = replace(record, status=RolloutStatus.COMPLETED, updated_at=self.now)
            return self._applied(self._save(done, entry), decision, changed=False)
        target = decision.to_percent if decision.kind is DecisionKind.ADVANCE else 0
        assert target is not None  # ADVANCE always names its step
        return self._move(record, flags, decision, inputs, target)

    def _first_step(self, record: RolloutRecord, flags: FlagBackend) -> TickResult:
        """Pass the shadow gate, freeze the baseline p99 from pre-canary traffic, then move
        to the first step."""
        plan, p99 = record.plan, None
        gate: tuple[Decision, dict[str, Any]] | None = None
        if plan.shadow is not None:  # judge/phases.py: nobody sees the candidate before
            gate = self._judge(record)
            metrics.observe_decision(record.name, gate[0])
            if gate[0].kind is DecisionKind.HOLD:
                return self._hold(record, *gate)
            if gate[0].kind is DecisionKind.ROLLBACK:
                return self._move(record, flags, gate[0], gate[1], 0)
        tail = plan.triggers.p99_latency
        first = plan.steps[0].percent
        if tail.enabled:
            with _guard("postgres"):
                p99 = self.ports.baseline_p99_for(record, self.now)
            if p99 is None:
                deadline = plan.exposure_at(0).deadline
                late = self.now - record.started_at > deadline
                decision = Decision(
                    kind=DecisionKind.HOLD,
                    reason=self._waiting_for_baseline(record)
                    + (f"; past the first step's deadline ({deadline})" if late else ""),
                    from_percent=0,
                    to_percent=None,
                    decided_at=self.now,
                    escalate=late,
                )
                return self._hold(record, decision, None)
        frozen = f"baseline p99 frozen at {p99:.0f} ms; " if p99 is not None else ""
        if gate is not None:  # the gate's ADVANCE as decided, so its audit row replays
            decision, inputs = gate
        else:
            decision, inputs = (
                Decision(
                    kind=DecisionKind.ADVANCE,
                    reason=f"{frozen}moving to the first step",
                    from_percent=0,
                    to_percent=first,
                    decided_at=self.now,
                ),
                None,
            )
            metrics.observe_decision(record.name, decision)
        return self._move(replace(record, baseline_p99_ms=p99), flags, decision, inputs, first)

    def _freeze_late(self, record: RolloutRecord) -> RolloutRecord:
        """Freeze the p99 a promote could not (too little pre-canary traffic) once the
        baseline arm has served enough. The tail trigger compares both arms above the
        frozen p99 + margin, so the p99 only places the comparison and may come from
        baseline traffic served alongside the canary (docs/guarantees.md 7.10)."""
        with _guard("postgres"):
            p99 = self.ports.baseline_p99_for(record, self.now)
        if p99 is None:
            return record
        reason = (
            f"baseline p99 frozen at {p99:.0f} ms from the baseline arm's traffic so far "
            "(it was not frozen before the canary); the p99_latency trigger judges from now on"
        )
        entry = self._entry(record, AuditAction.HOLD, record.percent, None, reason)
        log.info("baseline p99 frozen late", rollout=record.name, p99_ms=round(p99))
        return self._save(replace(record, baseline_p99_ms=p99, updated_at=self.now), entry)

    def _waiting_for_baseline(self, record: RolloutRecord) -> str:
        """The pre-canary HOLD's reason: how many baseline requests of how many, and how."""
        seen = ""
        if self.ports.baseline_seen_for is not None:
            with _guard("postgres"):
                count, needed = self.ports.baseline_seen_for(record, self.now)
            seen = f": {count:,} of {needed:,} baseline requests seen"
        return (
            "waiting for enough pre-canary baseline traffic to freeze the p99 latency "
            f"threshold{seen} (MIN_P99_REQUESTS); no canary before that. Send live calls "
            f"tagged rollout={record.name} (arm baseline) through the tap or the gateway, "
            f"e.g. `shadowcanary up --rollout {record.name}` locally, or turn the "
            "p99_latency trigger off in the plan"
        )

    def _move(
        self,
        record: RolloutRecord,
        flags: FlagBackend,
        decision: Decision,
        inputs: dict[str, Any] | None,
        target: int,
    ) -> TickResult:
        """ADVANCE or ROLLBACK: intent, flag, then record + confirming entry."""
        rollback = decision.kind is DecisionKind.ROLLBACK
        action = AuditAction.ROLLBACK if rollback else AuditAction.ADVANCE
        reason = f"intent: setting the flag to {target} %; {decision.reason}"
        intent = self._entry(record, action, record.percent, None, reason, decision)
        with _guard("postgres"):
            self.store.append_audit(intent)
        failure = self._write_flag(flags, record.plan.flag, None if rollback else target)
        if failure is not None and not rollback:
            # Close the intent: a later change to this very percentage is someone else's.
            reason = (
                f"not applied: the flag could not be set to {target} % "
                f"({_error_text(failure)}); holding at {record.percent} %"
            )
            with _guard("postgres"):
                self.store.append_audit(
                    self._entry(record, AuditAction.HOLD, record.percent, None, reason)
                )
            raise failure
        if failure is not None:
            # A rollback is recorded even when the flag cannot be written yet: the
            # rolled-back rollout's ticks keep trying until the flag is at 0 %.
            reason = (
                f"{decision.reason}; the flag could not be set to 0 % yet "
                f"({_error_text(failure)}): the controller retries every tick"
            )
            entry = self._entry(record, action, record.percent, None, reason, decision, inputs)
            moved = replace(
                record, status=RolloutStatus.ROLLED_BACK, percent=0, updated_at=self.now
            )
            return self._applied(self._save(moved, entry), decision, changed=False)
        metrics.ACTIONS.labels(record.name, action.value).inc()
        entry = self._entry(
            record, action, record.percent, target, decision.reason, decision, inputs
        )
        if rollback:
            moved = replace(
                record, status=RolloutStatus.ROLLED_BACK, percent=0, updated_at=self.now
            )
        else:
            moved = replace(
                record,
                step_index=record.plan.step_percents.index(target),
                percent=target,
                step_started_at=self.now,
                updated_at=self.now,
                baseline_p99_ms=self._recent_p99(record),
            )
            if moved.baseline_p99_ms != record.baseline_p99_ms:
                placed = f"; tail threshold placed at baseline p99 {moved.baseline_p99_ms:.0f} ms"
                entry = replace(entry, reason=entry.reason + placed + " (last 30 min)")
        return self._applied(self._save(moved, entry), decision, changed=True)

    def _recent_p99(self, record: RolloutRecord) -> float | None:
        """The p99 the next step's tail trigger compares both arms at (docs/guarantees 7.3).

        Taken from the baseline arm's traffic before the step starts, so the step's own
        minutes do not place the threshold they are tested at. Kept when that window
        has too little baseline traffic, or Postgres cannot say.
        """
        find = self.ports.recent_baseline_p99_for
        if find is None or not record.plan.triggers.p99_latency.enabled:
            return record.baseline_p99_ms
        try:
            recent = find(record, self.now)
        except ServiceUnavailable:  # the flag is written: keep the old threshold, never fail
            return record.baseline_p99_ms
        return record.baseline_p99_ms if recent is None else recent

    def _write_flag(self, flags: FlagBackend, flag: str, percent: int | None) -> _Down | None:
        """Set the flag (None: disable it); the failure, if any, instead of raising it."""
        try:
            with _guard("flags"):
                if percent is None:
                    flags.disable(flag)
                else:
                    flags.set_rollout(flag, percent)
        except _Down as down:
            return down
        except (FlagRejected, FlagNotFound) as exc:
            return _Down("flags", exc)
        return None

    def _hold(
        self, record: RolloutRecord, decision: Decision, inputs: dict[str, Any] | None
    ) -> TickResult:
        """Record the HOLD when its shape changed; escalate at most once per step."""
        key = (record.step_index, record.step_started_at)
        escalate = decision.escalate and self.memory.escalated != key
        if escalate and self._already_escalated(record):
            self.memory.escalated = key
            escalate = False
        if escalate or should_record_hold(decision, self.memory, self.now):
            action = AuditAction.ESCALATE if escalate else AuditAction.HOLD
            entry = self._entry(
                record, action, record.percent, None, decision.reason, decision, inputs
            )
            with _guard("postgres"):
                self.store.append_audit(entry)
            self._remember_hold(decision)
        if escalate:
            self.memory.escalated = key
            self._tell(record, Notification.of_decision(record, decision, self.ports.actor))
        self.ports.runbook(record, decision)
        return TickResult(record.name, TickOutcome.DECIDED, record, decision)

    def _already_escalated(self, record: RolloutRecord) -> bool:
        """After a restart: did an earlier run already escalate this step?"""
        with _guard("postgres"):
            history = self.store.history(record.name, limit=50)
        return any(
            e.action is AuditAction.ESCALATE and e.at >= record.step_started_at for e in history
        )

    def _remember_hold(self, decision: Decision) -> None:
        self.memory.hold_signature = hold_signature(decision)
        self.memory.hold_recorded_at = self.now

    # -- the flag disagrees --------------------------------------------------------

    def _observe(self, record: RolloutRecord) -> TickResult:
        """Paused or overridden: never act, but keep the record true to the flag.

        A person may move the flag again after the override (25 % -> 40 % in the UI):
        each change is recorded with who made it, sent to the webhooks and put in the
        runbook, so status, runbook and the audit log never show a stale percentage.
        """
        status = record.status
        detail = f"rollout is {status.value}"
        idle = TickResult(record.name, TickOutcome.IDLE, record, detail=detail)
        flags = self.ports.flags_for(record.plan)
        try:
            with _guard("flags"):
                observed = flags.read(record.plan.flag).effective_percent
        except FlagNotFound:
            observed = 0  # the flag is gone: nobody gets the candidate
        except FlagRejected as exc:
            raise _Down("flags", exc) from exc
        self._back_up("flags", record)
        metrics.observe_percent(record.name, observed)
        if observed == record.percent:
            return idle
        actor, by = self._who(flags, record.plan.flag)
        reason = (
            f"the flag moved from {record.percent} % to {observed} % outside the controller "
            f"while the rollout is {status.value}, {by}; recorded only: the controller does "
            f"not act until `shadowcanary rollout resume {record.name}`"
        )
        entry = replace(
            self._entry(record, AuditAction.MANUAL_OVERRIDE, record.percent, observed, reason),
            actor=actor,
        )
        saved = self._save(replace(record, percent=observed, updated_at=self.now), entry)
        log.warning(
            "flag changed while not acting",
            rollout=record.name,
            status=status.value,
            observed=observed,
            recorded=record.percent,
        )
        self._tell(
            saved,
            Notification.change(saved, "override", reason, actor, record.percent, observed),
        )
        self.ports.runbook(saved, None)
        return TickResult(record.name, TickOutcome.OVERRIDE, saved, detail=reason)

    def _who(self, flags: FlagBackend, flag: str) -> tuple[str, str]:
        """(audit actor, text) naming who changed the flag, from the backend's event log.

        Best effort: the override is recorded whether or not the log can be read.
        """
        try:
            change: FlagChange | None = flags.last_change(flag)
        except ShadowCanaryError as exc:
            log.warning("flag event log unreadable", flag=flag, error=_error_text(exc))
            change = None
        if change is None:
            return self.ports.actor, "by someone the flag backend does not name"
        return f"unleash:{change.who}", f"by {change.describe()}"

    def _override(
        self, record: RolloutRecord, observed: int, what: str, flags: FlagBackend
    ) -> TickResult:
        actor, by = self._who(flags, record.plan.flag)
        reason = (
            f"{what} but the controller last set {record.percent} %: someone changed the "
            f"flag {record.plan.flag!r} outside the controller (Unleash UI or API), {by}. "
            f"The controller stops acting on this rollout until `shadowcanary rollout resume "
            f"{record.name}`"
        )
        entry = replace(
            self._entry(record, AuditAction.MANUAL_OVERRIDE, record.percent, observed, reason),
            actor=actor,
        )
        stopped = replace(
            record, status=RolloutStatus.OVERRIDDEN, percent=observed, updated_at=self.now
        )
        saved = self._save(stopped, entry)
        log.warning(
            "manual override", rollout=record.name, observed=observed, expected=record.percent
        )
        metrics.observe_percent(record.name, observed)
        self._tell(
            saved,
            Notification.change(saved, "override", reason, actor, record.percent, observed),
        )
        self.ports.runbook(saved, None)
        return TickResult(record.name, TickOutcome.OVERRIDE, saved, detail=reason)

    def _recover(self, record: RolloutRecord, observed: int, intent: AuditEntry) -> RolloutRecord:
        """The flag reached the intent's target but the record was never saved: finish it."""
        decision = Decision.from_dict(intent.decision or {})
        rollback = decision.kind is DecisionKind.ROLLBACK
        reason = (
            f"recovered: the controller set the flag to {observed} % at "
            f"{intent.at.isoformat()} and stopped before recording it; {decision.reason}"
        )
        entry = replace(intent, id=None, to_percent=observed, reason=reason)
        if rollback:
            moved = replace(
                record, status=RolloutStatus.ROLLED_BACK, percent=0, updated_at=self.now
            )
        else:
            step = step_of(record.plan, observed)
            assert step is not None  # an intent only ever names a step of the plan
            if record.step_index < 0 and record.plan.triggers.p99_latency.enabled:
                # The first step's save carried the frozen p99; freeze it again as then.
                with _guard("postgres"):
                    record = replace(
                        record, baseline_p99_ms=self.ports.baseline_p99_for(record, intent.at)
                    )
            moved = replace(
                record,
                step_index=step,
                percent=observed,
                step_started_at=intent.at,
                updated_at=self.now,
            )
        log.warning("transition recovered", rollout=record.name, percent=observed)
        return self._save(moved, entry)

    def _keep_rolled_back(
        self, record: RolloutRecord, flags: FlagBackend, state: FlagState
    ) -> TickResult:
        """A rolled-back rollout's flag stays at 0 % until the rollout is started again."""
        if state.effective_percent == 0:
            return TickResult(record.name, TickOutcome.IDLE, record, detail="rolled back")
        if self._flag_owned_by_another(record):
            return TickResult(record.name, TickOutcome.IDLE, record, detail="flag reused")
        failure = self._write_flag(flags, record.plan.flag, None)
        if failure is not None:
            raise failure
        metrics.ACTIONS.labels(record.name, "rollback").inc()
        reason = (
            f"the rollout is rolled back but the flag was at {state.effective_percent} %; "
            "set it to 0 % again (abort the rollout to let people drive the flag)"
        )
        entry = self._entry(record, AuditAction.ROLLBACK, state.effective_percent, 0, reason)
        saved = self._save(replace(record, percent=0, updated_at=self.now), entry)
        self._tell(
            saved,
            Notification.change(
                saved, "rollback", reason, self.ports.actor, state.effective_percent, 0
            ),
        )
        return TickResult(record.name, TickOutcome.DECIDED, saved, flag_changed=True)

    def _flag_owned_by_another(self, record: RolloutRecord) -> bool:
        with _guard("postgres"):
            others = self.store.list()
        return any(
            o.name != record.name and o.plan.flag == record.plan.flag and o.status.active
            for o in others
        )

    # -- plumbing ------------------------------------------------------------------

    def _entry(
        self,
        record: RolloutRecord,
        action: AuditAction,
        from_percent: int | None,
        to_percent: int | None,
        reason: str,
        decision: Decision | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            id=None,
            at=self.now,
            rollout=record.name,
            actor=self.ports.actor,
            action=action,
            from_percent=from_percent,
            to_percent=to_percent,
            reason=reason,
            decision=None if decision is None else decision.to_dict(),
            inputs=inputs,
        )

    def _save(self, record: RolloutRecord, entry: AuditEntry) -> RolloutRecord:
        with _guard("postgres"):
            saved = self.store.save(record, entry)
        self.memory.record = saved
        return saved

    def _applied(self, record: RolloutRecord, decision: Decision, *, changed: bool) -> TickResult:
        metrics.observe_percent(record.name, record.percent)
        self._tell(record, Notification.of_decision(record, decision, self.ports.actor))
        self.ports.runbook(record, decision)
        return TickResult(record.name, TickOutcome.DECIDED, record, decision, flag_changed=changed)

    def _tell(self, record: RolloutRecord, message: Notification) -> None:
        self.ports.notifier.send(record.plan.notify.webhooks, message)

    def _back_up(self, service: str, record: RolloutRecord) -> None:
        """The first success after an outage: an ALERT entry saying how long it lasted."""
        since = self.memory.down_since.get(service)
        if since is None:
            return
        seconds = (self.now - since).total_seconds()
        reason = (
            f"{_SERVICE_NAMES[service]} is reachable again after {seconds:.0f} s "
            f"(unreachable since {since.isoformat()}); the controller held and changed "
            "nothing meanwhile"
        )
        with _guard("postgres"):
            self.store.append_audit(self._entry(record, AuditAction.ALERT, None, None, reason))
        del self.memory.down_since[service]
        log.info("dependency back", rollout=record.name, service=service, down_s=round(seconds))
        self._tell(record, Notification.alert(record, reason, self.ports.actor, escalate=False))


_SERVICE_NAMES = {"postgres": "Postgres", "flags": "the flag backend"}


def _error_text(exc: Exception) -> str:
    inner = exc.error if isinstance(exc, _Down) else exc
    return inner.message if isinstance(inner, ShadowCanaryError) else type(inner).__name__


def json_inputs(inputs: DecisionInputs) -> dict[str, Any]:
    """``DecisionInputs`` as the JSON object an audit entry stores (replayable)."""
    result: dict[str, Any] = json.loads(inputs.to_json())
    # Webhook URLs are secrets (Slack's path is the credential) and decide() never reads
    # them: the audit log, shown by `rollout history --json`, keeps scheme and host only.
    notify = result["plan"].get("notify") or {}
    notify["webhooks"] = [redacted_webhook(url) for url in notify.get("webhooks", ())]
    return result


def held_unreachable(ports: TickPorts, name: str, memory: TickMemory) -> TickResult:
    """Postgres did not answer before the tick could start (the lock check failed)."""
    down = _Down("postgres", ServiceUnavailable("Postgres did not answer the lock check"))
    if memory.record is None:
        # Never read this rollout (started blind, or a standby): its plan, and so its
        # webhooks, live in Postgres. Log and count the outage, act on nothing. No
        # down_since either: a standby taking over hours later must not announce a
        # "reachable again after hours" it never saw end.
        metrics.UNAVAILABLE.labels(name, "postgres").inc()
        log.warning(
            "tick held: dependency unreachable",
            rollout=name,
            service="postgres",
            error=_error_text(down),
            rollout_never_read=True,
        )
        result = TickResult(name, TickOutcome.UNAVAILABLE, service="postgres")
    else:
        result = _unavailable(ports, memory, name, down, ports.clock())
    metrics.TICKS.labels(name, result.outcome.value).inc()
    return result


def _unavailable(
    ports: TickPorts, memory: TickMemory, name: str, down: _Down, now: datetime
) -> TickResult:
    """HOLD: nothing changes. The first failure of an outage alerts (once)."""
    service = down.service
    metrics.UNAVAILABLE.labels(name, service).inc()
    first = service not in memory.down_since
    log.warning(
        "tick held: dependency unreachable",
        rollout=name,
        service=service,
        error=_error_text(down),
        first=first,
    )
    if not first:
        return TickResult(name, TickOutcome.UNAVAILABLE, memory.record, service=service)
    memory.down_since[service] = now
    reason = (
        f"{_SERVICE_NAMES[service]} is unreachable ({_error_text(down)}); the controller "
        "holds (no flag change) and retries with backoff"
    )
    if service == "flags" and memory.record is not None:
        try:  # Postgres is up: the outage goes into the audit log now
            ports.store.append_audit(
                AuditEntry(None, now, name, ports.actor, AuditAction.ALERT, None, None, reason)
            )
        except ServiceUnavailable:
            memory.down_since.setdefault("postgres", now)
    if memory.record is not None:
        ports.notifier.send(
            memory.record.plan.notify.webhooks,
            Notification.alert(memory.record, reason, ports.actor, escalate=True),
        )
    return TickResult(name, TickOutcome.UNAVAILABLE, memory.record, service=service, detail=reason)
