"""Client messages sent right as the actor goes to sleep (while the runner stops it, or just
after the engine has it asleep, before the gateway has switched the socket to hibernation) are
delivered once the actor wakes.

One such interleaving was seen in the actor tests (a message published to a runner that no
longer hosted the socket, so it stayed unacknowledged, and the gateway resumed at once without
persisting the socket's entry: the start command did not list the socket, the message was
dropped and the client waited for the 30 s ack timeout). The gateway now persists the entry
before that wake; this test exercises the neighbourhood but does not reproduce the exact timing
reliably."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.engine_hibernation.support import HibernatingApp, open_socket


async def test_message_racing_the_sleep_is_delivered_after_the_wake(tmp_path: Path) -> None:
    app = HibernatingApp()
    with trio.fail_after(60):
        async with open_socket(tmp_path, app, path="/hws/race") as opened:
            server, actor_id, ws = opened.server, opened.actor_id, opened.ws
            sent = ["a1"]
            for cycle in range(1, 9):
                count = len(app.stops)
                app.starts[-1].sleep()
                # send as soon as the engine has the actor asleep, racing the gateway's
                # switch to hibernation (odd cycles), or while the runner stops it (even)
                await app.stopped(count + 1)
                if cycle % 2:
                    while server.engine.actors[actor_id].state != "sleeping":
                        await trio.sleep(0)
                text = f"racing-{cycle}"
                await ws.send_message(text)
                sent.append(text)
                with trio.fail_after(10):  # the bug: no echo until the 30 s ack timeout
                    assert await ws.get_message() == text
                await app.started(cycle + 1)
            assert [r.data for r in app.received] == sent
