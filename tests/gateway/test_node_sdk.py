"""The official openai npm package through the gateway gets what it gets from the upstream."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shadowcanary.launcher.gateway import GatewayHandle
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import tapped_events
from tests.gateway.sameness import same

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "gateway_calls.mjs"


def _node_ready() -> None:
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed (Node 20+)"
    elif not (NODE_DIR / "node_modules" / "openai").is_dir():
        problem = f"the openai npm package is not installed: npm ci --prefix {NODE_DIR}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide it: {problem}")
        pytest.skip(problem)


def _run_node(base_url: str, api_key: str) -> dict[str, Any]:
    env = {**os.environ, "BASE_URL": base_url, "API_KEY": api_key}
    done = subprocess.run(
        ["node", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_node_sdk_answers_through_the_gateway_equal_the_upstreams(
    gateway: GatewayHandle, sim: SimHandle, redis_url: str
) -> None:
    """chat, streamed chat, tool calls, responses (plain, streamed with a function tool and
    reasoning, continued by previous_response_id), moderations, embeddings: identical."""
    _node_ready()
    through = _run_node(gateway.base_url, gateway.api_key)
    direct = _run_node(sim.base_url, "direct-key")
    assert set(through) == {
        "chat", "chat_stream", "tool_calls", "responses", "responses_stream", "embeddings",
        "responses_tool_reasoning_stream", "responses_continued", "moderations",
    }  # fmt: skip
    for name in sorted(through):
        assert "sdk_failed" not in through[name], (name, through[name])
        assert same(through[name], direct[name]), name
    assert through["tool_calls"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == (
        "get_weather"
    )
    continued = through["responses_continued"]
    assert (
        continued["previous_response_id"]
        and continued["usage"]["input_tokens_details"]["cached_tokens"]
    )
    # Eight generations tapped (embeddings and moderations are proxied, not captured).
    events = wait_until(
        lambda: (found := tapped_events(redis_url)) and len(found) >= 8 and found,
        timeout_s=15,
        what="the node calls' events in the ingest queue",
    )
    assert len(events) == 8
    (continuation,) = [e for e in events if e.request.parameters.get("previous_response_id")]
    assert continuation.request.context_messages == 2  # the turns it continued
    assert {e.tenant for e in events} == {"test-service"}
    assert all(e.status.value == "ok" and e.response is not None for e in events)
