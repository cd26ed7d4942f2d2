"""The reference TypeScript runner (protocol v7) against the embedded engine.

Skipped without node/npm, failed instead when RIVETPY_REQUIRE_NODE=1.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
import trio
import trio_websocket

from rivetpy.engine.server import EngineOptions, open_engine
from rivetpy.testing.ts_runner import NodeUnavailable, TsRunner, ensure_node_deps
from tests.engine_core.support import call, client, http_get

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def node_ready() -> None:
    try:
        ensure_node_deps()
    except NodeUnavailable as exc:
        if os.environ.get("RIVETPY_REQUIRE_NODE") == "1":
            pytest.fail(f"{exc} (RIVETPY_REQUIRE_NODE=1)")
        pytest.skip(str(exc))


def http_post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=20) as response:
        return response.status, response.read()


async def test_ts_runner_v7_actor_kv_gateway_sleep_wake(node_ready: None, tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_engine(EngineOptions(data_dir=tmp_path / "e", port=0)) as server:
            runner = TsRunner(server.endpoint)
            await call(runner.start)
            try:
                assert runner.runner_id in server.engine.sessions
                session = server.engine.sessions[str(runner.runner_id)]
                api = client(server.endpoint)
                actor = await call(api.create_actor, "echo", "k", None, runner.runner_name)
                actor_id = actor["actor_id"]
                await call(runner.wait_actor_started, actor_id)
                # v7: no preload was even fetched
                assert getattr(session, "preload_fetches", None) == 0

                status, body = await call(http_get, api.gateway_url(actor_id, "/ping"))
                assert (status, body) == (200, b"pong")
                status, body = await call(
                    http_post, api.gateway_url(actor_id, "/kv-put?key=greeting"), b"hello"
                )
                assert status == 200
                assert await call(api.kv_get, actor_id, b"greeting") == b"hello"
                status, body = await call(
                    http_post, api.gateway_url(actor_id, "/kv-get?key=greeting&n=1"), b""
                )
                assert json.loads(body)["found"] is True

                url = api.gateway_url(actor_id, "/ws").replace("http://", "ws://")
                async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                    await ws.send_message("hi")
                    assert await ws.get_message() == "hi"

                await call(http_post, api.gateway_url(actor_id, "/sleep"), b"")
                while server.engine.actors[actor_id].state != "sleeping":
                    await trio.sleep(0.02)
                status, body = await call(http_get, api.gateway_url(actor_id, "/ping"))
                assert (status, body) == (200, b"pong")
                assert server.engine.actors[actor_id].generation == 1
            finally:
                await call(runner.stop)
