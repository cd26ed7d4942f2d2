"""Hibernation across a runner reconnect and an embedded-engine restart; what happens to the
persisted entries (hibernation.md §5, §6.2, §12 #3, #9)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from pathlib import Path

import pytest
import trio
import trio_websocket

from rivetpy.engine import hibernation_store as hs
from rivetpy.engine.core import now_ms
from rivetpy.engine.hibernation import Phase
from rivetpy.engine.runner_endpoint import RunnerSession
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine
from rivetpy.engine.store import ReadTransaction
from rivetpy.runner import Runner, RunnerOptions
from rivetpy.runner.runner import connect_tcp
from rivetpy.testing.engine import EngineClient
from tests.engine_core.support import http_get
from tests.engine_hibernation.support import (
    NAMES,
    HibernatingApp,
    client_ws,
    create_actor,
    gateway_sockets,
    hibernate,
    open_socket,
    settings,
    sleep_actor,
    wait_until,
    ws_url,
)


class GatedConnector:
    """The default connector, except that while :attr:`open` is unset attempts wait for it."""

    def __init__(self) -> None:
        self.open = trio.Event()
        self.open.set()
        self.attempts = 0

    async def __call__(
        self, nursery: trio.Nursery, url: str, protocols: list[str], max_message_size: int
    ) -> trio_websocket.WebSocketConnection:
        self.attempts += 1
        await self.open.wait()
        return await connect_tcp(nursery, url, protocols, max_message_size)


def cut_runner(server: EngineServer) -> None:
    """Close every runner connection with ``ws.going_away`` (runners reconnect)."""
    for session in list(server.engine.sessions.values()):
        assert isinstance(session, RunnerSession)
        session.going_away()


async def listed(server: EngineServer, actor_id: str) -> list[tuple[bytes, bytes]]:
    threshold = server.engine.settings.hibernating_request_eligible_threshold_ms

    async def body(tr: ReadTransaction) -> list[tuple[bytes, bytes]]:
        return await hs.list_eligible(tr, actor_id, now_ms(), threshold)

    return await server.engine.store.read(body)


async def pointer(server: EngineServer, key: tuple[bytes, bytes]) -> bytes | None:
    async def body(tr: ReadTransaction) -> bytes | None:
        return await tr.get(hs.last_ping_key(*key))

    return await server.engine.store.read(body)


@pytest.mark.parametrize("version", [7, 8])
async def test_runner_reconnect_during_hibernation(tmp_path: Path, version: int) -> None:
    app = HibernatingApp()
    gate = GatedConnector()
    with trio.fail_after(30):
        async with open_socket(tmp_path, app, protocol_version=version, connect=gate) as opened:
            server, runner, actor_id = opened.server, opened.runner, opened.actor_id
            ws, gsock = opened.ws, opened.gsock
            [key] = app.persisted
            await hibernate(opened, app)

            # The runner loses its connection and cannot come back for now.
            gate.open = trio.Event()
            cut_runner(server)
            await wait_until(lambda: not server.engine.sessions)
            for text in ("m1", "m2", "m3"):
                await ws.send_message(text)
            # The wake cannot place the actor: it waits, the client socket stays open.
            await wait_until(lambda: server.engine.actors[actor_id].state == "pending")
            await trio.sleep(0.05)
            assert not ws.closed and len(app.starts) == 1
            gate.open.set()  # the runner reconnects (same key, same runner id)
            assert [await ws.get_message() for _ in range(3)] == ["m1", "m2", "m3"]
            woken = await app.started(2)
            assert woken.hibernating_requests == (key,)
            assert runner.connections == 2

            # Now a reconnect while the actor is awake: the socket hibernates on the runner
            # connection's loss and resumes on the same instance once it is back.
            gate.open = trio.Event()
            cut_runner(server)
            await wait_until(lambda: gsock.state.phase is Phase.HIBERNATING)
            await ws.send_message("r1")
            await trio.sleep(0.05)
            gate.open.set()
            assert await ws.get_message() == "r1"
            await ws.send_message("r2")
            assert await ws.get_message() == "r2"
            assert len(app.starts) == 2  # the same instance served r1 and r2
            assert [r.data for r in app.received] == ["a1", "m1", "m2", "m3", "r1", "r2"]
            assert [r.index for r in app.received] == [1, 2, 3, 4, 5, 6]
            await wait_until(lambda: not gsock.state.has_pending)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("version", [7, 8])
async def test_entries_come_back_after_an_engine_restart(tmp_path: Path, version: int) -> None:
    """The client socket dies with the engine process (closed 1001), but its persisted entry
    survives in the store: a start within the eligibility window lists it (and the runner
    restores the socket), a start after the window does not (stale: not replayed)."""
    app = HibernatingApp()
    port = free_port()
    opts = EngineOptions(data_dir=tmp_path / "engine", port=port, settings=settings())
    ropts = RunnerOptions(
        f"http://127.0.0.1:{port}", "py-runner", protocol_version=version, actor_names=NAMES
    )
    runner = Runner(ropts, app)
    closes: list[trio_websocket.CloseReason | None] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            async with open_engine(opts) as server:
                await nursery.start(runner.run)
                await runner.wait_connected()
                actor_id = await create_actor(server)
                await app.started()
                ready = trio.Event()

                async def client() -> None:
                    async with client_ws(ws_url(server, actor_id, "/hws")) as ws:
                        await ws.send_message("a1")
                        assert await ws.get_message() == "a1"
                        ready.set()
                        with contextlib.suppress(trio_websocket.ConnectionClosed):
                            await ws.get_message()
                        closes.append(ws.closed)

                nursery.start_soon(client)
                await ready.wait()
                [key] = app.persisted
                [gsock] = gateway_sockets(server)
                await sleep_actor(server, app, actor_id)
                await wait_until(lambda: gsock.state.phase is Phase.HIBERNATING)
                assert await listed(server, actor_id) == [key]
            # the first engine is gone: its client sockets were closed with 1001
            await wait_until(lambda: bool(closes))
            assert closes[0] is not None and closes[0].code == 1001
            async with open_engine(opts) as server2:
                assert await listed(server2, actor_id) == [key]  # back from the store
                await wait_until(lambda: bool(server2.engine.sessions))
                api = EngineClient(server2.endpoint, timeout=20.0)
                await trio.to_thread.run_sync(http_get, api.gateway_url(actor_id, "/wake"))
                woken = await app.started(2)
                assert woken.hibernating_requests == (key,)
                assert app.restored == [key]

                # The entry is no longer refreshed by anyone: past the window it is stale.
                await sleep_actor(server2, app, actor_id)
                server2.engine.settings = dataclasses.replace(
                    server2.engine.settings, hibernating_request_eligible_threshold_ms=50
                )
                await trio.sleep(0.1)
                assert await listed(server2, actor_id) == []
                assert await pointer(server2, key) is not None  # not deleted, just ignored
                await trio.to_thread.run_sync(http_get, api.gateway_url(actor_id, "/wake"))
                stale_start = await app.started(3)
                assert stale_start.hibernating_requests == ()
                assert app.restored == [key]
                await runner.shutdown(graceful=False)
