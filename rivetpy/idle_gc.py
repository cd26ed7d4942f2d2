"""Full garbage collections at quiet moments instead of in the middle of a burst.

CPython starts a full (generation 2) collection once enough objects have survived into its
oldest generation. The pause grows with every object the process holds (about 170 ms for the
embedded engine and a runner with 1,000 hibernating WebSockets, against 20 ms with one) and lands
wherever the allocation that tips the count happens: typically inside a burst, such as an actor
waking with all its sockets, which is exactly when a pause hurts.

:func:`collect_when_idle` moves those collections to quiet moments. It watches how busy the Trio
event loop is (time spent running tasks, not waiting for I/O) and runs the full collection when
one is due and the loop has been mostly idle for a period. Meanwhile the interpreter's own full
collections are made ten times rarer, not disabled: under load that never lets up they still
bound the memory held by garbage cycles. It changes a process-wide setting, so it belongs to
the program that owns the process (``rivetpy dev`` and ``rivetpy engine`` run it), not to a
library; the previous thresholds come back when it ends.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

log = logging.getLogger(__name__)


@dataclass
class IdleGcPolicy:
    """When a full collection is due (pure decisions; the caller supplies times and counts)."""

    #: the loop counts as idle while it spends less than this share of the period running tasks
    idle_below: float = 0.2
    #: collections of the middle generation since the last full one before the next is due
    #: (the interpreter's default third threshold, so the cadence is the interpreter's own)
    min_gen1_collections: int = 10
    #: full collections may take at most this share of wall time
    max_share: float = 0.1
    last_end: float = -math.inf
    last_duration: float = 0.0

    def due(self, now: float, busy_fraction: float, gen1_collections: int) -> bool:
        if busy_fraction >= self.idle_below or gen1_collections < self.min_gen1_collections:
            return False
        return now - self.last_end >= self.last_duration / self.max_share

    def collected(self, start: float, end: float) -> None:
        self.last_end = end
        self.last_duration = end - start


class LoopLoad(trio.abc.Instrument):
    """Seconds the event loop has spent outside its I/O wait (running tasks), cumulatively."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._busy = 0.0
        self._woke: float | None = clock()

    def before_io_wait(self, timeout: float) -> None:
        if self._woke is not None:
            self._busy += self._clock() - self._woke
            self._woke = None

    def after_io_wait(self, timeout: float) -> None:
        self._woke = self._clock()

    def busy(self) -> float:
        """Busy seconds so far, including the stretch the loop is running now."""
        running = 0.0 if self._woke is None else self._clock() - self._woke
        return self._busy + running


async def collect_when_idle(
    *,
    period: float = 0.1,
    policy: IdleGcPolicy | None = None,
    automatic_slowdown: int = 10,
) -> None:
    """Run until cancelled: every ``period`` seconds, if the loop was idle over the period and a
    full collection is due (:class:`IdleGcPolicy`), run it. Does nothing while the collector is
    disabled (``gc.disable()``)."""
    policy = policy or IdleGcPolicy()
    load = LoopLoad()
    previous = gc.get_threshold()
    gc.set_threshold(previous[0], previous[1], previous[2] * automatic_slowdown)
    trio.lowlevel.add_instrument(load)
    try:
        mark_busy, mark_at = load.busy(), time.perf_counter()
        while True:
            await trio.sleep(period)
            now = time.perf_counter()
            fraction = (load.busy() - mark_busy) / max(now - mark_at, 1e-9)
            if gc.isenabled() and policy.due(now, fraction, gc.get_count()[2]):
                start = time.perf_counter()
                found = gc.collect()
                end = time.perf_counter()
                policy.collected(start, end)
                log.debug(
                    "idle full collection",
                    extra={
                        "gc_ms": round((end - start) * 1000, 2),
                        "unreachable": found,
                        "busy_fraction": round(fraction, 3),
                    },
                )
            mark_busy, mark_at = load.busy(), time.perf_counter()
    finally:
        trio.lowlevel.remove_instrument(load)
        gc.set_threshold(*previous)
