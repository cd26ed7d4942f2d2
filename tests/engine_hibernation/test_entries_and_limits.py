"""The persisted entry's life, keepalive failure, index wrap and buffer limits, end to end on
the embedded engine (hibernation.md §5, §6.2, §9, §12 #6, #7, #9, #10)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio_websocket

from rivetpy.engine.core import EngineSettings
from rivetpy.engine.gateway_ws import KEEPALIVE_FAILED_REASON
from rivetpy.engine.hibernation import ACK_TIMEOUT_REASON, PENDING_LIMIT_REASON, Phase
from rivetpy.engine.hibernation_keepalive import KeepaliveError
from rivetpy.engine.store import StoreBackendError, Transaction
from tests.engine_hibernation.support import (
    HibernatingApp,
    client_ws,
    create_actor,
    engine_and_runner,
    gateway_sockets,
    hibernate,
    open_socket,
    settings,
    sleep_actor,
    wait_until,
    ws_url,
)
from tests.engine_hibernation.test_reconnect_restart import listed, pointer

T = TypeVar("T")


class FailingStore:
    """Wraps a store: every write transaction fails (reads still work)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.failures = 0

    async def run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        self.failures += 1
        raise StoreBackendError("disk on fire")


@pytest.mark.parametrize("while_asleep", [True, False])
async def test_a_closed_socket_entry_is_gone(tmp_path: Path, while_asleep: bool) -> None:
    app = HibernatingApp()
    with trio.fail_after(30):
        async with open_socket(tmp_path, app) as opened:
            server, actor_id, gsock = opened.server, opened.actor_id, opened.gsock
            [key] = app.persisted
            while await listed(server, actor_id) != [key]:  # the active keepalive
                await trio.sleep(0.005)
            if while_asleep:
                await hibernate(opened, app)
            await opened.ws.aclose(1000, "bye")
            await wait_until(lambda: gsock.ended is not None)
            assert await listed(server, actor_id) == []
            assert await pointer(server, key) is None  # both keys deleted
            if while_asleep:
                assert len(app.starts) == 1  # the close did not wake the actor
            else:
                await app.wait_for(lambda: key not in app.persisted)  # the runner was told
                assert app.closed == [(key, 1000)]


async def test_keepalive_failure_is_surfaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = HibernatingApp()
    engine_settings = settings(hibernating_request_eligible_threshold_ms=200)
    with trio.fail_after(30):
        async with open_socket(tmp_path, app, engine_settings=engine_settings) as opened:
            server, ws, gsock = opened.server, opened.ws, opened.gsock
            await hibernate(opened, app)
            writer = server.api.gateway.writer
            failing = FailingStore(writer.store)
            writer.store = failing  # type: ignore[assignment]
            await wait_until(lambda: ws.closed is not None)
            assert ws.closed is not None
            assert (ws.closed.code, ws.closed.reason) == (1011, KEEPALIVE_FAILED_REASON)
            assert isinstance(gsock.error, KeepaliveError)
            assert isinstance(gsock.error.__cause__, StoreBackendError)
            assert failing.failures >= 2  # the keepalive tick, then the delete attempt
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert any(r.exc_info and r.exc_info[1] is gsock.error for r in errors)
            assert len(app.starts) == 1


@pytest.mark.parametrize("version", [7, 8])
async def test_message_indexes_wrap_past_65535_with_acks(tmp_path: Path, version: int) -> None:
    app = HibernatingApp()
    with trio.fail_after(30):
        async with engine_and_runner(tmp_path, app, protocol_version=version) as (server, _):
            server.api.gateway.first_message_index = 65_530  # the open message's index
            actor_id = await create_actor(server)
            await app.started()
            async with client_ws(ws_url(server, actor_id, "/hws")) as ws:
                [gsock] = gateway_sockets(server)
                sent = []
                for i in range(3):
                    sent.append(f"a{i}")
                    await ws.send_message(sent[-1])
                    assert await ws.get_message() == sent[-1]
                for cycle in (1, 2):
                    await sleep_actor(server, app, actor_id)
                    await wait_until(lambda: gsock.state.phase is Phase.HIBERNATING)
                    batch = [f"c{cycle}-{i}" for i in range(4)]
                    for text in batch:
                        await ws.send_message(text)
                    sent += batch
                    assert [await ws.get_message() for _ in batch] == batch
                assert [r.data for r in app.received] == sent
                expected = [(65_531 + i) % 65_536 for i in range(len(sent))]
                assert [r.index for r in app.received] == expected
                assert expected[-1] == 5
                await wait_until(lambda: not gsock.state.has_pending)  # acks crossed the wrap
                assert gsock.state.last_ack == 5


async def test_pending_limit_closes_the_client(tmp_path: Path) -> None:
    app = HibernatingApp()
    engine_settings: EngineSettings = settings(gateway_hws_max_pending_messages=3)
    with trio.fail_after(30):
        async with open_socket(tmp_path, app, engine_settings=engine_settings) as opened:
            server, ws = opened.server, opened.ws
            await hibernate(opened, app)
            # hold the actor asleep: the runner is gone, so the buffer only grows
            for session in list(server.engine.sessions.values()):
                session.evict()
            await wait_until(lambda: not server.engine.sessions)
            for i in range(5):
                await ws.send_message(f"m{i}")
            await wait_until(lambda: ws.closed is not None)
            assert ws.closed is not None
            assert (ws.closed.code, ws.closed.reason) == (1011, PENDING_LIMIT_REASON)


async def test_engine_shutdown_while_a_socket_waits_for_the_wake(tmp_path: Path) -> None:
    """The engine stops while a hibernated socket waits for its actor to wake (no runner can
    take it): the shutdown is prompt and the client is closed with 1001."""
    app = HibernatingApp()
    closes: list[trio_websocket.CloseReason | None] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            async with engine_and_runner(tmp_path, app) as (server, _):
                actor_id = await create_actor(server)
                await app.started()
                ready, send_now = trio.Event(), trio.Event()

                async def client() -> None:
                    async with client_ws(ws_url(server, actor_id, "/hws")) as ws:
                        await ws.send_message("a1")
                        assert await ws.get_message() == "a1"
                        ready.set()
                        await send_now.wait()
                        await ws.send_message("m1")  # wakes; no runner can take the actor
                        with contextlib.suppress(trio_websocket.ConnectionClosed):
                            await ws.get_message()
                        closes.append(ws.closed)

                nursery.start_soon(client)
                await ready.wait()
                [gsock] = gateway_sockets(server)
                await sleep_actor(server, app, actor_id)
                await wait_until(lambda: gsock.state.phase is Phase.HIBERNATING)
                for session in list(server.engine.sessions.values()):
                    session.evict()
                await wait_until(lambda: not server.engine.sessions)
                send_now.set()
                await wait_until(lambda: server.engine.actors[actor_id].state == "pending")
                await trio.sleep(0.05)
                assert closes == []
            with trio.fail_after(5):
                await wait_until(lambda: bool(closes))
    assert closes[0] is not None and closes[0].code == 1001


async def test_unacknowledged_messages_close_the_client_after_the_ack_timeout(
    tmp_path: Path,
) -> None:
    app = HibernatingApp(ack=False)  # a1 is processed, never acknowledged
    engine_settings = settings(gateway_hws_message_ack_timeout_ms=300)
    with trio.fail_after(30):
        async with open_socket(tmp_path, app, engine_settings=engine_settings) as opened:
            server, ws, gsock = opened.server, opened.ws, opened.gsock
            await wait_until(lambda: ws.closed is not None)
            assert ws.closed is not None
            assert (ws.closed.code, ws.closed.reason) == (1011, ACK_TIMEOUT_REASON)
            await wait_until(lambda: gsock.ended is not None)
            assert len(gsock.state.pending) == 0  # closed: the buffer is dropped
            assert len(server.api.gateway.timers) == 0  # no check left armed
