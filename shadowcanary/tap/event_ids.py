"""The id of the last call the tapped client captured, for reporting its outcome.

After ``client.chat.completions.create(...)`` (or ``responses.create``) on a client
wrapped by ``tap_openai``, ``last_event_id()`` is that call's event id, to pass to
``tap.outcome(event_id, ...)`` once the user's task completes or is abandoned::

    answer = client.chat.completions.create(model="gpt-5.2", messages=[...])
    event_id = last_event_id()  # None when the call was not captured (sampled out)
    ...
    tap.outcome(event_id, task="completed")

It is a ``contextvars.ContextVar``: per thread and per asyncio task, so concurrent
requests of a web server each see their own call. It is set when the call starts
(before a stream is read); an ``await`` of the call sees it, a call run in another task
(``asyncio.gather``, ``create_task``) sets it in that task's context only.
"""

from __future__ import annotations

from contextvars import ContextVar

_LAST_EVENT_ID: ContextVar[str | None] = ContextVar("shadowcanary_last_event_id", default=None)


def last_event_id() -> str | None:
    """The event id of this thread's (or task's) last tapped call; None if not captured."""
    return _LAST_EVENT_ID.get()


def remember(event_id: str | None) -> None:
    _LAST_EVENT_ID.set(event_id)
