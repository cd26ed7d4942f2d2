"""Actors on the embedded engine through the gateway, with the Python client."""

from __future__ import annotations

from pathlib import Path

import trio

from rivetpy.client import Client
from rivetpy.dev import open_dev
from tests.actor.actors import Counter, Everything


async def test_counter_actions_over_http(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_dev([Counter, Everything], data_dir=tmp_path, port=0) as dev,
            Client(dev.endpoint) as client,
        ):
            counter = await client.get_or_create("counter", "c1", {"start": 10})
            assert await counter.action("increment", 5) == 15
            assert await counter.action("increment") == 16
            assert await counter.action("get") == 16
            again = await client.get_or_create("counter", "c1")
            assert again.actor_id == counter.actor_id
