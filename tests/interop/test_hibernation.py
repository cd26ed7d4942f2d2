"""A hibernatable WebSocket survives the actor's sleep and wake with no message lost."""

from __future__ import annotations

import trio

from rivetpy.runner import StopReason
from rivetpy.testing.engine import RealEngine
from tests.interop.support import (
    InteropApp,
    Received,
    connected_runner,
    create_actor,
    gateway_ws,
    runner_options,
)


async def test_hibernatable_websocket_survives_sleep_and_wake(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(60):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            first = await app.started(actor_id)
            async with gateway_ws(client.gateway_url(actor_id, "/hws/chat")) as ws:
                for text in ("a1", "a2"):
                    await ws.send_message(text)
                    assert await ws.get_message() == text
                [key] = app.persisted
                assert app.persisted[key].server_index == 2
                assert app.persisted[key].path == "/hws/chat"

                # Two sleep/wake cycles; the client socket stays open throughout and sends
                # while the actor is asleep: the engine wakes it, listing the socket.
                sent = ["a1", "a2"]
                asleep = first
                for cycle in (1, 2):
                    asleep.sleep()
                    assert await app.stopped(actor_id, cycle) == (asleep, StopReason.COMMAND)
                    batch = [f"c{cycle}-{i}" for i in range(5)]
                    for text in batch:
                        await ws.send_message(text)
                    sent += batch
                    assert [await ws.get_message() for _ in batch] == batch
                    woken = await app.started(actor_id, cycle + 1)
                    assert woken.generation > asleep.generation
                    assert woken.hibernating_requests == (key,)
                    asleep = woken
                assert app.restored == [key, key]

                # Every message was processed exactly once, in order, indexes 1, 2, ...
                assert [r.data for r in app.received] == sent
                assert [r.index for r in app.received] == list(range(1, len(sent) + 1))
                generations = [h.generation for h in app.starts_of(actor_id)]
                assert [r.generation for r in app.received] == (
                    [generations[0]] * 2 + [generations[1]] * 5 + [generations[2]] * 5
                )
                assert app.persisted[key].server_index == len(sent)
                await ws.send_message("last")
                assert await ws.get_message() == "last"
                assert app.received[-1] == Received(generations[2], len(sent) + 1, "last")
            # The client's close reaches the restored socket's handler.
            await app.wait_for(lambda: key not in app.persisted)
            assert len(app.starts_of(actor_id)) == 3
