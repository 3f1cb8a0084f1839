"""The naive baseline for bench/replay_throughput.py: what a first Celery attempt looks like.

One synchronous OpenAI call per task on the default prefork pool with concurrency 2,
writing each result with its own transaction. Not used by shadowcanary itself.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import openai
from celery import Celery

from shadowcanary.judge import compare, output_from_capture
from shadowcanary.judge.types import CallOutput
from shadowcanary.replay.openai_call import request_kwargs
from shadowcanary.shadow_results import ReplayKind, ReplayRecord, ReplayStatus
from shadowcanary.store.db import make_engine
from shadowcanary.store.repository import Store

app = Celery("naive", broker=os.environ["NAIVE_BROKER_URL"])
app.conf.update(task_acks_late=True, task_ignore_result=True, worker_prefetch_multiplier=1)

_state: dict[str, object] = {}


def _deps() -> tuple[Store, openai.OpenAI]:
    if not _state:
        _state["store"] = Store(make_engine(os.environ["NAIVE_DATABASE_URL"], pool_size=1))
        _state["client"] = openai.OpenAI(
            base_url=os.environ["NAIVE_BASE_URL"], api_key="sim", max_retries=0
        )
    return _state["store"], _state["client"]  # type: ignore[return-value]


@app.task(name="naive.replay", acks_late=True)
def replay(event_id: str) -> None:
    store, client = _deps()
    event = store.get_captures([event_id])[event_id]
    completion = client.chat.completions.create(
        model="gpt-5.5", **request_kwargs(event.request, stream=False)
    )
    output = CallOutput(
        model="gpt-5.5",
        text=completion.choices[0].message.content,
        finish_reason=completion.choices[0].finish_reason,
    )
    comparison = compare(output_from_capture(event, None), output, event.request)
    store.record_replays(
        [ReplayRecord(event_id, ReplayKind.CANDIDATE, ReplayStatus.OK, output, comparison, 1)],
        recorded_at=datetime.now(UTC),
    )
