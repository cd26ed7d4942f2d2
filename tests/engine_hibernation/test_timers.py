"""The gateway's shared timers and the keepalive cadence on them, under a virtual clock
(autojump): the same cadence as :func:`keepalive` (first tick, 1 ms clamp, jitter, skipped
ticks, failure reported once with its cause), cancellation, deadline order (hibernation.md §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from rivetpy.engine.hibernation import keepalive_interval_ms
from rivetpy.engine.hibernation_keepalive import KeepaliveError, KeepaliveTimer, Timers


@asynccontextmanager
async def running_timers() -> AsyncIterator[Timers]:
    async with trio.open_nursery() as nursery:
        yield Timers(nursery.start_soon)
        nursery.cancel_scope.cancel()


async def record_ticks(
    interval_ms: int,
    duration: float,
    *,
    delay: float = 0.0,
    jitter_ms: int = 0,
    upsert: Callable[[list[float], float], Awaitable[None]] | None = None,
) -> tuple[list[float], list[KeepaliveError]]:
    start = trio.current_time()
    ticks: list[float] = []
    failures: list[KeepaliveError] = []

    async def record() -> None:
        ticks.append(round(trio.current_time() - start, 6))
        if upsert is not None:
            await upsert(ticks, start)

    async with running_timers() as timers:
        KeepaliveTimer(
            timers,
            record,
            interval_ms,
            first_tick=start + delay,
            jitter_ms=jitter_ms,
            on_failed=failures.append,
        )
        await trio.sleep(duration)
    return ticks, failures


async def test_cadence_first_tick_at_once(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        ticks, _ = await record_ticks(keepalive_interval_ms(1_000), 2.2)
    assert ticks == [0.0, 0.5, 1.0, 1.5, 2.0]
    with trio.fail_after(60):
        later, _ = await record_ticks(500, 1.2, delay=0.5)
    assert later == [0.5, 1.0]


async def test_tiny_threshold_never_spins(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        ticks, _ = await record_ticks(keepalive_interval_ms(1), 0.0105)
    assert len(ticks) == 11  # every 1 ms, not a zero-length loop


async def test_jitter_delays_each_upsert_within_the_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        ticks, _ = await record_ticks(500, 2.2, jitter_ms=128)
    assert len(ticks) == 5
    for i, tick in enumerate(ticks):
        assert i * 0.5 <= tick < i * 0.5 + 0.128


async def test_missed_ticks_are_skipped(autojump_clock: trio.testing.MockClock) -> None:
    async def slow_first(ticks: list[float], start: float) -> None:
        if len(ticks) == 1:
            await trio.sleep(1.2)

    with trio.fail_after(60):
        ticks, _ = await record_ticks(500, 2.2, upsert=slow_first)
    assert ticks == [0.0, 1.5, 2.0]  # 0.5 and 1.0 were missed, not caught up


async def test_failure_is_reported_once_with_its_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    failed_at: list[float] = []

    async def failing(ticks: list[float], start: float) -> None:
        if len(ticks) == 3:
            failed_at.append(trio.current_time() - start)
            raise OSError("store down")

    with trio.fail_after(60):
        ticks, failures = await record_ticks(100, 1.0, upsert=failing)
    assert len(ticks) == 3  # no upsert after the failure
    assert len(failures) == 1
    assert isinstance(failures[0].__cause__, OSError)
    assert failed_at == [pytest.approx(0.2)]


async def test_cancel_stops_the_cadence_and_ignores_an_upsert_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0
    failures: list[KeepaliveError] = []
    started = trio.Event()

    async def slow_failing() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            started.set()
            await trio.sleep(0.3)
            raise OSError("late failure")

    with trio.fail_after(60):
        async with running_timers() as timers:
            keepalive = KeepaliveTimer(
                timers,
                slow_failing,
                100,
                first_tick=trio.current_time(),
                on_failed=failures.append,
            )
            await started.wait()
            keepalive.cancel()
            keepalive.cancel()  # idempotent
            await trio.sleep(1.0)
            assert len(timers) == 0
    assert calls == 2
    assert failures == []


async def test_timers_run_in_deadline_order_and_cancelled_ones_never(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[tuple[int, float]] = []
    with trio.fail_after(60):
        async with running_timers() as timers:
            start = trio.current_time()
            handles = []
            for i in range(300):
                when = start + (300 - i) / 100

                def callback(i: int = i) -> None:
                    fired.append((i, round(trio.current_time() - start, 6)))

                handles.append(timers.call_at(when, callback))
            for handle in handles[::2]:  # enough cancellations to compact the heap
                timers.cancel(handle)
            assert len(timers) == 150
            await trio.sleep(4)
            timers.cancel(handles[1])  # already ran: a no-op
            assert len(timers) == 0
    assert [i for i, _ in fired] == list(range(299, 0, -2))
    assert all(t == pytest.approx((300 - i) / 100) for i, t in fired)
