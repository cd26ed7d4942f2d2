"""The headline: startup KV round trips, counted on the embedded engine.

With protocol v8 the engine preloads the startup data: a new actor starts with 0 reads and 1
write (everything collected into one put), an existing actor with state, connections, queue,
workflow data and a SQLite database wakes with 0 reads and 0 writes. Data over the budgets falls
back to reads, which the guard reports once per method with counts. With v7 (no preload)
everything works through fallback reads and the guard stays silent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from rivetpy.actor.definition import ActorOptions, PreloadBudgets
from rivetpy.client import Client
from rivetpy.dev import DevServer, open_dev
from rivetpy.engine.config import PegboardConfig
from rivetpy.engine.core import EngineSettings
from tests.actor.actors import Counter, Everything
from tests.actor.support import last_start, sleep_actor

GUARD_LOGGER = "rivetpy.actor.round_trips"


class NoSqlitePreload(Everything):
    name = "no-sqlite-preload"
    options = ActorOptions(
        sleep_after=None, state_save_interval=0.05, preload=PreloadBudgets(sqlite_bytes=0)
    )


async def _populate(dev: DevServer, client: Client, name: str, notes: int = 3) -> str:
    handle = await client.get_or_create(name, "a")
    for i in range(notes):
        await handle.action("add_note", f"note {i} " + "y" * 200)
    await handle.action("enqueue", {"job": 1})
    assert await handle.action("once", "step-a") == len("step-a")
    async with handle.connect({"user": "u1"}) as conn:
        await conn.action("add_note", "from a connection")
    await handle.action("kv_put", "k", "v")
    return handle.actor_id


async def _wake_and_check(dev: DevServer, client: Client, actor_id: str, notes: int) -> None:
    await sleep_actor(dev, actor_id)
    handle = client.actor(actor_id)
    assert len(await handle.action("notes")) == notes + 1
    assert await handle.action("take") == [{"job": 1}]
    assert await handle.action("once", "step-a") == len("step-a")
    assert await handle.action("kv_get", "k") == "v"


@pytest.mark.parametrize("protocol_version", [8, 7])
async def test_new_actor_one_write(tmp_path: Path, protocol_version: int) -> None:
    with trio.fail_after(30):
        async with (
            open_dev(
                [Counter], data_dir=tmp_path, port=0, protocol_version=protocol_version
            ) as dev,
            Client(dev.endpoint) as client,
        ):
            handle = await client.get_or_create("counter", "new")
            assert await handle.action("increment") == 1
            report = last_start(dev, handle.actor_id)
            assert report.new_actor
            assert report.engine_preload is (protocol_version == 8)
            assert report.kv_writes == 1
            # v8: all three startup keys known absent from the preload; v7: one batched get
            assert report.kv_reads == (0 if protocol_version == 8 else 1)
            assert report.unexpected_reads == {}


async def test_existing_actor_wakes_with_zero_round_trips(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(60):
        async with (
            open_dev([Everything], data_dir=tmp_path, port=0) as dev,
            Client(dev.endpoint) as client,
        ):
            actor_id = await _populate(dev, client, "everything")
            first = last_start(dev, actor_id)
            assert first.new_actor and first.kv_reads == 0
            caplog.clear()
            await _wake_and_check(dev, client, actor_id, 3)
            woke = last_start(dev, actor_id)
            assert woke.generation == 1 and not woke.new_actor and woke.engine_preload
            assert (woke.kv_reads, woke.kv_writes) == (0, 0)
            assert woke.unexpected_reads == {}
            assert not [r for r in caplog.records if r.name == GUARD_LOGGER]


async def test_data_over_budget_falls_back_and_guard_reports_once_per_method(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EngineSettings(pegboard=PegboardConfig(preload_max_total_bytes=3000))
    with trio.fail_after(60):
        async with (
            open_dev([Everything], data_dir=tmp_path, port=0, settings=settings) as dev,
            Client(dev.endpoint) as client,
        ):
            actor_id = await _populate(dev, client, "everything", notes=40)
            await client.actor(actor_id).action("set_blob", 8000)
            caplog.set_level(logging.WARNING, logger=GUARD_LOGGER)
            caplog.clear()
            await _wake_and_check(dev, client, actor_id, 40)
            woke = last_start(dev, actor_id)
            assert woke.engine_preload and not woke.new_actor
            # [1] (8 KB state) does not fit: one get; the partial SQLite prefix
            # has no page: another
            assert woke.unexpected_reads.get("get", 0) >= 2
            assert woke.kv_reads == sum(woke.unexpected_reads.values())
            warnings = [r for r in caplog.records if r.name == GUARD_LOGGER]
            firsts = [r for r in warnings if r.getMessage().startswith("unexpected")]
            assert sorted(r.__dict__["kv_method"] for r in firsts) == sorted(woke.unexpected_reads)
            summary = [r for r in warnings if r.getMessage().startswith("KV round-trips")]
            assert len(summary) == 1
            assert summary[0].__dict__["kv_round_trips"] == woke.unexpected_reads


async def test_per_actor_budget_from_actor_options_reaches_the_engine(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_dev([Everything, NoSqlitePreload], data_dir=tmp_path, port=0) as dev,
            Client(dev.endpoint) as client,
        ):
            ids: dict[str, Any] = {}
            for name in ("everything", "no-sqlite-preload"):
                ids[name] = await _populate(dev, client, name)
                await _wake_and_check(dev, client, ids[name], 3)
            assert last_start(dev, ids["everything"]).unexpected_reads == {}
            disabled = last_start(dev, ids["no-sqlite-preload"])
            assert disabled.unexpected_reads.get("get", 0) >= 1  # pages read from KV


async def test_v7_engine_works_through_fallback_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(60):
        async with (
            open_dev([Everything], data_dir=tmp_path, port=0, protocol_version=7) as dev,
            Client(dev.endpoint) as client,
        ):
            actor_id = await _populate(dev, client, "everything")
            caplog.clear()
            await _wake_and_check(dev, client, actor_id, 3)
            woke = last_start(dev, actor_id)
            assert not woke.engine_preload
            assert woke.kv_reads >= 3  # startup keys, connections, workflow, pages
            assert woke.unexpected_reads == {}
            assert not [r for r in caplog.records if r.name == GUARD_LOGGER]
