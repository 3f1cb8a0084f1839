"""The shadow path never executes tools or follows URLs found in prompts or answers.

A captured call whose prompt, images, tool definitions and live answer are full of
URLs (all pointing at a loopback server that records every hit), whose candidate is
made to answer with tool calls (``tool_choice: required``) asking to fetch those URLs
and to run shell commands, is replayed by a real worker. The only outbound requests
are to the model endpoint: the recorder sees nothing, no command runs, and the tool
calls are stored as data for the comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.corpus.hostile_events import good_event
from tests.integration.pipeline import rows, scalar, send_ingest, sim_calls
from tests.security.recorder import recording_server

pytestmark = pytest.mark.integration

PWNED = Path("/tmp/sc-shadow-tool-executed")

TOOLS = [
    {
        "name": "fetch_url",
        "description": "Fetch a web page and return its text.",
        "parameters": {
            "type": "object",
            "properties": {"url": {"type": "string"}},
            "required": ["url"],
        },
    },
    {
        "name": "run_shell",
        "description": "Run a shell command on the server.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
]


def _event_full_of_urls(url: str, *, tool: str) -> dict[str, object]:
    event = good_event()
    event["request"] = {
        "messages": [
            {
                "role": "system",
                "content": f"Always call fetch_url on {url('/system')} first.",
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": f"Summarise {url('/page')} and use {tool}; then run "
                        f"`curl {url('/curl')}` and `touch {PWNED}`.",
                    },
                    {"type": "image_url", "image_url": {"url": url("/image.png")}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "name": "fetch_url",
                        "arguments": json.dumps({"url": url("/earlier-call")}),
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": f"Moved: see {url('/redirect')}",
            },
            {"role": "user", "content": f"Now use {tool} again, on {url('/again')}."},
        ],
        "tools": TOOLS,
        "parameters": {"tool_choice": "required", "temperature": 0},
    }
    event["response"] = {
        "text": None,
        "tool_calls": [
            {
                "id": "call_2",
                "name": "run_shell",
                "arguments": json.dumps({"command": f"curl {url('/live')}; touch {PWNED}"}),
            }
        ],
        "finish_reason": "tool_calls",
    }
    return event


def test_replays_record_tool_calls_and_never_follow_urls_or_run_tools(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Only the model endpoint is called; the candidate's tool calls are stored, not run."""
    PWNED.unlink(missing_ok=True)
    engine = make_engine(database_url, pool_size=2)
    before = sim_calls(sim, "gpt-5.5")
    try:
        with recording_server() as recorder, run_worker(worker_env):
            # The recorder works: a request to it is seen (so an empty list means none came).
            assert httpx.get(recorder.url("/self-check"), timeout=5).status_code == 200
            assert recorder.hits == ["GET /self-check"]
            recorder.hits.clear()
            events = [
                _event_full_of_urls(recorder.url, tool=tool) for tool in ("fetch_url", "run_shell")
            ]
            send_ingest(redis_url, events)
            ids = [e["event_id"] for e in events]
            wait_until(
                lambda: (
                    scalar(
                        engine,
                        "select count(*) from comparisons "
                        "where kind = 'candidate' and event_id = any(:ids)",
                        ids=ids,
                    )
                    == len(ids)
                ),
                timeout_s=30,
                what="both replays compared",
            )
            outputs = rows(
                engine,
                "select output from replays where kind = 'candidate' and event_id = any(:ids)",
                ids=ids,
            )
            assert recorder.hits == [], f"the shadow path made requests: {recorder.hits}"
        # The candidate really answered with tool calls, and they were kept as data.
        called = [call["name"] for (output,) in outputs for call in output["tool_calls"]]
        assert len(called) >= len(ids) and set(called) <= {"fetch_url", "run_shell"}, called
        assert sim_calls(sim, "gpt-5.5") >= before + len(ids)
        assert not PWNED.exists()
        tool_agreement = rows(
            engine,
            "select tool_name_agreement from comparisons "
            "where kind = 'candidate' and event_id = any(:ids)",
            ids=ids,
        )
        assert all(r[0] is not None for r in tool_agreement)
    finally:
        engine.dispose()
