"""Full garbage collections moved to quiet moments (``rivetpy.idle_gc``)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from rivetpy.idle_gc import IdleGcPolicy, LoopLoad, collect_when_idle


def test_policy_waits_for_idle_and_for_the_interpreters_own_cadence() -> None:
    policy = IdleGcPolicy()
    assert policy.due(now=100.0, busy_fraction=0.0, gen1_collections=10)
    assert not policy.due(now=100.0, busy_fraction=0.2, gen1_collections=10)  # busy
    assert not policy.due(now=100.0, busy_fraction=0.0, gen1_collections=9)  # not due yet


def test_policy_keeps_full_collections_under_their_share_of_wall_time() -> None:
    policy = IdleGcPolicy(max_share=0.1)
    policy.collected(start=10.0, end=10.2)  # a 200 ms collection
    assert not policy.due(now=12.1, busy_fraction=0.0, gen1_collections=50)
    assert policy.due(now=12.2, busy_fraction=0.0, gen1_collections=50)


def test_loop_load_counts_time_outside_the_io_wait() -> None:
    now = [0.0]
    load = LoopLoad(clock=lambda: now[0])
    now[0] = 0.5
    load.before_io_wait(1.0)  # ran 0.5 s since creation
    now[0] = 3.0
    load.after_io_wait(1.0)  # waited 2.5 s: not busy
    assert load.busy() == 0.5
    now[0] = 3.25
    assert load.busy() == 0.75  # the stretch running now counts
    load.before_io_wait(1.0)
    now[0] = 9.0
    assert load.busy() == 0.75


@pytest.fixture
def full_collections() -> Iterator[list[float]]:
    """Start times of generation-2 collections while the test runs, which starts right after a
    full collection (so none is due until the test makes one due)."""
    gc.collect()
    seen: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(time.monotonic())

    gc.callbacks.append(callback)
    yield seen
    gc.callbacks.remove(callback)


def _make_full_collection_due() -> None:
    for _ in range(IdleGcPolicy().min_gen1_collections):
        gc.collect(1)  # each one counts towards the next full collection


async def test_a_due_collection_runs_once_the_loop_is_idle(full_collections: list[float]) -> None:
    before = gc.get_threshold()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: collect_when_idle(period=0.02))
            await trio.sleep(0.05)
            assert gc.get_threshold() == (before[0], before[1], before[2] * 10)
            _make_full_collection_due()
            while not full_collections:
                await trio.sleep(0.01)
            assert gc.get_count()[2] < IdleGcPolicy().min_gen1_collections
            nursery.cancel_scope.cancel()
    assert gc.get_threshold() == before


async def test_no_collection_while_the_loop_is_busy(full_collections: list[float]) -> None:
    async def spin(until: float) -> None:
        while time.monotonic() < until:
            time.sleep(0.002)  # work that holds the loop
            await trio.sleep(0)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: collect_when_idle(period=0.02))
            await trio.sleep(0.05)
            _make_full_collection_due()
            busy_until = time.monotonic() + 0.5
            await spin(busy_until)
            assert full_collections == []
            # once the work stops, the collection that was due runs
            while not full_collections:
                await trio.sleep(0.01)
            assert full_collections[0] >= busy_until
            nursery.cancel_scope.cancel()


async def test_nothing_runs_while_the_collector_is_disabled(
    full_collections: list[float],
) -> None:
    gc.disable()
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: collect_when_idle(period=0.01))
                _make_full_collection_due()
                await trio.sleep(0.3)
                nursery.cancel_scope.cancel()
        assert full_collections == []
    finally:
        gc.enable()
