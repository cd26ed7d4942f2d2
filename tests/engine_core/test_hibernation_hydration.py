"""Send-time hydration of ``CommandStartActor.hibernatingRequests`` (hibernation.md §7), end to
end: the engine lists the eligible requests from the store when it sends the start command; the
durable queue keeps the bare command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

import codec
from codec import v8
from rivetpy.engine import hibernation_store as hs
from rivetpy.engine.core import EngineSettings, now_ms
from rivetpy.engine.server import EngineOptions, open_engine
from rivetpy.engine.state import read_commands
from rivetpy.engine.store import ReadTransaction, Transaction
from rivetpy.protocol.engine import QueuedCommand
from rivetpy.runner import RunnerOptions, open_runner
from tests.engine_core.support import EchoApp, call, client, http_get

NAMES = {"echo": {"name": "Echo"}}
FRESH = (b"\x0a\x00\x00\x01", b"\x2a\x00\x00\x01")
STALE = (b"\x0a\x00\x00\x02", b"\x2a\x00\x00\x02")


async def test_wake_hydrates_only_eligible_hibernating_requests(tmp_path: Path) -> None:
    opts = EngineOptions(data_dir=tmp_path / "engine", port=0, settings=EngineSettings())
    with trio.fail_after(30):
        async with open_engine(opts) as server:
            api = client(server.endpoint)
            app = EchoApp()
            ropts = RunnerOptions(
                server.endpoint,
                "py-runner",
                protocol_version=8,
                actor_names=NAMES,
                command_ack_interval=3600,
            )
            async with open_runner(ropts, app) as runner:
                await runner.wait_connected()
                actor = await call(api.create_actor, "echo", "k1", None, "py-runner")
                actor_id = actor["actor_id"]
                await app.started.wait()
                assert app.starts[0].hibernating_requests == ()

                await call(http_get, api.gateway_url(actor_id, "/sleep"))
                while server.engine.actors[actor_id].state != "sleeping":
                    await trio.sleep(0.01)

                async def seed(tr: Transaction) -> None:
                    now = now_ms()
                    await hs.upsert(tr, actor_id, *FRESH, now)
                    await hs.upsert(tr, actor_id, *STALE, now - hs.ELIGIBLE_THRESHOLD_MS - 1000)

                await server.engine.store.run(seed)

                # wake by a gateway request: the new generation's start is hydrated at send time
                status, _ = await call(http_get, api.gateway_url(actor_id, "/ping"))
                assert status == 200
                assert len(app.starts) == 2
                woken = app.starts[1]
                assert woken.generation == 1
                assert woken.hibernating_requests == (FRESH,)

                # the durable queue holds the bare start commands only
                runner_id = runner.runner_id
                assert runner_id is not None

                async def queued(tr: ReadTransaction) -> list[QueuedCommand]:
                    return await read_commands(tr, runner_id)

                starts = [
                    q.command
                    for q in await server.engine.store.read(queued)
                    if isinstance(q.command, v8.CommandStartActor)
                ]
                assert len(starts) == 2
                assert all(c.hibernating_requests == [] for c in starts)
                await runner.shutdown(graceful=False)


def _connect_url(host: str, port: int, key: str) -> str:
    return (
        f"ws://{host}:{port}/runners/connect?protocol_version=8&namespace=default&runner_key={key}"
    )


async def _next_of(ws: trio_websocket.WebSocketConnection, kind: type[Any]) -> Any:
    """The next engine message of ``kind``; pings are answered meanwhile."""
    while True:
        raw = await ws.get_message()
        assert isinstance(raw, bytes)
        msg = codec.TO_CLIENT.decode(raw, 8)
        if isinstance(msg, v8.ToClientPing):
            await ws.send_message(codec.TO_SERVER.encode(v8.ToServerPong(msg.ts), 8))
        elif isinstance(msg, kind):
            return msg


async def _handshake(ws: trio_websocket.WebSocketConnection) -> None:
    init = v8.ToServerInit("raw-runner", 1, 10, None, None)
    await ws.send_message(codec.TO_SERVER.encode(init, 8))
    await _next_of(ws, v8.ToClientInit)


# trio-websocket's client leaves its stream for the GC when the peer closes first.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_replayed_start_is_hydrated_fresh_and_stored_bare(tmp_path: Path) -> None:
    opts = EngineOptions(data_dir=tmp_path / "engine", port=0, settings=EngineSettings())
    with trio.fail_after(30):
        async with open_engine(opts) as server:
            api = client(server.endpoint)
            url = _connect_url(server.host, server.port, "raw-key")
            # a raw runner that never acks commands: its start stays queued
            async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                await _handshake(ws)
                actor = await trio.to_thread.run_sync(
                    lambda: api.create_actor("echo", "k1", None, "raw-runner", retry_for=10.0)
                )
                actor_id: str = actor["actor_id"]
                live = await _next_of(ws, v8.ToClientCommands)
                assert [w.checkpoint.actor_id for w in live.value] == [actor_id]
                assert live.value[0].inner.hibernating_requests == []

            async def seed(tr: Transaction) -> None:
                await hs.upsert(tr, actor_id, *FRESH, now_ms())

            await server.engine.store.run(seed)
            # reconnect with the same key: the unacked start is replayed, hydrated at send time
            async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws2:
                await _handshake(ws2)
                replayed = await _next_of(ws2, v8.ToClientCommands)
            assert [w.checkpoint.actor_id for w in replayed.value] == [actor_id]
            start = replayed.value[0].inner
            assert isinstance(start, v8.CommandStartActor)
            assert start.hibernating_requests == [v8.HibernatingRequest(*FRESH)]
            assert start.preloaded_kv is not None  # v8: preload is fetched for the replay too

            runner_id = next(iter(server.engine.runners))

            async def queued(tr: ReadTransaction) -> list[QueuedCommand]:
                return await read_commands(tr, runner_id)

            stored = [q.command for q in await server.engine.store.read(queued)]
            starts = [c for c in stored if isinstance(c, v8.CommandStartActor)]
            assert starts
            assert all(c.hibernating_requests == [] and c.preloaded_kv is None for c in starts)
