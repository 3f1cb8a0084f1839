"""Operator commands on a rollout: start, pause, resume, promote, rollback, abort.

Each command runs under the rollout's operation lock (so it never interleaves with a
controller tick), writes one audit entry naming the actor (``cli:$USER``), notifies
the plan's webhooks and calls the runbook hook. Commands that change the flag write
the flag first and then the record: users are protected first, and if the command
dies in between the controller finds a flag it did not set, records a manual
override and stops, which is safe and visible.

Semantics an SRE can rely on:

- ``start``: creates the flag at 0 % if missing (refuses a flag that already serves
  the candidate) and the rollout; the controller's first tick freezes the baseline
  p99 and moves to the first step, so no user sees the candidate until a controller
  is watching.
- ``pause`` / ``resume``: the controller stops / starts acting. Resume adopts the
  flag's current percentage when it is a step of the plan, otherwise goes *down* to
  the highest step below it; it never raises exposure (a flag below the first step
  is refused, with the command that continues explicitly). Resume does NOT take the
  evidence of steps the person jumped over: from the 10 % step to 50 % it continues
  at 50 %, and the audit entry, the webhook and the command's output name the steps
  passed without evidence (10 % unfinished, 30 % never run). To have every step
  judged, move the flag back first (`rollout promote NAME --to 30`, or in Unleash)
  and then resume.
- ``promote [--to PCT]``: the next step (or PCT, a step of the plan) now. A promote
  out of the pre-canary phase freezes the baseline p99 first, as the controller's
  first step does (without it the tail-latency trigger could never judge); with too
  little pre-canary baseline traffic to freeze it, the promote goes ahead and its audit
  entry says plainly that the p99 trigger cannot judge until a later tick freezes it
  from the baseline arm's traffic.
- ``rollback``: flag to 0 % at once; idempotent; the controller keeps it at 0 %
  (if the flag cannot be written now, the rollback is recorded and every tick
  retries until it is).
- ``abort``: the controller lets go; the flag stays where it is.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from flags.base import FlagBackend, FlagSpec
from shadowcanary.controller.notify import Notification
from shadowcanary.controller.tick import TickPorts
from shadowcanary.errors import (
    FlagRejected,
    PermanentError,
    ServiceUnavailable,
    ShadowCanaryError,
)
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus
from shadowcanary.store.evidence_reads import MIN_P99_REQUESTS

log = structlog.get_logger(__name__)


class InvalidTransition(PermanentError):
    """The command does not apply to the rollout in its current status."""


def cli_actor() -> str:
    """``cli:<user>``: who ran the command, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def flag_spec(plan: RolloutPlan) -> FlagSpec:
    return FlagSpec(
        name=plan.flag,
        project=plan.unleash.project,
        environment=plan.unleash.environment,
        stickiness=plan.stickiness,
        baseline_model=plan.baseline,
        candidate_model=plan.candidate,
    )


def _passed_without_evidence(record: RolloutRecord, target: int) -> str:
    """The plain statement of the steps a resume at ``target`` skips (empty if none)."""
    steps = record.plan.step_percents
    at = steps.index(target)
    if at <= record.step_index:
        return ""
    passed = [f"{p} %" for p in steps[max(0, record.step_index) : at]]
    return (
        f"; WITHOUT the evidence of {', '.join(passed)} (resume does not go back to take it: "
        f"the triggers judge from {target} % on)"
    )


@dataclass(frozen=True, slots=True)
class Operator:
    """The commands, on the same ports as the controller (``ports.actor`` is the person)."""

    ports: TickPorts

    def start(self, plan: RolloutPlan) -> RolloutRecord:
        with self.ports.operation_lock(plan.name):
            for other in self.ports.store.list():
                if not other.status.active:
                    continue
                if other.name == plan.name:
                    raise InvalidTransition(
                        f"rollout {plan.name!r} is already {other.status.value}",
                        hint=f"`shadowcanary rollout status {plan.name}`; finish it (abort or "
                        "rollback) or give the new plan another name",
                    )
                if other.plan.flag == plan.flag:
                    raise InvalidTransition(
                        f"flag {plan.flag!r} is already driven by rollout {other.name!r} "
                        f"({other.status.value})",
                        hint=f"finish that rollout first (`shadowcanary rollout abort "
                        f"{other.name}`)",
                    )
            state = self._flags(plan).ensure_flag(flag_spec(plan))
            if state.effective_percent != 0:
                raise InvalidTransition(
                    f"flag {plan.flag!r} already serves the candidate to "
                    f"{state.effective_percent} % of users",
                    hint="set its rollout to 0 % (or turn it off) in Unleash before starting, "
                    "so the rollout begins from the baseline",
                )
            record = self.ports.store.create_rollout(
                plan, now=self.ports.clock(), actor=self.ports.actor
            )
        self._after(record, "start", f"rollout started by {self.ports.actor}", None, 0)
        return record

    def pause(self, name: str) -> RolloutRecord:
        with self.ports.operation_lock(name):
            record = self.ports.store.get(name)
            if record.status is RolloutStatus.PAUSED:
                return record
            self._require(record, "pause", {RolloutStatus.RUNNING, RolloutStatus.OVERRIDDEN})
            reason = "paused by an operator: the controller decides nothing until resumed"
            saved = self._save(record, RolloutStatus.PAUSED, AuditAction.PAUSE, reason)
        self._after(saved, "pause", reason, record.percent, None)
        return saved

    def resume(self, name: str) -> RolloutRecord:
        with self.ports.operation_lock(name):
            record = self.ports.store.get(name)
            if record.status is RolloutStatus.RUNNING:
                return record
            self._require(record, "resume", {RolloutStatus.PAUSED, RolloutStatus.OVERRIDDEN})
            flags = self._flags(record.plan)
            observed = flags.read(record.plan.flag).effective_percent
            target, reason = self._resume_target(record, observed)
            if target != observed and target == 0:
                flags.disable(record.plan.flag)
            elif target != observed:
                flags.set_rollout(record.plan.flag, target)
            now = self.ports.clock()
            steps = record.plan.step_percents
            step = steps.index(target) if target in steps else -1
            resumed = replace(record, status=RolloutStatus.RUNNING, updated_at=now)
            if (step, target) != (record.step_index, record.percent):
                resumed = replace(resumed, step_index=step, percent=target, step_started_at=now)
            # The timeline needs the percentage whenever the flag moved since last recorded.
            seen = target if record.percent != observed or target != observed else None
            entry = self._entry(record, AuditAction.RESUME, record.percent, seen, reason)
            saved = self.ports.store.save(resumed, entry)
        self._after(saved, "resume", reason, record.percent, seen)
        return saved

    def promote(self, name: str, to: int | None = None) -> RolloutRecord:
        with self.ports.operation_lock(name):
            record = self.ports.store.get(name)
            self._require(
                record,
                "promote",
                {RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.OVERRIDDEN},
            )
            steps = record.plan.step_percents
            if to is None:
                if record.step_index + 1 >= len(steps):
                    watch = record.plan.watch
                    raise InvalidTransition(
                        f"rollout {name!r} is at its last step ({steps[-1]} %)",
                        hint="the controller completes it on its next tick"
                        if watch is None
                        else f"the controller completes it once its watch ({watch.duration}) "
                        "has passed; `rollout abort` stops watching and leaves the flag at 100 %",
                    )
                to = steps[record.step_index + 1]
            if to not in steps:
                raise InvalidTransition(
                    f"{to} % is not a step of rollout {name!r}",
                    hint=f"use one of {', '.join(str(s) for s in steps)}",
                )
            now = self.ports.clock()
            baseline_p99, frozen = self._baseline_p99(record, now)
            self._flags(record.plan).set_rollout(record.plan.flag, to)
            status = (
                RolloutStatus.RUNNING
                if record.status is RolloutStatus.OVERRIDDEN
                else record.status
            )
            reason = (
                f"promoted to {to} % by an operator (the step's minimum exposure restarts){frozen}"
            )
            promoted = replace(
                record,
                status=status,
                step_index=steps.index(to),
                percent=to,
                step_started_at=now,
                updated_at=now,
                baseline_p99_ms=baseline_p99,
            )
            entry = self._entry(record, AuditAction.PROMOTE, record.percent, to, reason)
            saved = self.ports.store.save(promoted, entry)
        self._after(saved, "promote", reason, record.percent, to)
        return saved

    def rollback(self, name: str, why: str | None = None) -> RolloutRecord:
        """Flag to 0 % now. Raises the flag error *after* recording the rollback."""
        with self.ports.operation_lock(name):
            record = self.ports.store.get(name)
            flags = self._flags(record.plan)
            reason = "rolled back by an operator" + (f": {why}" if why else "")
            failure: ShadowCanaryError | None = None
            before = record.percent
            try:
                before = flags.read(record.plan.flag).effective_percent
                if record.status is RolloutStatus.ROLLED_BACK and before == 0:
                    return record  # already done: rollback is idempotent
                flags.disable(record.plan.flag)
            except (ServiceUnavailable, FlagRejected) as exc:
                failure = exc
                reason += (
                    f"; the flag could not be set to 0 % yet ({exc.message}): a running "
                    "controller retries every tick"
                )
            now = self.ports.clock()
            rolled = replace(record, status=RolloutStatus.ROLLED_BACK, percent=0, updated_at=now)
            entry = self._entry(
                record, AuditAction.ROLLBACK, before, None if failure else 0, reason
            )
            saved = self.ports.store.save(rolled, entry)
        self._after(saved, "rollback", reason, before, None if failure else 0)
        if failure is not None:
            raise failure
        return saved

    def abort(self, name: str) -> RolloutRecord:
        with self.ports.operation_lock(name):
            record = self.ports.store.get(name)
            if record.status is RolloutStatus.ABORTED:
                return record
            self._require(
                record,
                "abort",
                {
                    RolloutStatus.RUNNING,
                    RolloutStatus.PAUSED,
                    RolloutStatus.OVERRIDDEN,
                    RolloutStatus.ROLLED_BACK,
                },
            )
            reason = (
                f"aborted by an operator: the controller lets go; the flag stays at "
                f"{record.percent} %"
            )
            saved = self._save(record, RolloutStatus.ABORTED, AuditAction.ABORT, reason)
        self._after(saved, "abort", reason, record.percent, None)
        return saved

    # -- helpers -------------------------------------------------------------------

    def _flags(self, plan: RolloutPlan) -> FlagBackend:
        return self.ports.flags_for(plan)

    def _baseline_p99(self, record: RolloutRecord, now: datetime) -> tuple[float | None, str]:
        """The record's frozen p99, frozen now if it never was (and the text saying so)."""
        tail = record.plan.triggers.p99_latency
        if record.baseline_p99_ms is not None or not tail.enabled:
            return record.baseline_p99_ms, ""
        p99 = self.ports.baseline_p99_for(record, now)
        if p99 is None:
            # Not refused (an operator's promote is deliberate), but said plainly.
            return None, (
                f"; the baseline p99 is NOT frozen (fewer than {MIN_P99_REQUESTS} baseline "
                "requests since an hour before the start): the p99_latency trigger cannot "
                "judge until the baseline arm has served enough for a tick to freeze it"
            )
        return p99, f"; baseline p99 frozen at {p99:.0f} ms"

    def _resume_target(self, record: RolloutRecord, observed: int) -> tuple[int, str]:
        """Where the flag goes on resume; never above what users see now."""
        steps = record.plan.step_percents
        if record.step_index < 0:
            # Not started: the controller's first tick freezes the p99, then moves.
            if observed == 0:
                return 0, "resumed by an operator before the first step"
            return 0, f"resumed by an operator: the flag was at {observed} %; set back to 0 %"
        if observed == record.percent and observed in steps:
            return observed, f"resumed by an operator at {observed} %" + _passed_without_evidence(
                record, observed
            )
        if observed in steps:
            return observed, (
                f"resumed by an operator: the flag is at {observed} %, a step of the plan; "
                "the rollout continues from that step" + _passed_without_evidence(record, observed)
            )
        below = [s for s in steps if s < observed]
        if not below:
            raise InvalidTransition(
                f"the flag of rollout {record.name!r} is at {observed} %, below the first step "
                f"({steps[0]} %); resuming would expose users again",
                hint=f"continue explicitly with `shadowcanary rollout promote {record.name} "
                f"--to {steps[0]}`, or `shadowcanary rollout rollback {record.name}`",
            )
        return below[-1], (
            f"resumed by an operator: the flag was at {observed} %, not a step of the plan; "
            f"set to the step below, {below[-1]} %" + _passed_without_evidence(record, below[-1])
        )

    def _require(self, record: RolloutRecord, command: str, allowed: set[RolloutStatus]) -> None:
        if record.status not in allowed:
            raise InvalidTransition(
                f"cannot {command} rollout {record.name!r}: it is {record.status.value}",
                hint=f"{command} applies to {', '.join(sorted(s.value for s in allowed))} "
                "rollouts; `shadowcanary rollout status` shows them",
            )

    def _entry(
        self,
        record: RolloutRecord,
        action: AuditAction,
        from_percent: int | None,
        to_percent: int | None,
        reason: str,
    ) -> AuditEntry:
        return AuditEntry(
            id=None,
            at=self.ports.clock(),
            rollout=record.name,
            actor=self.ports.actor,
            action=action,
            from_percent=from_percent,
            to_percent=to_percent,
            reason=reason,
        )

    def _save(
        self, record: RolloutRecord, status: RolloutStatus, action: AuditAction, reason: str
    ) -> RolloutRecord:
        entry = self._entry(record, action, record.percent, None, reason)
        changed = replace(record, status=status, updated_at=self.ports.clock())
        return self.ports.store.save(changed, entry)

    def _after(
        self,
        record: RolloutRecord,
        event: str,
        reason: str,
        from_percent: int | None,
        to_percent: int | None,
    ) -> None:
        log.info("operator command", rollout=record.name, command=event, actor=self.ports.actor)
        self.ports.notifier.send(
            record.plan.notify.webhooks,
            Notification.change(record, event, reason, self.ports.actor, from_percent, to_percent),
        )
        self.ports.runbook(record, None)
