"""Flag backends behind one protocol, and the model router of the request path.

- ``flags.base``: ``FlagBackend`` / ``FlagEvaluator`` protocols, ``FlagSpec``, ``FlagState``
- ``flags.unleash``: ``UnleashFlags`` (Admin API; Unleash is the system of record)
- ``flags.embedded``: ``EmbeddedFlags`` (the same feature JSON in Postgres, through
  ``shadowcanary.store.flag_table``)
- ``flags.router``: ``ModelRouter`` and the evaluators ``EmbeddedEvaluator``,
  ``StaticEvaluator``; ``flags.unleash_sdk``: ``UnleashClientEvaluator``

Only the protocols are re-exported here: the backends pull in HTTP clients and the
Unleash engine, so code imports them from their own modules when it needs them.
"""

from flags.base import FlagBackend, FlagEvaluator, FlagSpec, FlagState, Stickiness

__all__ = ["FlagBackend", "FlagEvaluator", "FlagSpec", "FlagState", "Stickiness"]
