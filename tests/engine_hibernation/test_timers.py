"""The gateway's shared timers (used for the hibernatable sockets' ack checks) under a virtual
clock (autojump): deadline order, cancellation, heap compaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from rivetpy.engine.hibernation_keepalive import Timers


@asynccontextmanager
async def running_timers() -> AsyncIterator[Timers]:
    async with trio.open_nursery() as nursery:
        yield Timers(nursery.start_soon)
        nursery.cancel_scope.cancel()


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
