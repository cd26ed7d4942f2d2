"""Helpers of the actor end-to-end tests."""

from __future__ import annotations

import trio

from rivetpy.actor.app import StartupReport
from rivetpy.dev import DevServer


async def wait_state(dev: DevServer, actor_id: str, state: str) -> None:
    while dev.engine.engine.actors[actor_id].state != state:
        await trio.sleep(0.01)


async def sleep_actor(dev: DevServer, actor_id: str) -> None:
    """Put the actor to sleep (as its own idle timer would) and wait until it sleeps."""
    inst = dev.app.instance(actor_id)
    assert inst is not None
    inst.request_sleep()
    await wait_state(dev, actor_id, "sleeping")


def last_start(dev: DevServer, actor_id: str) -> StartupReport:
    return [r for r in dev.app.startups if r.actor_id == actor_id][-1]
