"""A hibernatable socket through the embedded engine's gateway survives sleeps and wakes, with
the Python runner (protocol v7 and v8): messages sent while the actor sleeps wake it and arrive
once, in order, acked."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from rivetpy.engine.hibernation import Phase
from tests.engine_hibernation.support import (
    HibernatingApp,
    client_ws,
    create_actor,
    engine_and_runner,
    gateway_sockets,
    sleep_actor,
    wait_until,
    ws_url,
)


@pytest.mark.parametrize("version", [7, 8])
async def test_socket_stays_open_across_sleeps_and_messages_wake_the_actor(
    tmp_path: Path, version: int
) -> None:
    app = HibernatingApp()
    with trio.fail_after(30):
        async with engine_and_runner(tmp_path, app, protocol_version=version) as (server, _):
            actor_id = await create_actor(server)
            await app.started()
            async with client_ws(ws_url(server, actor_id, "/hws/chat")) as ws:
                for text in ("a1", "a2"):
                    await ws.send_message(text)
                    assert await ws.get_message() == text
                [key] = app.persisted
                [gsock] = gateway_sockets(server)
                assert gsock.state.hibernatable and gsock.key == key
                sent = ["a1", "a2"]
                for cycle in (1, 2, 3):
                    await sleep_actor(server, app, actor_id)
                    await wait_until(lambda: gsock.state.phase is Phase.HIBERNATING)
                    assert not ws.closed
                    batch = [f"c{cycle}-{i}" for i in range(4)]
                    for text in batch:
                        await ws.send_message(text)
                    sent += batch
                    assert [await ws.get_message() for _ in batch] == batch
                    woken = await app.started(cycle + 1)
                    assert woken.hibernating_requests == (key,)
                assert app.restored == [key, key, key]
                assert [r.data for r in app.received] == sent
                assert [r.index for r in app.received] == list(range(1, len(sent) + 1))
                gens = [h.generation for h in app.starts]
                assert [r.generation for r in app.received] == [gens[0]] * 2 + [
                    g for g in gens[1:] for _ in range(4)
                ]
                # every message was acknowledged: nothing is left to replay
                await wait_until(lambda: not gsock.state.has_pending)
                assert gsock.state.last_ack == len(sent)
                assert gsock.hibernations == 3
            await app.wait_for(lambda: key not in app.persisted)
            await wait_until(lambda: not gateway_sockets(server))


@pytest.mark.parametrize("version", [7, 8])
async def test_non_hibernatable_socket_is_closed_on_sleep(tmp_path: Path, version: int) -> None:
    app = HibernatingApp()
    with trio.fail_after(30):
        async with engine_and_runner(tmp_path, app, protocol_version=version) as (server, _):
            actor_id = await create_actor(server)
            await app.started()
            async with client_ws(ws_url(server, actor_id, "/plain")) as ws:
                await ws.send_message("x")
                assert await ws.get_message() == "x"
                await sleep_actor(server, app, actor_id)
                await wait_until(lambda: ws.closed is not None)
                assert ws.closed is not None
                assert (ws.closed.code, ws.closed.reason) == (1011, "actor.stopped")
            assert app.received == []
            assert len(app.starts) == 1  # the closed socket did not wake the actor
