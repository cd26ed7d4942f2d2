"""The keepalive task and the hibernating-request writer under a virtual clock (autojump):
cadence, the 1 ms clamp, skipped ticks, failure, and the eligibility threshold as the store
sees it (hibernation.md §2, §4, §5)."""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing

from rivetpy.engine import hibernation_store as hs
from rivetpy.engine.hibernation import keepalive_interval_ms
from rivetpy.engine.hibernation_keepalive import KeepaliveError, RequestWriter, _Op, keepalive
from rivetpy.engine.ids import new_id
from rivetpy.engine.store.api import KeyValue, StoreBackendError

T = TypeVar("T")
ACTOR = new_id(1)
A = (b"\x01\x00\x00\x00", b"\xaa\x00\x00\x01")
B = (b"\x01\x00\x00\x00", b"\xbb\x00\x00\x02")


class DictStore:
    """An in-memory store with the subset of the transaction API the hibernation store uses
    (no threads, so the autojump clock stays meaningful)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.fail = False

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self.data.get(key)

    async def get_range(
        self, begin: bytes, end: bytes, *, limit: int = 0, reverse: bool = False
    ) -> list[KeyValue]:
        await trio.lowlevel.checkpoint()
        keys = sorted(self.data)
        lo, hi = bisect.bisect_left(keys, begin), bisect.bisect_left(keys, end)
        return [KeyValue(k, self.data[k]) for k in keys[lo:hi]]

    def set(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def clear(self, key: bytes) -> None:
        self.data.pop(key, None)

    async def run(self, fn: Callable[[DictStore], Awaitable[T]]) -> T:
        if self.fail:
            raise StoreBackendError("unavailable")
        return await fn(self)

    async def read(self, fn: Callable[[DictStore], Awaitable[T]]) -> T:
        return await fn(self)


def virtual_ms() -> int:
    return int(trio.current_time() * 1000)


async def eligible(store: DictStore, threshold_ms: int) -> list[tuple[bytes, bytes]]:
    async def body(tr: DictStore) -> list[tuple[bytes, bytes]]:
        return await hs.list_eligible(tr, ACTOR, virtual_ms(), threshold_ms)  # type: ignore[arg-type]

    return await store.read(body)


async def record_ticks(interval_ms: int, duration: float, **kwargs: object) -> list[float]:
    start = trio.current_time()
    ticks: list[float] = []

    async def upsert() -> None:
        ticks.append(round(trio.current_time() - start, 6))

    with trio.move_on_after(duration):
        await keepalive(upsert, interval_ms, **kwargs)  # type: ignore[arg-type]
    return ticks


def test_interval_is_half_the_threshold_clamped_to_one_ms() -> None:
    assert keepalive_interval_ms(90_000) == 45_000
    assert keepalive_interval_ms(1_000) == 500
    assert keepalive_interval_ms(3) == 1
    assert keepalive_interval_ms(1) == 1
    assert keepalive_interval_ms(0) == 1


async def test_cadence_first_tick_at_once(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        ticks = await record_ticks(keepalive_interval_ms(1_000), 2.2)
    assert ticks == [0.0, 0.5, 1.0, 1.5, 2.0]
    with trio.fail_after(60):
        later = await record_ticks(500, 1.2, immediate=False)
    assert later == [0.5, 1.0]


async def test_tiny_threshold_never_spins(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        ticks = await record_ticks(keepalive_interval_ms(1), 0.0105)
    assert len(ticks) == 11  # every 1 ms, not a zero-length loop


async def test_jitter_delays_each_upsert_within_the_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        ticks = await record_ticks(500, 2.2, jitter_ms=128)
    assert len(ticks) == 5
    for i, tick in enumerate(ticks):
        assert i * 0.5 <= tick < i * 0.5 + 0.128


async def test_missed_ticks_are_skipped(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    ticks: list[float] = []

    async def slow_first() -> None:
        ticks.append(round(trio.current_time() - start, 6))
        if len(ticks) == 1:
            await trio.sleep(1.2)

    with trio.fail_after(60), trio.move_on_after(2.2):
        await keepalive(slow_first, 500)
    assert ticks == [0.0, 1.5, 2.0]  # 0.5 and 1.0 were missed, not caught up


async def test_failure_is_raised_with_its_cause(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("store down")

    with trio.fail_after(60), pytest.raises(KeepaliveError) as info:
        await keepalive(failing, 100)
    assert isinstance(info.value.__cause__, OSError)
    assert calls == 3
    assert trio.current_time() == pytest.approx(0.2)


async def test_only_requests_pinged_within_the_threshold_are_listed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    threshold = 400
    store = DictStore()
    writer = RequestWriter(store, virtual_ms)  # type: ignore[arg-type]
    interval = keepalive_interval_ms(threshold)
    await trio.sleep(10)  # keep virtual timestamps well above the threshold
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            scope_a = trio.CancelScope()

            async def ping(key: tuple[bytes, bytes], scope: trio.CancelScope) -> None:
                with scope:
                    await keepalive(lambda: writer.upsert(ACTOR, *key), interval)

            nursery.start_soon(ping, A, scope_a)
            nursery.start_soon(ping, B, trio.CancelScope())
            await trio.sleep(1.01)
            assert sorted(await eligible(store, threshold)) == sorted([A, B])
            scope_a.cancel()  # A's keepalive stops (its gateway died): it ages out
            await trio.sleep(threshold / 1000 + 0.01)
            assert await eligible(store, threshold) == [B]
            # the expired entry is ignored, not deleted (§5.4)
            assert hs.last_ping_key(*A) in store.data
            nursery.cancel_scope.cancel()
    await writer.delete(ACTOR, *B)
    await writer.delete(ACTOR, *A)
    assert store.data == {}


async def test_writer_coalesces_concurrent_operations(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = DictStore()
    writer = RequestWriter(store, virtual_ms)  # type: ignore[arg-type]
    keys = [(b"\x00\x00\x00\x01", i.to_bytes(4, "big")) for i in range(200)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(writer.upsert, ACTOR, *key)
        assert writer.operations == 200
        assert writer.commits <= 2
        assert len(await eligible(store, 1_000)) == 200
        store.fail = True
        with pytest.raises(KeepaliveError) as info:
            await writer.upsert(ACTOR, *keys[0])
        assert isinstance(info.value.__cause__, StoreBackendError)


async def test_writer_applies_several_operations_of_one_request_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An upsert and a delete of the same request in one batch (a cancelled keepalive upsert
    still queued when the socket's delete joins) leave nothing behind; a delete then an upsert
    leave exactly the pointer and one index entry. (Batches are driven directly: which of two
    concurrent callers joins first is up to Trio's scheduler.)"""
    store = DictStore()
    writer = RequestWriter(store, virtual_ms)  # type: ignore[arg-type]
    upsert, delete = _Op(True, ACTOR, *A), _Op(False, ACTOR, *A)
    with trio.fail_after(60):
        await writer.upsert(ACTOR, *A)  # the writer knows the request from now on
        await trio.sleep(1)
        await writer._commit([upsert, delete])
        assert store.data == {}
        await writer.upsert(ACTOR, *A)
        await trio.sleep(1)
        await writer._commit([delete, upsert])
        assert len(store.data) == 2  # the pointer and one index entry
        assert await eligible(store, 10_000) == [A]
        await writer._commit([upsert, upsert, delete])
        assert store.data == {}
