"""Hostile candidate answers are recorded as data: no poison batch, no crash, no retry storm.

The candidate endpoint is a loopback server answering every replay with what a
broken or compromised model could send: NUL and a lone surrogate in the text, an
injection string, a tool call with invalid JSON arguments and a hostile name, an
unknown finish reason, a huge answer. A real worker replays a batch against it: each
replay ends recorded (ok, or failed with the reason) or dead-lettered, never stuck;
what is stored is the answer as sent (NUL as U+FFFD); an answer no UTF-8 text can hold (a
lone surrogate) is dead-lettered with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.corpus.hostile_events import PROMPT_INJECTIONS, good_event
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows, scalar, send_ingest
from tests.security.recorder import recording_server

pytestmark = pytest.mark.integration


def _completion(message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-5.5",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


ANSWERS: dict[str, Callable[[], bytes]] = {
    "nul-and-injection": lambda: json.dumps(
        _completion({"role": "assistant", "content": "a\x00b " + PROMPT_INJECTIONS[0]}, "stop")
    ).encode(),
    # json.dumps writes a lone surrogate as the escape \ud800, as a sloppy JSON API would.
    "lone-surrogate": lambda: json.dumps(
        _completion({"role": "assistant", "content": "half \ud800 a character"}, "stop")
    ).encode(),
    "bad-tool-call": lambda: json.dumps(
        _completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_x",
                        "type": "function",
                        "function": {
                            "name": "x'; DROP TABLE replays; --",
                            "arguments": '{"command": "rm -rf /" ',
                        },
                    }
                ],
            },
            "tool_calls",
        )
    ).encode(),
    "unknown-finish-reason": lambda: json.dumps(
        _completion({"role": "assistant", "content": "fine"}, "exploded")
    ).encode(),
    "huge-answer": lambda: json.dumps(
        _completion({"role": "assistant", "content": "lorem " * 200_000}, "length")
    ).encode(),
    "not-json": lambda: b"<html>502 Bad Gateway</html>",
}


@pytest.mark.parametrize("kind", list(ANSWERS))
def test_a_hostile_candidate_answer_ends_recorded_or_dead_lettered(
    kind: str, worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Every event of the batch reaches a final state; good text is stored as sent."""

    def answer(_request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
        return 200, "application/json", ANSWERS[kind]()

    engine = make_engine(database_url, pool_size=2)
    try:
        with recording_server(answer) as candidate:
            models = json.loads(models_setting(sim.base_url))
            models["gpt-5.5"]["base_url"] = candidate.url("/v1")
            env = {
                **worker_env,
                "SHADOWCANARY_MODELS": json.dumps(models),
                "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
                "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "2",
            }
            events = [good_event() for _ in range(3)]
            ids = [e["event_id"] for e in events]
            with run_worker(env) as worker:
                send_ingest(redis_url, events)

                def settled() -> bool:
                    replays = scalar(
                        engine,
                        "select count(*) from replays where kind = 'candidate' "
                        "and event_id = any(:ids)",
                        ids=ids,
                    )
                    letters = scalar(
                        engine,
                        "select count(*) from dead_letters where event_id = any(:ids)",
                        ids=ids,
                    )
                    return replays + letters >= len(ids)

                wait_until(settled, timeout_s=60, what=f"every replay settled ({kind})")
                assert worker.proc.poll() is None
            assert candidate.hits, "the candidate was never called"
        stored = rows(
            engine,
            "select status, output, error_class from replays "
            "where kind = 'candidate' and event_id = any(:ids)",
            ids=ids,
        )
        letters = rows(
            engine,
            "select stage, error_class, message from dead_letters where event_id = any(:ids)",
            ids=ids,
        )
        if kind == "nul-and-injection":
            assert len(stored) == len(ids), letters
            for status, output, _error in stored:
                assert status == "ok"
                assert output["text"] == "a\ufffdb " + PROMPT_INJECTIONS[0]
        if kind == "lone-surrogate":
            # No UTF-8 text can hold it: the answer is unreadable, retried, then dead-lettered
            # with the reason (the replay path's choice; nothing is stuck or lost).
            assert {(stage, cls) for stage, cls, _m in letters} == {
                ("replay", "UpstreamUnavailable")
            }
            assert all("not JSON" in m and "surrogate" in m for _s, _c, m in letters)
        if kind == "bad-tool-call":
            assert len(stored) == len(ids), stored
            for status, output, _error in stored:
                assert status == "ok"
                (call,) = output["tool_calls"]
                assert call["name"] == "x'; DROP TABLE replays; --"
                assert call["arguments"] == '{"command": "rm -rf /" '
            flags = rows(
                engine,
                "select other_json_invalid, other_tool_schema_invalid, tool_name_agreement "
                "from comparisons where event_id = any(:ids)",
                ids=ids,
            )
            assert flags and all(f[2] is False or f[2] is None for f in flags)
        assert scalar(engine, "select count(*) from pg_tables where tablename = 'replays'") == 1
    finally:
        engine.dispose()
