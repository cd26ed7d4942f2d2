"""Hibernatable actor connections (issue 6, actor side): the client's WebSocket stays open
while the actor sleeps; messages sent meanwhile wake it and are processed once, in order, with
the connection's persisted state, and acknowledged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from rivetpy.actor import keys
from rivetpy.actor.persist import PersistedConn
from rivetpy.client import Client
from rivetpy.dev import DevServer, open_dev
from rivetpy.engine.runner_endpoint import RunnerSession
from tests.actor.actors import Room
from tests.actor.support import sleep_actor, wait_state


async def _conn_record(dev: DevServer, actor_id: str, conn_id: str) -> PersistedConn | None:
    entry = await dev.engine.engine.kv_get(actor_id, keys.connection_key(conn_id))
    return None if entry is None else PersistedConn.decode(entry.value)


@pytest.mark.parametrize("protocol_version", [8, 7])
async def test_connection_survives_sleep_with_state_and_order(
    tmp_path: Path, protocol_version: int
) -> None:
    with trio.fail_after(60):
        async with (
            open_dev([Room], data_dir=tmp_path, port=0, protocol_version=protocol_version) as dev,
            Client(dev.endpoint) as client,
        ):
            room = await client.get_or_create("room", "h")
            async with room.connect({"user": "ann"}) as ann:
                await ann.subscribe("message")
                assert await ann.action("say", "before") == 1
                assert await ann.next_event() == ("message", ["ann", "before"])
                conn_id = ann.connection_id
                assert conn_id is not None
                await sleep_actor(dev, room.actor_id)
                assert not ann.closed.is_set()  # the gateway kept the client socket
                record = await _conn_record(dev, room.actor_id, conn_id)
                assert record is not None and record.socket is not None
                assert record.state == {"user": "ann", "sent": 1}
                # messages sent while asleep wake the actor and arrive once, in order
                results: list[Any] = []
                async with trio.open_nursery() as nursery:
                    for i in range(5):
                        nursery.start_soon(_say_in_order, ann, i, results)
                        await trio.sleep(0.01)
                assert sorted(results) == [2, 3, 4, 5, 6]
                await wait_state(dev, room.actor_id, "running")
                history = await room.action("history")
                assert history[1:] == [["ann", f"asleep {i}"] for i in range(5)]
                # the restored connection kept its state and subscriptions
                assert await ann.action("me") == {"user": "ann", "sent": 6}
                events = [await ann.next_event() for _ in range(5)]
                assert events == [("message", ["ann", f"asleep {i}"]) for i in range(5)]
                # processed indexes are persisted (then acked): subscribe, say, 5 says, me
                while True:
                    record = await _conn_record(dev, room.actor_id, conn_id)
                    assert record is not None and record.socket is not None
                    if record.socket.server_index == 8:
                        break
                    await trio.sleep(0.02)
                assert record.state == {"user": "ann", "sent": 6}
                stats = await room.action("stats")
                assert stats == {"joined": 1, "left": 0}  # no reconnect, no disconnect
            # a closed socket's record is removed
            while await _conn_record(dev, room.actor_id, conn_id) is not None:
                await trio.sleep(0.02)
            assert (await room.action("stats"))["left"] == 1


async def _say_in_order(conn: Any, i: int, results: list[Any]) -> None:
    results.append(await conn.action("say", f"asleep {i}"))


async def test_connection_survives_a_runner_reconnect_while_asleep(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_dev([Room], data_dir=tmp_path, port=0) as dev,
            Client(dev.endpoint) as client,
        ):
            room = await client.get_or_create("room", "r")
            async with room.connect({"user": "bob"}) as bob:
                await bob.subscribe("message")
                assert await bob.action("say", "one") == 1
                await bob.next_event()
                await sleep_actor(dev, room.actor_id)
                runner_id = dev.runner.runner_id
                for session in list(dev.engine.engine.sessions.values()):
                    assert isinstance(session, RunnerSession)
                    session.going_away()  # the runner reconnects
                assert await bob.action("say", "two") == 2  # wakes the actor on the new link
                assert await bob.next_event() == ("message", ["bob", "two"])
                assert dev.runner.runner_id == runner_id
                assert await bob.action("me") == {"user": "bob", "sent": 2}
                assert await room.action("history") == [["bob", "one"], ["bob", "two"]]
                assert await room.action("stats") == {"joined": 1, "left": 0}
