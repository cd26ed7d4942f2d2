"""Persisted liveness of hibernatable WebSockets: the keepalive loop and a group-commit writer.

:func:`keepalive` is the keepalive task of hibernation.md §4: one upsert per tick, the first tick
at once (unless told otherwise), ``max(threshold / 2, 1)`` ms apart, each after a random jitter,
missed ticks skipped. It returns only by failing: the upsert's exception is raised as
:class:`KeepaliveError` (with the cause in ``__cause__``) for the caller to report.

:class:`RequestWriter` performs the upserts and deletes of §5.2/§5.3. Concurrent calls are
coalesced into one store transaction, applied in call order: when an actor with a thousand
hibernating sockets wakes, their refreshes cost one or two commits, not a thousand. Every caller
of a batch gets the batch's outcome: :class:`KeepaliveError` if its transaction failed.

:class:`Timers` runs many timers on one task (a heap of deadlines): the gateway's ack checks of
a thousand sockets cost one task.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from rivetpy.engine import hibernation_store as hs
from rivetpy.engine.store.api import Store, Transaction

log = logging.getLogger("rivetpy.engine.hibernation")

#: how long a batch commit may take before its callers are released with an error
COMMIT_TIMEOUT = 30.0


class KeepaliveError(Exception):
    """Persisting a hibernating request's liveness (or removing it) failed; the cause is in
    ``__cause__``. It ends the socket's hibernation with an error (hibernation.md §6.2)."""


@dataclass(frozen=True, slots=True)
class _Op:
    upsert: bool
    actor_id: str
    gateway_id: bytes
    request_id: bytes


@dataclass
class _Batch:
    ops: list[_Op] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class RequestWriter:
    """Group-committed ``upsert``/``delete`` of hibernating requests (see the module docstring).

    ``clock`` gives the engine wall clock in ms; one ``now`` is used for a whole batch (and for
    every retry of its transaction).
    """

    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self._open: _Batch | None = None
        self._commit_lock = trio.Lock()
        #: the timestamp this writer last committed for each live request (only the gateway
        #: that holds a socket writes its entries, so this is the stored value; a request not
        #: in it is read first)
        self._written: dict[tuple[bytes, bytes], int] = {}
        #: committed transactions and operations (observability and tests)
        self.commits = 0
        self.operations = 0

    async def upsert(self, actor_id: str, gateway_id: bytes, request_id: bytes) -> None:
        """Record a keepalive of the request now. Raises :class:`KeepaliveError`."""
        await self._submit(_Op(True, actor_id, gateway_id, request_id))

    async def delete(self, actor_id: str, gateway_id: bytes, request_id: bytes) -> None:
        """Forget the request. Raises :class:`KeepaliveError`."""
        await self._submit(_Op(False, actor_id, gateway_id, request_id))

    async def _submit(self, op: _Op) -> None:
        batch = self._open
        if batch is not None:
            batch.ops.append(op)
            await batch.done.wait()
        else:
            batch = self._open = _Batch([op])
            # The leader commits for everyone who joins meanwhile; it must not be cancelled
            # halfway (the followers would wait forever), so the commit is shielded and bounded.
            with trio.CancelScope(shield=True):
                try:
                    with trio.fail_after(COMMIT_TIMEOUT):
                        await trio.lowlevel.checkpoint()  # let the tasks woken with us join
                        async with self._commit_lock:
                            if self._open is batch:
                                self._open = None
                            await self._commit(batch.ops)
                except Exception as exc:
                    batch.error = exc
                finally:
                    if self._open is batch:
                        self._open = None
                    batch.done.set()
        if batch.error is not None:
            raise KeepaliveError(f"hibernating request store: {batch.error}") from batch.error

    async def _commit(self, ops: list[_Op]) -> None:
        now = self.clock()
        known = self._written

        async def body(tr: Transaction) -> None:
            # Several operations of one request may share a batch (a cancelled keepalive upsert
            # still queued when the socket's delete joins): they apply in order, each from the
            # timestamp the previous one left (None: no entry).
            current: dict[tuple[bytes, bytes], int | None] = {}
            for op in ops:
                key = (op.gateway_id, op.request_id)
                if key in current or key in known:  # its current timestamp is known: no read
                    previous = current[key] if key in current else known[key]
                    if op.upsert:
                        hs.upsert_known(tr, op.actor_id, *key, now, previous)
                    else:
                        hs.delete_known(tr, op.actor_id, *key, previous)
                elif op.upsert:
                    await hs.upsert(tr, op.actor_id, *key, now)
                else:
                    await hs.delete(tr, op.actor_id, *key)
                current[key] = now if op.upsert else None

        await self.store.run(body)
        for op in ops:
            if op.upsert:
                known[(op.gateway_id, op.request_id)] = now
            else:
                known.pop((op.gateway_id, op.request_id), None)
        self.commits += 1
        self.operations += len(ops)


async def keepalive(
    upsert: Callable[[], Awaitable[None]],
    interval_ms: int,
    *,
    jitter_ms: int = 0,
    immediate: bool = True,
    first_tick: float | None = None,
    rng: random.Random | None = None,
) -> None:
    """Call ``upsert`` every ``interval_ms`` (>= 1) until cancelled; the first call at once if
    ``immediate`` (else one interval from now), or at ``first_tick`` (Trio time) if given.
    Before each call, sleep a random ``[0, jitter_ms)`` ms. Ticks missed while an upsert was
    slow are skipped, not caught up. Never returns normally: an ``upsert`` failure is raised as
    :class:`KeepaliveError` (unless it already is one)."""
    interval = max(interval_ms, 1) / 1000
    pick = rng or random
    tick = trio.current_time() + (0 if immediate else interval)
    if first_tick is not None:
        tick = first_tick
    while True:
        await trio.sleep_until(tick)
        if jitter_ms > 0:
            await trio.sleep(pick.randrange(jitter_ms) / 1000)
        try:
            await upsert()
        except KeepaliveError:
            raise
        except Exception as exc:
            raise KeepaliveError(f"keepalive upsert failed: {exc}") from exc
        tick += interval
        now = trio.current_time()
        if tick <= now:
            missed = int((now - tick) // interval) + 1
            tick += missed * interval


class Timer:
    """One pending call of :class:`Timers` (see :meth:`Timers.call_at`)."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False


class Timers:
    """Many timers on one task: :meth:`call_at` runs a synchronous callback at a Trio time,
    :meth:`start_soon` runs awaitable work started from a callback. ``start`` runs the timers'
    task in its owner's nursery (e.g. :meth:`rivetpy.engine.core.Engine.start_background`); it
    is called once, at the first :meth:`call_at`.

    Callbacks run in the timers' task, in deadline order, and must not raise (an exception
    escaping a callback or a started task is a bug and crashes the owner's nursery)."""

    def __init__(self, start: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
        self._start = start
        self._started = False
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None

    def __len__(self) -> int:
        """Timers not yet run or cancelled."""
        return len(self._heap) - self._cancelled

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback()`` at Trio time ``when`` (or soon after) unless cancelled first."""
        if not self._started:
            self._started = True
            self._start(self.run)
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        if self._heap[0][2] is timer:
            self._changed.set()
        return timer

    def cancel(self, timer: Timer | None) -> None:
        """Cancel ``timer`` if it has not run yet (None and repeated calls are no-ops)."""
        if timer is None or timer.cancelled:
            return
        timer.cancelled = True
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def start_soon(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` as a task of the timers (only from a timer callback)."""
        assert self._nursery is not None, "start_soon outside a timer callback"
        self._nursery.start_soon(fn)

    async def run(self) -> None:
        """The timers' task (started by the first :meth:`call_at`)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            heap = self._heap
            while True:
                self._changed = trio.Event()
                now = trio.current_time()
                heap = self._heap
                while heap and heap[0][0] <= now:
                    timer = heapq.heappop(heap)[2]
                    if timer.cancelled:
                        self._cancelled -= 1
                        continue
                    timer.cancelled = True  # ran: a later cancel is a no-op
                    timer.callback()
                    heap = self._heap  # a cancel may have compacted it
                deadline = heap[0][0] if heap else math.inf
                with trio.move_on_at(deadline):
                    await self._changed.wait()
