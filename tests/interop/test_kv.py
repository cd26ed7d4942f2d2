"""Actor KV from inside the Python runner, cross-checked through the engine's public KV route
(``GET /actors/{id}/kv/keys/{key}``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from rivetpy.runner import ActorHandle
from rivetpy.testing.engine import EngineClient, RealEngine
from tests.interop.support import (
    InteropApp,
    connected_runner,
    create_actor,
    http,
    in_thread,
    runner_options,
)

USERS = [(b"user/" + bytes([c]), b"v" + bytes([c]) * 3) for c in b"abcde"]
ENTRIES = [*USERS, (b"\x00\xffbin", bytes(range(256))), (b"other", b"")]


async def api_value(client: EngineClient, actor_id: str, key: bytes) -> bytes | None:
    value: bytes | None = await in_thread(lambda: client.kv_get(actor_id, key))
    return value


async def api_values(client: EngineClient, actor_id: str, keys: list[bytes]) -> list[bytes | None]:
    return [await api_value(client, actor_id, k) for k in keys]


@asynccontextmanager
async def seeded_actor(engine: RealEngine) -> AsyncIterator[tuple[EngineClient, ActorHandle]]:
    """A fresh actor on a Python runner whose KV holds :data:`ENTRIES` (put from inside)."""
    client = engine.client()
    app = InteropApp()
    async with connected_runner(runner_options(engine.endpoint), app) as runner:
        actor = await app.started((await create_actor(client, runner))["actor_id"])
        await actor.kv.put(ENTRIES)
        yield client, actor


async def test_kv_put_and_get(engine: RealEngine) -> None:
    with trio.fail_after(30):
        async with seeded_actor(engine) as (client, actor):
            kv = actor.kv
            assert await kv.get([b"user/c", b"missing", b"\x00\xffbin", b"other"]) == [
                b"vccc",
                None,
                bytes(range(256)),
                b"",
            ]
            assert await kv.get_one(b"missing") is None
            for key, value in ENTRIES:
                assert await api_value(client, actor.actor_id, key) == value
            assert await api_value(client, actor.actor_id, b"missing") is None
            await kv.put([(b"user/a", b"overwritten")])
            assert await kv.get_one(b"user/a") == b"overwritten"
            assert await api_value(client, actor.actor_id, b"user/a") == b"overwritten"


async def test_kv_list_all_and_prefix(engine: RealEngine) -> None:
    with trio.fail_after(30):
        async with seeded_actor(engine) as (_, actor):
            kv = actor.kv
            assert await kv.list_all() == sorted(ENTRIES)
            assert await kv.list_prefix(b"user/") == USERS
            assert await kv.list_prefix(b"user/", reverse=True, limit=2) == USERS[::-1][:2]
            assert await kv.list_prefix(b"nothing/") == []


async def test_kv_list_range_inclusive_and_exclusive(engine: RealEngine) -> None:
    with trio.fail_after(30):
        async with seeded_actor(engine) as (_, actor):
            kv = actor.kv
            assert await kv.list_range(b"user/b", b"user/d") == USERS[1:4]
            assert await kv.list_range(b"user/b", b"user/d", exclusive=True) == USERS[1:3]
            assert await kv.list_range(b"user/b", b"user/bz") == USERS[1:2]
            assert await kv.list_range(b"user/x", b"user/z") == []


async def test_kv_delete(engine: RealEngine) -> None:
    with trio.fail_after(30):
        async with seeded_actor(engine) as (client, actor):
            await actor.kv.delete([b"user/a", b"other", b"missing"])
            assert await actor.kv.get([b"user/a", b"other", b"user/b"]) == [None, None, b"vbbb"]
            assert await api_values(client, actor.actor_id, [b"user/a", b"other", b"user/b"]) == [
                None,
                None,
                b"vbbb",
            ]


async def test_kv_delete_range_excludes_the_end(engine: RealEngine) -> None:
    with trio.fail_after(30):
        async with seeded_actor(engine) as (client, actor):
            await actor.kv.delete_range(b"user/b", b"user/d")
            assert await actor.kv.list_prefix(b"user/") == [USERS[0], *USERS[3:]]
            keys = [k for k, _ in USERS]
            assert await api_values(client, actor.actor_id, keys) == [
                b"vaaa",
                None,
                None,
                b"vddd",
                b"veee",
            ]


async def test_kv_drop(engine: RealEngine) -> None:
    with trio.fail_after(30):
        async with seeded_actor(engine) as (client, actor):
            await actor.kv.drop()
            assert await actor.kv.list_all() == []
            keys = [k for k, _ in ENTRIES]
            assert await api_values(client, actor.actor_id, keys) == [None] * len(keys)


async def test_kv_is_per_actor_and_survives_sleep(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            first_id = (await create_actor(client, runner))["actor_id"]
            second_id = (await create_actor(client, runner))["actor_id"]
            first = await app.started(first_id)
            second = await app.started(second_id)
            await first.kv.put([(b"k", b"first")])
            await second.kv.put([(b"k", b"second")])
            assert await api_value(client, first_id, b"k") == b"first"
            assert await api_value(client, second_id, b"k") == b"second"

            first.sleep()
            await app.stopped(first_id)
            # Readable through the API while asleep (without waking it) ...
            assert await api_value(client, first_id, b"k") == b"first"
            assert len(app.starts_of(first_id)) == 1
            # ... and by the next generation.
            assert (await http("GET", client.gateway_url(first_id, "/ping"))).status == 200
            woken = await app.started(first_id, 2)
            assert await woken.kv.get_one(b"k") == b"first"
            assert await second.kv.get_one(b"k") == b"second"
