"""The embedded engine end to end, over loopback, with the Python runner (protocol v8)."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import trio
import trio_websocket

from codec import v8
from rivetpy.engine.core import EngineSettings
from rivetpy.engine.preload import PERSIST_DATA
from rivetpy.engine.runner_endpoint import RunnerSession
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine
from rivetpy.engine.state import read_commands
from rivetpy.engine.store import ReadTransaction
from rivetpy.protocol.engine import QueuedCommand
from rivetpy.runner import RunnerOptions, open_runner
from rivetpy.testing.engine import EngineApiError
from tests.engine_core.support import EchoApp, call, client, http_get

NAMES = {"echo": {"name": "Echo"}}


def options(tmp_path: Path, port: int = 0, **settings: object) -> EngineOptions:
    return EngineOptions(
        data_dir=tmp_path / "engine",
        port=port,
        settings=EngineSettings(**settings),  # type: ignore[arg-type]
    )


async def test_v8_runner_actor_lifecycle(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_engine(options(tmp_path)) as server:
            api = client(server.endpoint)
            health = await call(api.health)
            assert health["status"] == "ok"
            app = EchoApp()
            opts = RunnerOptions(server.endpoint, "py-runner", actor_names=NAMES)
            async with open_runner(opts, app) as runner:
                await runner.wait_connected()
                actor = await call(api.create_actor, "echo", "k1", b"hello", "py-runner")
                actor_id = actor["actor_id"]
                await app.started.wait()
                handle = app.starts[0]
                assert handle.input == b"hello"
                # v8 start commands carry preloaded KV (the keys were requested, none existed)
                assert handle.preloaded_kv is not None
                assert PERSIST_DATA in handle.preloaded_kv.requested_get_keys
                assert handle.preloaded_kv.requested_prefixes

                # KV written by the actor is visible through the API
                stored = await call(api.kv_get, actor_id, PERSIST_DATA)
                assert stored == b"state-of-" + actor_id.encode()
                assert await call(api.kv_get, actor_id, b"missing") is None

                # HTTP through the gateway
                status, body = await call(http_get, api.gateway_url(actor_id, "/ping"))
                assert (status, body) == (200, b"pong 0")

                # WebSocket through the gateway
                url = api.gateway_url(actor_id, "/ws").replace("http://", "ws://")
                async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                    await ws.send_message("hi")
                    assert await ws.get_message() == "hi"
                    await ws.send_message(b"\x00\x01")
                    assert await ws.get_message() == b"\x00\x01"

                # sleep, then wake by a gateway request: a new generation gets fresh preload
                await call(http_get, api.gateway_url(actor_id, "/sleep"))
                while server.engine.actors[actor_id].state != "sleeping":
                    await trio.sleep(0.01)
                status, body = await call(http_get, api.gateway_url(actor_id, "/kv"))
                assert (status, body) == (200, b"state-of-" + actor_id.encode())
                assert len(app.starts) == 2
                woken = app.starts[1]
                assert woken.generation == 1
                assert woken.preloaded_kv is not None
                assert [e.key for e in woken.preloaded_kv.entries] == [PERSIST_DATA]

                listed = await call(api.get_actor, actor_id)
                assert listed is not None and listed["actor_id"] == actor_id

                # destroy: the runner gets a stop, the gateway then answers 404
                await call(api.destroy_actor, actor_id)
                while server.engine.actors[actor_id].state != "destroyed":
                    await trio.sleep(0.01)
                status, body = await call(http_get, api.gateway_url(actor_id, "/ping"))
                assert status == 404 and b"not_found" in body
                await runner.shutdown(graceful=False)


async def run_engine(
    opts: EngineOptions,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[EngineServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_engine(opts) as server:
        task_status.started(server)
        await stop.wait()


# When the engine goes away under it, the Python runner's trio-websocket client socket is left
# for the GC to close (a runner-side leak, not the engine's): collected and tolerated here.
async def test_engine_restart_keeps_actors_kv_and_queue(tmp_path: Path) -> None:
    app = EchoApp()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            server: EngineServer = await nursery.start(run_engine, options(tmp_path), stop)
            port, api = server.port, client(server.endpoint)
            opts = RunnerOptions(
                server.endpoint, "py-runner", actor_names=NAMES, command_ack_interval=3600
            )
            async with open_runner(opts, app) as runner:
                await runner.wait_connected()
                actor = await call(api.create_actor, "echo", None, None, "py-runner")
                actor_id = actor["actor_id"]
                await app.started.wait()
                runner_id = runner.runner_id
                assert runner_id is not None
                assert server.engine.replayed[runner_id] == 0

                # the queue holds the bare stored command, never the hydrated one
                async def queued(tr: ReadTransaction) -> list[QueuedCommand]:
                    return await read_commands(tr, runner_id)

                (stored_cmd,) = await server.engine.store.read(queued)
                assert isinstance(stored_cmd.command, v8.CommandStartActor)
                assert stored_cmd.command.preloaded_kv is None
                assert stored_cmd.command.hibernating_requests == []
                stop.set()
                while runner.is_connected:
                    await trio.sleep(0.01)
                # the engine is gone; its state is in the store
                stop = trio.Event()
                server = await nursery.start(run_engine, options(tmp_path, port), stop)
                assert server.engine.actors[actor_id].state == "running"
                # (``replayed`` is recorded after the session registers, before the init reply)
                while runner_id not in server.engine.replayed:
                    await trio.sleep(0.05)
                # same runner id (reconnected within the lost threshold): the unacked start
                # command was replayed from the durable queue, hydrated again
                assert runner.runner_id == runner_id
                assert server.engine.replayed[runner_id] == 1
                session = server.engine.sessions[runner_id]
                assert isinstance(session, RunnerSession)
                assert session.preload_fetches == 1  # once for the one replayed start

                assert len(app.starts) == 1  # the runner deduplicated the replay
                # ... and acknowledged it: the queue is pruned
                while await server.engine.store.read(queued):
                    await trio.sleep(0.02)
                stored = await call(api.kv_get, actor_id, PERSIST_DATA)
                assert stored == b"state-of-" + actor_id.encode()
                status, body = await call(http_get, api.gateway_url(actor_id, "/ping"))
                assert (status, body) == (200, b"pong 0")
                listed = await call(api.get_actor, actor_id)
                assert listed is not None
                await runner.shutdown(graceful=False)
            stop.set()
    gc.collect()


async def test_api_errors_and_token(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_engine(options(tmp_path, admin_token="secret")) as server:
            anonymous = client(server.endpoint)
            try:
                await call(anonymous.get_actor, "x")
            except EngineApiError as exc:
                assert (exc.status, exc.error_id) == (403, "api.forbidden")
            else:
                raise AssertionError("expected 403")
            api = client(server.endpoint, token="secret")
            try:
                await call(api.create_actor, "echo", None, None, "nobody")
            except EngineApiError as exc:
                assert exc.error_id == "actor.no_runner_config_configured"
            else:
                raise AssertionError("expected no_runner_config_configured")
            status, body = await call(http_get, f"{server.endpoint}/nope")
            assert status == 403
            missing = "5jxlv5boumuljx2d2nvyat0o2edl00"
            status, body = await call(http_get, api.gateway_url(missing, "/x"))
            assert status in (404, 500)
            assert set(json.loads(body)) >= {"group", "code", "message"}
