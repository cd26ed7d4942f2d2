"""A hibernatable socket's entry is stored as soon as the socket may hibernate, without the
keepalive jitter: a socket put to sleep right after it opened is still listed by the start
command of the wake (found by bench/hibernation.py: with up to 128 ms of jitter before the first
upsert, such sockets were left out and their messages dropped until the ack timeout)."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.engine_hibernation.support import (
    HibernatingApp,
    open_socket,
    settings,
    sleep_actor,
)
from tests.engine_hibernation.test_reconnect_restart import listed


async def test_entry_is_stored_at_once_despite_a_long_jitter(tmp_path: Path) -> None:
    app = HibernatingApp()
    engine_settings = settings(hibernating_request_keepalive_jitter_ms=60_000)
    with trio.fail_after(30):
        async with open_socket(tmp_path, app, engine_settings=engine_settings) as opened:
            server, actor_id, ws, gsock = opened.server, opened.actor_id, opened.ws, opened.gsock
            with trio.fail_after(2):  # not after the (up to 60 s) jitter
                while gsock.key not in await listed(server, actor_id):
                    await trio.sleep(0.01)
            await sleep_actor(server, app, actor_id)
            await ws.send_message("after")
            assert await ws.get_message() == "after"
            woken = await app.started(2)
            assert woken.hibernating_requests == (gsock.key,)
