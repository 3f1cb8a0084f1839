"""The rollout controller: evidence -> judge.decide -> flag -> audit -> webhook -> runbook.

- ``tick``: one tick of one rollout (``tick.tick(ports, name, memory)``), fail closed;
  ``TickPorts`` are the collaborators it is given (built in ``shadowcanary.wiring``)
- ``policy``: the pure rules (flag/record reconciliation, HOLD recording)
- ``loop``: ``shadowcanary controller run``, one active controller per rollout through
  the Postgres advisory lock of ``shadowcanary.store.locks``
- ``operator``: ``shadowcanary rollout start|pause|resume|promote|rollback|abort``
- ``views``: what ``rollout status`` and ``history`` show
- ``notify``: Slack-compatible webhooks; ``metrics``: Prometheus

Rollout state and the audit log live in ``shadowcanary.store.rollouts``; their values in
``shadowcanary.rollout_records``. Import from the modules themselves: this package
re-exports nothing, so importing one module never drags in the rest.
"""
