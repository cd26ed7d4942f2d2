"""The KV layer of the actor SQLite VFS: key layout, preload lookups, batching, file operations.

File operations run the VFS directly (no SQLite) in a Trio worker thread, as SQLite would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import apsw
import pytest
import trio

from rivetpy.actor import keys
from rivetpy.actor.sqlite_kv import (
    CHUNK_SIZE,
    NOT_PRELOADED,
    TAG_JOURNAL,
    TAG_MAIN,
    DatabaseKvError,
    DatabaseStats,
    MemoryPageKv,
    PageStore,
    Preload,
    chunk_key,
    encode_size,
    meta_key,
    put_batches,
)
from rivetpy.actor.sqlite_vfs import KvFile, KvVfs
from rivetpy.engine.kv.limits import KvLimitError, validate_put

TIMEOUT = 10
T = TypeVar("T")
_OPEN = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_MAIN_DB


class RecordingKv(MemoryPageKv):
    """Records every get's keys and every put's entries."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        super().__init__(data)
        self.gets: list[list[bytes]] = []
        self.puts: list[list[tuple[bytes, bytes]]] = []
        self.fail_puts_from: int | None = None

    async def get_batch(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self.gets.append(list(keys))
        return await super().get_batch(keys)

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        if self.fail_puts_from is not None and len(self.puts) >= self.fail_puts_from:
            raise OSError("KV unreachable")
        self.puts.append(list(entries))
        await super().put(entries)


def stored_file(tag: int, content: bytes) -> dict[bytes, bytes]:
    """KV entries of a file holding ``content`` in this module's format."""
    data = {meta_key(tag): encode_size(len(content))}
    for index in range(0, len(content), CHUNK_SIZE):
        chunk = content[index : index + CHUNK_SIZE]
        data[chunk_key(tag, index // CHUNK_SIZE)] = chunk.ljust(CHUNK_SIZE, b"\0")
    return data


def pattern(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size))


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def make_vfs(
    kv: MemoryPageKv, preloaded: Sequence[tuple[bytes, bytes]] | None = None, cache: int = 0
) -> KvVfs:
    return KvVfs(PageStore(kv, preloaded, DatabaseStats(), label="t"), "db", cache_pages=cache)


def open_file(vfs: KvVfs, name: str = "db") -> KvFile:
    file = vfs.xOpen(name, [_OPEN, 0])
    assert isinstance(file, KvFile)
    return file


def test_key_layout() -> None:
    assert meta_key(TAG_JOURNAL) == b"\x08\x01\x00\x01"
    assert chunk_key(TAG_MAIN, 258) == b"\x08\x01\x01\x00\x00\x00\x01\x02"
    assert meta_key(TAG_JOURNAL).startswith(keys.SQLITE_META)
    assert chunk_key(TAG_MAIN, 0).startswith(keys.SQLITE_PAGES)
    # every file's size sorts before every page, so a preload holding any page covers them
    assert meta_key(2) < chunk_key(TAG_MAIN, 0)


def test_put_batches_respect_engine_limits() -> None:
    pages = [(chunk_key(0, i), bytes([i % 256]) * CHUNK_SIZE) for i in range(300)]
    batches = put_batches(pages)
    assert [len(b) for b in batches] == [128, 128, 44]
    assert [e for b in batches for e in b] == pages
    big = [(b"k%d" % i, b"x" * 131_072) for i in range(20)]
    big_batches = put_batches(big)
    assert len(big_batches) == 3  # 7 values of 128 KiB fit 999,424 bytes, 8 do not
    for batch in [*batches, *big_batches]:
        validate_put([k for k, _ in batch], [v for _, v in batch])
    with pytest.raises(ValueError, match="cannot be stored"):
        put_batches([(b"k", b"")])


def test_preload_three_way_lookup() -> None:
    preload = Preload([(b"\x08\x01\x00\x00", b"m"), (b"\x08\x01\x01\x00\x05", b"p")])
    assert preload.lookup(b"\x08\x01\x00\x00") == b"m"
    # before the last preloaded key and not preloaded: known absent
    assert preload.lookup(b"\x08\x01\x00\x01") is None
    assert preload.lookup(b"\x08\x01\x01\x00\x04") is None
    # after it: the partial preload says nothing
    assert preload.lookup(b"\x08\x01\x01\x00\x06") is NOT_PRELOADED
    preload.invalidate(b"\x08\x01\x00\x00")
    preload.invalidate(b"\x08\x01\x00\x01")
    assert preload.lookup(b"\x08\x01\x00\x00") is NOT_PRELOADED
    assert preload.lookup(b"\x08\x01\x00\x01") is NOT_PRELOADED
    assert preload.fresh_entries() == [(b"\x08\x01\x01\x00\x05", b"p")]
    # an empty preload: the prefix was scanned and holds nothing
    assert Preload([]).lookup(b"\x08\x01\x01\x00\xff\xff") is None


async def test_store_answers_hits_locally_and_batches_misses() -> None:
    with trio.fail_after(TIMEOUT):
        kv = RecordingKv({b"\x08\x01\x09": b"late", b"\x08\x01\x05": b"five"})
        stats = DatabaseStats()
        store = PageStore(
            kv, [(b"\x08\x01\x02", b"two"), (b"\x08\x01\x05", b"five")], stats, label="t"
        )
        wanted = [b"\x08\x01\x09", b"\x08\x01\x02", b"\x08\x01\x03", b"\x08\x01\x0a"]
        assert await in_thread(lambda: store.get_many(wanted)) == [b"late", b"two", None, None]
        assert kv.gets == [[b"\x08\x01\x09", b"\x08\x01\x0a"]]
        assert (stats.preload_hits, stats.preload_known_absent, stats.kv_keys_read) == (1, 1, 2)
        # a write makes the preloaded value stale: the key is read from KV again
        await in_thread(lambda: store.put([(b"\x08\x01\x02", b"new")]))
        assert await in_thread(lambda: store.get_many([b"\x08\x01\x02"])) == [b"new"]
        assert kv.gets[-1] == [b"\x08\x01\x02"]
        assert store.clear_preload() == [(b"\x08\x01\x05", b"five")]
        assert await in_thread(lambda: store.get_many([b"\x08\x01\x03"])) == [None]
        assert kv.gets[-1] == [b"\x08\x01\x03"]
        many = [b"\x08\x01\x10" + i.to_bytes(2, "big") for i in range(300)]
        await in_thread(lambda: store.get_many(many))
        assert [len(g) for g in kv.gets[-3:]] == [128, 128, 44]


async def test_multi_chunk_read_of_misses_is_one_kv_get() -> None:
    with trio.fail_after(TIMEOUT):
        content = pattern(10 * CHUNK_SIZE)
        kv = RecordingKv(stored_file(TAG_MAIN, content))
        # the engine's partial preload: the leading entries (size, chunks 0 and 1)
        leading = kv.entries()[:3]
        vfs = make_vfs(kv, leading)
        try:
            file = await in_thread(lambda: open_file(vfs))
            kv.gets.clear()
            data = await in_thread(lambda: file.xRead(4 * CHUNK_SIZE + 100, CHUNK_SIZE + 50))
            assert data == content[CHUNK_SIZE + 50 : 5 * CHUNK_SIZE + 150]
            assert kv.gets == [[chunk_key(TAG_MAIN, i) for i in (2, 3, 4, 5)]]
            assert vfs.store.stats.preload_hits == 2  # the size and chunk 1
        finally:
            vfs.close()


async def test_readahead_fetches_following_chunks_in_the_same_get() -> None:
    with trio.fail_after(TIMEOUT):
        content = pattern(6 * CHUNK_SIZE)
        kv = RecordingKv(stored_file(TAG_MAIN, content))
        store = PageStore(kv, None, DatabaseStats(), label="t")
        vfs = KvVfs(store, "db", cache_pages=8, readahead_pages=3)
        try:
            file = await in_thread(lambda: open_file(vfs))
            kv.gets.clear()
            assert (
                await in_thread(lambda: file.xRead(CHUNK_SIZE, 2 * CHUNK_SIZE))
                == content[2 * CHUNK_SIZE : 3 * CHUNK_SIZE]
            )
            assert kv.gets == [[chunk_key(TAG_MAIN, i) for i in (2, 3, 4, 5)]]
            tail = await in_thread(lambda: file.xRead(3 * CHUNK_SIZE, 3 * CHUNK_SIZE))
            assert tail == content[3 * CHUNK_SIZE :]
            assert len(kv.gets) == 1  # served by the cache; nothing past the file's end asked
        finally:
            vfs.close()


async def test_open_with_full_preload_reads_nothing_from_kv() -> None:
    with trio.fail_after(TIMEOUT):
        kv = RecordingKv(stored_file(TAG_MAIN, pattern(3 * CHUNK_SIZE)))
        vfs = make_vfs(kv, kv.entries())
        try:
            file = await in_thread(lambda: open_file(vfs))
            assert await in_thread(lambda: vfs.xAccess("db-journal", 0)) is False
            assert (
                await in_thread(lambda: file.xRead(CHUNK_SIZE, 2 * CHUNK_SIZE))
                == pattern(3 * CHUNK_SIZE)[2 * CHUNK_SIZE :]
            )
            assert kv.gets == []
        finally:
            vfs.close()


async def test_writes_are_buffered_until_sync_and_split_within_limits() -> None:
    with trio.fail_after(TIMEOUT):
        kv = RecordingKv()
        vfs = make_vfs(kv, [], cache=8)
        try:
            file = await in_thread(lambda: open_file(vfs))
            content = pattern(300 * CHUNK_SIZE + 10)
            await in_thread(lambda: file.xWrite(content, 0))
            assert kv.puts == []
            assert await in_thread(lambda: file.xRead(20, 300 * CHUNK_SIZE)) == content[-10:]
            await in_thread(lambda: file.xSync(0))
            assert [len(p) for p in kv.puts] == [128, 128, 46]  # limits enforced by the fake
            # chunk 0 and the size go last: the file never looks longer than what is stored
            assert [k for k, _ in kv.puts[-1][-2:]] == [chunk_key(TAG_MAIN, 0), meta_key(TAG_MAIN)]
            assert kv.data == stored_file(TAG_MAIN, content)
            assert kv.gets == []  # a new file: nothing to read
        finally:
            vfs.close()


async def test_partial_chunk_writes_read_modify_write() -> None:
    with trio.fail_after(TIMEOUT):
        content = pattern(3 * CHUNK_SIZE)
        kv = RecordingKv(stored_file(TAG_MAIN, content))
        vfs = make_vfs(kv)
        try:
            file = await in_thread(lambda: open_file(vfs))
            await in_thread(lambda: file.xWrite(b"\xff" * 100, CHUNK_SIZE - 50))
            await in_thread(lambda: file.xSync(0))
            expected = bytearray(content)
            expected[CHUNK_SIZE - 50 : CHUNK_SIZE + 50] = b"\xff" * 100
            assert kv.data == stored_file(TAG_MAIN, bytes(expected))
            assert kv.gets[1:] == [[chunk_key(TAG_MAIN, 0), chunk_key(TAG_MAIN, 1)]]
        finally:
            vfs.close()


async def test_truncate_and_delete_remove_keys() -> None:
    with trio.fail_after(TIMEOUT):
        content = pattern(5 * CHUNK_SIZE)
        kv = RecordingKv(stored_file(TAG_JOURNAL, content))
        vfs = make_vfs(kv)
        try:
            file = await in_thread(lambda: open_file(vfs, "db-journal"))
            await in_thread(lambda: file.xTruncate(2 * CHUNK_SIZE + 100))
            await in_thread(lambda: file.xSync(0))
            assert kv.data == stored_file(TAG_JOURNAL, content[: 2 * CHUNK_SIZE + 100])
            # growing again reads zeros past the truncation, not the old bytes
            await in_thread(lambda: file.xTruncate(4 * CHUNK_SIZE))
            grown = await in_thread(lambda: file.xRead(4 * CHUNK_SIZE, 0))
            assert grown == content[: 2 * CHUNK_SIZE + 100].ljust(4 * CHUNK_SIZE, b"\0")
            await in_thread(file.xClose)
            assert kv.data[meta_key(TAG_JOURNAL)] == encode_size(4 * CHUNK_SIZE)
            await in_thread(lambda: vfs.xDelete("db-journal", False))
            assert kv.data == {}
            assert await in_thread(lambda: vfs.xAccess("db-journal", 0)) is False
        finally:
            vfs.close()


async def test_recreated_file_ignores_leftover_chunks() -> None:
    with trio.fail_after(TIMEOUT):
        # a delete interrupted after the size went: chunks remain but the file does not exist
        leftovers = stored_file(TAG_JOURNAL, b"\x77" * (3 * CHUNK_SIZE))
        del leftovers[meta_key(TAG_JOURNAL)]
        kv = RecordingKv(leftovers)
        vfs = make_vfs(kv)
        try:
            assert await in_thread(lambda: vfs.xAccess("db-journal", 0)) is False
            file = await in_thread(lambda: open_file(vfs, "db-journal"))
            await in_thread(lambda: file.xWrite(b"\x01" * 10, 5))
            await in_thread(lambda: file.xTruncate(2 * CHUNK_SIZE))
            assert await in_thread(lambda: file.xRead(2 * CHUNK_SIZE, 0)) == (
                bytes(5) + b"\x01" * 10
            ).ljust(2 * CHUNK_SIZE, b"\0")
            await in_thread(lambda: file.xSync(0))
            assert kv.data[chunk_key(TAG_JOURNAL, 1)] == bytes(CHUNK_SIZE)  # leftover overwritten
            assert kv.gets == [[meta_key(0), meta_key(1), meta_key(2)]]  # no chunk read
        finally:
            vfs.close()


async def test_failed_put_surfaces_and_keeps_the_size_unwritten() -> None:
    with trio.fail_after(TIMEOUT):
        kv = RecordingKv()
        kv.fail_puts_from = 1
        vfs = make_vfs(kv, [])
        try:
            file = await in_thread(lambda: open_file(vfs))
            await in_thread(lambda: file.xWrite(pattern(200 * CHUNK_SIZE), 0))
            with pytest.raises(DatabaseKvError) as caught:
                await in_thread(lambda: file.xSync(0))
            assert isinstance(caught.value.__cause__, OSError)
            assert meta_key(TAG_MAIN) not in kv.data  # the file does not exist in KV
            kv.fail_puts_from = None
            await in_thread(lambda: file.xSync(0))
            assert kv.data == stored_file(TAG_MAIN, pattern(200 * CHUNK_SIZE))
        finally:
            vfs.close()


async def test_memory_page_kv_enforces_engine_limits() -> None:
    with trio.fail_after(TIMEOUT):
        kv = MemoryPageKv()
        with pytest.raises(KvLimitError):
            await kv.put([(b"k", b"")])
        with pytest.raises(KvLimitError):
            await kv.put([(b"k%d" % i, b"v") for i in range(129)])
        with pytest.raises(KvLimitError):
            await kv.get_batch([b"k%d" % i for i in range(129)])
        assert kv.data == {}
