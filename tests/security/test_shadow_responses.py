"""Responses replays leave nothing at the provider and never run the provider's tools.

The candidate's endpoint is a loopback recorder answering like the Responses API, so
the test sees every byte a real worker sends it: a replay asks with ``store: false``
(a captured ``store: true`` would otherwise leave a stored response behind), and a
captured call offering a tool the provider itself would run (an MCP server pointing
at the recorder, web search) is recorded as not replayable without any request.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.corpus.hostile_events import good_event
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows, send_ingest
from tests.security.recorder import recording_server

pytestmark = pytest.mark.integration

_ANSWER = {
    "id": "resp_recorded",
    "object": "response",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Recorded.", "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 10, "output_tokens": 3},
}


def _responses_answer(_request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(_ANSWER).encode()


def _responses_event(tools: list[dict[str, Any]]) -> dict[str, Any]:
    event = good_event()
    body = {
        "input": [{"role": "user", "content": "Look up the order and reply."}],
        "tools": tools,
        "store": True,
        "metadata": {"ticket": "T-9"},
    }
    event["request"] = {
        "api": "responses",
        "messages": [{"role": "user", "content": "Look up the order and reply."}],
        "parameters": body,
    }
    return event


def test_responses_replays_store_nothing_and_never_run_provider_tools(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """The candidate gets the captured body with store false; an MCP or web-search call
    is never sent and is recorded not replayable, with the reason."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with recording_server(_responses_answer) as recorder:
            models = json.loads(models_setting(sim.base_url))
            models["gpt-5.5"]["base_url"] = recorder.url("/v1")
            env = {
                **worker_env,
                "SHADOWCANARY_MODELS": json.dumps(models),
                "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
            }
            function_tool = {"type": "function", "name": "lookup", "parameters": {}}
            safe = _responses_event([function_tool])
            provider_run = _responses_event(
                [{"type": "mcp", "server_label": "x", "server_url": recorder.url("/mcp")}]
            )
            searching = _responses_event([{"type": "web_search"}])
            events = [safe, provider_run, searching]
            with run_worker(env):
                send_ingest(redis_url, events)
                found = wait_until(
                    lambda: (
                        (got := rows(engine, "select event_id, status, error_message from replays"))
                        and len(got) == 3
                        and got
                    ),
                    timeout_s=30,
                    what="the three replays recorded",
                )
            status = {r.event_id: (r.status, r.error_message) for r in found}
            assert status[safe["event_id"]] == ("ok", None)
            for event, tool in ((provider_run, "mcp"), (searching, "web_search")):
                state, reason = status[event["event_id"]]
                assert state == "not_replayable" and tool in reason
                assert "never executes tools" in reason
            assert recorder.hits == ["POST /v1/responses"]  # the safe call only
            sent = json.loads(recorder.bodies[0])
            assert sent["store"] is False
            assert sent["model"] == "gpt-5.5"
            assert {k: v for k, v in sent.items() if k not in ("store", "model")} == {
                k: v for k, v in safe["request"]["parameters"].items() if k != "store"
            }
    finally:
        engine.dispose()
