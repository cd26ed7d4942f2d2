"""The store contract (``rivetpy.engine.store.api``), run on every available backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from rivetpy.engine.store import (
    MAX_KEY_SIZE,
    MAX_TRANSACTION_SIZE,
    MAX_VALUE_SIZE,
    ConflictError,
    InvertedRangeError,
    KeyOutsideLegalRangeError,
    KeyTooLargeError,
    KeyValue,
    RangePages,
    ReadOnlyTransactionError,
    ReadTransaction,
    Store,
    StoreClosedError,
    Transaction,
    TransactionTooLargeError,
    ValueTooLargeError,
)
from rivetpy.engine.store.sqlite import SqliteStore
from tests.engine.backends import fresh_prefix

TIMEOUT = 20


async def put(store: Store, items: dict[bytes, bytes]) -> None:
    async def body(tr: Transaction) -> None:
        for k, v in items.items():
            tr.set(k, v)

    await store.run(body)


async def scan(store: Store, begin: bytes, end: bytes, **kw: object) -> list[KeyValue]:
    async def body(tr: ReadTransaction) -> list[KeyValue]:
        return await tr.get_range(begin, end, **kw)  # type: ignore[arg-type]

    return await store.read(body)


async def test_set_get_clear(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        a, b = prefix + b"a", prefix + b"b"
        await put(store, {a: b"1", b: b""})

        async def read(tr: ReadTransaction) -> tuple[bytes | None, bytes | None, bytes | None]:
            return await tr.get(a), await tr.get(b), await tr.get(prefix + b"zz")

        assert await store.read(read) == (b"1", b"", None)

        async def clear(tr: Transaction) -> None:
            tr.clear(a)
            tr.clear(prefix + b"never-set")

        await store.run(clear)
        assert await store.read(read) == (None, b"", None)


async def test_ranges_limit_reverse_and_order(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        raw = [b"", b"\x00", b"\x00\x00", b"\x01", b"a", b"a\x00", b"ab", b"b", b"\xfe\xff"]
        await put(store, {prefix + k: k for k in raw})
        end = prefix + b"\xff"
        rows = await scan(store, prefix, end)
        assert [r.value for r in rows] == sorted(raw)
        assert [r.value for r in await scan(store, prefix, end, limit=3)] == sorted(raw)[:3]
        rev = await scan(store, prefix, end, limit=4, reverse=True)
        assert [r.value for r in rev] == sorted(raw, reverse=True)[:4]
        # half-open: begin included, end excluded
        assert [r.value for r in await scan(store, prefix + b"a", prefix + b"b")] == [
            b"a",
            b"a\x00",
            b"ab",
        ]
        assert await scan(store, prefix + b"b", prefix + b"a") == []  # inverted reads nothing
        assert await scan(store, prefix + b"a", prefix + b"a") == []


async def test_range_pages_stream_everything_in_order(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        items = {prefix + i.to_bytes(2, "big"): b"v" for i in range(300)}
        await put(store, items)

        async def pages(tr: ReadTransaction) -> tuple[list[bytes], list[bytes], int]:
            fwd = [kv.key async for page in RangePages(tr, prefix, prefix + b"\xff") for kv in page]
            rev_pages = [p async for p in RangePages(tr, prefix, prefix + b"\xff", reverse=True)]
            return fwd, [kv.key for p in rev_pages for kv in p], len(rev_pages)

        fwd, rev, n_pages = await store.read(pages)
        assert fwd == sorted(items)
        assert rev == sorted(items, reverse=True)
        assert 1 < n_pages < 10  # pages grow


async def test_get_ranges_reads_several_ranges(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        await put(store, {prefix + b"a1": b"1", prefix + b"a2": b"2", prefix + b"b1": b"3"})

        async def body(tr: ReadTransaction) -> list[list[KeyValue]]:
            return await tr.get_ranges(
                [
                    (prefix + b"a", prefix + b"b"),
                    (prefix + b"c", prefix + b"d"),
                    (prefix + b"b", prefix + b"a"),
                ]
            )

        a, c, inverted = await store.read(body)
        assert [kv.value for kv in a] == [b"1", b"2"] and c == [] and inverted == []


async def test_clear_range_and_read_your_writes(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        await put(store, {prefix + bytes([i]): b"x" for i in range(10)})

        async def body(tr: Transaction) -> tuple[list[bytes], bytes | None]:
            tr.clear_range(prefix + b"\x02", prefix + b"\x08")
            tr.set(prefix + b"\x05", b"new")
            rows = await tr.get_range(prefix, prefix + b"\xff")
            return [kv.key[len(prefix) :] for kv in rows], await tr.get(prefix + b"\x05")

        keys, five = await store.run(body)
        assert keys == [b"\x00", b"\x01", b"\x05", b"\x08", b"\x09"] and five == b"new"
        committed = await scan(store, prefix, prefix + b"\xff")
        assert [kv.key[len(prefix) :] for kv in committed] == keys


async def test_failed_body_writes_nothing(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):

        async def body(tr: Transaction) -> None:
            tr.set(prefix + b"a", b"1")
            await tr.get(prefix + b"a")  # flushed to the backend, still not committed
            raise KeyError("boom")

        with pytest.raises(KeyError):
            await store.run(body)
        assert await scan(store, prefix, prefix + b"\xff") == []


async def test_retryable_error_reruns_body_with_fresh_state(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        attempts: list[int] = []

        async def body(tr: Transaction) -> int:
            attempts.append(1)
            seen = await tr.get(prefix + b"n")
            tr.set(prefix + b"n", b"%d" % (int(seen or b"0") + 1))
            tr.set(prefix + b"attempt%d" % len(attempts), b"x")
            if len(attempts) < 3:
                raise ConflictError("injected")
            return len(attempts)

        assert await store.run(body) == 3
        rows = await scan(store, prefix, prefix + b"\xff")
        assert {kv.key[len(prefix) :]: kv.value for kv in rows} == {b"n": b"1", b"attempt3": b"x"}


async def test_concurrent_increments_never_lose_updates(store: Store, prefix: bytes) -> None:
    """Serializable read-modify-write under contention: conflicts are retried (FDB) or
    cannot happen (sqlite serializes writers); either way no update is lost."""
    with trio.fail_after(TIMEOUT * 3):
        key = prefix + b"counter"

        async def incr(tr: Transaction) -> None:
            n = int(await tr.get(key) or b"0")
            await trio.sleep(0)  # let the others interleave
            tr.set(key, b"%d" % (n + 1))

        async def worker() -> None:
            for _ in range(10):
                await store.run(incr)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(worker)

        async def read(tr: ReadTransaction) -> bytes | None:
            return await tr.get(key)

        assert await store.read(read) == b"50"


async def test_snapshot_isolation_of_reads(store: Store, prefix: bytes) -> None:
    """A read transaction keeps its snapshot while another transaction commits."""
    with trio.fail_after(TIMEOUT):
        await put(store, {prefix + b"a": b"old"})
        first_read = trio.Event()
        committed = trio.Event()

        async def reader(tr: ReadTransaction) -> tuple[bytes | None, bytes | None, int]:
            before = await tr.get(prefix + b"a")
            first_read.set()
            await committed.wait()
            after = await tr.get(prefix + b"a")
            rows = await tr.get_range(prefix, prefix + b"\xff")
            return before, after, len(rows)

        results: list[tuple[bytes | None, bytes | None, int]] = []

        async def run_reader() -> None:
            results.append(await store.read(reader))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_reader)
            await first_read.wait()
            await put(store, {prefix + b"a": b"new", prefix + b"b": b"added"})
            committed.set()
        assert results == [(b"old", b"old", 1)]
        assert len(await scan(store, prefix, prefix + b"\xff")) == 2


async def test_read_only_transaction_rejects_writes(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):

        async def body(tr: ReadTransaction) -> None:
            tr.set(prefix + b"a", b"1")  # type: ignore[attr-defined]

        with pytest.raises(ReadOnlyTransactionError):
            await store.read(body)


async def test_limits(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT * 3):

        async def expect(exc: type[Exception], fn: object) -> None:
            async def body(tr: Transaction) -> None:
                await fn(tr)  # type: ignore[operator]

            with pytest.raises(exc):
                await store.run(body)

        big_key = prefix + b"k" * (MAX_KEY_SIZE - len(prefix))
        assert len(big_key) == MAX_KEY_SIZE

        async def key_at_limit(tr: Transaction) -> None:
            tr.set(big_key, b"v" * MAX_VALUE_SIZE)
            assert await tr.get(big_key) == b"v" * MAX_VALUE_SIZE

        await store.run(key_at_limit)

        async def key_too_large(tr: Transaction) -> None:
            tr.set(big_key + b"k", b"v")

        async def get_key_too_large(tr: Transaction) -> None:
            await tr.get(big_key + b"k")

        async def value_too_large(tr: Transaction) -> None:
            tr.set(prefix + b"v", b"v" * (MAX_VALUE_SIZE + 1))

        async def system_key(tr: Transaction) -> None:
            tr.set(b"\xff/x", b"v")

        async def inverted(tr: Transaction) -> None:
            tr.clear_range(prefix + b"b", prefix + b"a")

        async def too_large_tx(tr: Transaction) -> None:
            value = b"v" * MAX_VALUE_SIZE
            for i in range(MAX_TRANSACTION_SIZE // MAX_VALUE_SIZE + 1):
                tr.set(prefix + b"big%04d" % i, value)

        await expect(KeyTooLargeError, key_too_large)
        await expect(KeyTooLargeError, get_key_too_large)
        await expect(ValueTooLargeError, value_too_large)
        await expect(KeyOutsideLegalRangeError, system_key)
        await expect(InvertedRangeError, inverted)
        await expect(TransactionTooLargeError, too_large_tx)
        rows = await scan(store, prefix, prefix + b"\xff")
        assert [kv.key for kv in rows] == [big_key]  # the failed transactions wrote nothing


async def test_estimated_range_size_counts_stored_bytes(store: Store, prefix: bytes) -> None:
    with trio.fail_after(TIMEOUT):
        await put(store, {prefix + b"a": b"x" * 1000, prefix + b"b": b"y" * 2000})

        async def body(tr: ReadTransaction) -> int:
            return await tr.get_estimated_range_size_bytes(prefix, prefix + b"\xff")

        size = await store.read(body)
        # exact on sqlite; FoundationDB samples (small ranges may estimate 0)
        assert size == 3000 + 2 * (len(prefix) + 1) or store.backend == "foundationdb"


async def test_closed_store_refuses_transactions(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        prefix = fresh_prefix()
        await store.aclose()
        await store.aclose()  # idempotent

        async def body(tr: ReadTransaction) -> None:
            await tr.get(prefix)

        with pytest.raises(StoreClosedError):
            await store.read(body)


async def test_sqlite_size_estimate_uses_the_byte_sample_for_large_ranges(tmp_path: Path) -> None:
    """Beyond ``exact_rows`` rows the estimate comes from the byte sample: unbiased, within a
    few percent here, at a cost independent of the number of rows."""
    with trio.fail_after(TIMEOUT):
        store = await SqliteStore.open(
            tmp_path / "s.sqlite3", synchronous="OFF", exact_rows=10, sample_unit=1000
        )
        try:
            await put(store, {b"k%05d" % i: b"v" * 94 for i in range(4000)})  # 100 B pairs

            async def estimate(tr: ReadTransaction) -> tuple[int, int, int]:
                return (
                    await tr.get_estimated_range_size_bytes(b"k", b"l"),
                    await tr.get_estimated_range_size_bytes(b"k00000", b"k00005"),
                    await tr.get_estimated_range_size_bytes(b"k", b"k"),
                )

            large, small, empty = await store.read(estimate)
            assert abs(large - 400_000) < 400_000 * 0.25
            assert (small, empty) == (500, 0)  # exact below exact_rows

            async def rewrite(tr: Transaction) -> None:  # overwrite and clear keep it consistent
                tr.clear_range(b"k02000", b"l")
                for i in range(1000):
                    tr.set(b"k%05d" % i, b"v" * 994)  # 1000 B pairs: always sampled

            await store.run(rewrite)
            large, _, _ = await store.read(estimate)
            assert abs(large - (1_000_000 + 100_000)) < 100_000 * 0.5
        finally:
            await store.aclose()
