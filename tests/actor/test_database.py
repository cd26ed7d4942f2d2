"""The actor SQLite database end to end: apsw on the KV VFS, driven from Trio, with preload."""

from __future__ import annotations

from collections.abc import Sequence

import apsw
import pytest
import trio

from rivetpy.actor import keys
from rivetpy.actor.database import (
    Database,
    DatabaseClosedError,
    DatabaseKvError,
    open_database,
)
from rivetpy.actor.sqlite_kv import CHUNK_SIZE, TAG_JOURNAL, TAG_MAIN, MemoryPageKv, meta_key

TIMEOUT = 30
#: the engine's default SQLite preload budget and the size it counts per entry (kv-preload.md §4)
PRELOAD_BUDGET = 786_432
VERSION_LEN = 5


class FakeKv(MemoryPageKv):
    """The engine's KV: limits enforced, requests recorded, failures injected on demand.

    ``fail`` decides per request (method, keys) whether it raises; once ``crashed`` every
    request raises (the process lost the KV), as after a crash.
    """

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        super().__init__(data)
        self.read_keys: list[bytes] = []
        self.get_calls = 0
        self.fail: dict[str, int] = {}  # method -> fail the n-th next call (1 = next)
        self.crash_on_main_put: int | None = None
        self.crashed = False
        self.main_puts = 0

    def _check(self, method: str) -> None:
        if self.crashed:
            raise ConnectionError("KV gone")
        left = self.fail.get(method)
        if left is not None:
            if left <= 1:
                del self.fail[method]
                raise ConnectionError(f"injected {method} failure")
            self.fail[method] = left - 1

    async def get_batch(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self._check("get_batch")
        self.get_calls += 1
        self.read_keys.extend(keys)
        return await super().get_batch(keys)

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        self._check("put")
        if any(k.startswith(keys.SQLITE_PAGES + bytes([TAG_MAIN])) for k, _ in entries):
            self.main_puts += 1
            if self.main_puts == self.crash_on_main_put:
                self.crashed = True
                raise ConnectionError("KV gone mid-flush")
        await super().put(entries)

    async def delete(self, keys: Sequence[bytes]) -> None:
        self._check("delete")
        await super().delete(keys)


def engine_preload(kv: MemoryPageKv, budget: int = PRELOAD_BUDGET) -> list[tuple[bytes, bytes]]:
    """What the engine sends for the partial prefix SQLITE: the leading entries that fit."""
    preloaded: list[tuple[bytes, bytes]] = []
    used = 0
    for key, value in kv.entries(keys.SQLITE):
        size = len(key) + len(value) + VERSION_LEN + 8
        if used + size > budget:
            break
        preloaded.append((key, value))
        used += size
    return preloaded


async def fill(db: Database, rows: int, size: int = 1000) -> None:
    await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    await db.executemany(
        "INSERT INTO t(id, v) VALUES (?, ?)",
        ((i, bytes([i % 256]) * size) for i in range(rows)),
    )


async def summary(db: Database) -> list[tuple[object, ...]]:
    return await db.execute("SELECT count(*), sum(length(v)), sum(unicode(v) * id) FROM t")


async def test_persistence_across_reopen() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        vfs_before = set(apsw.vfs_names())
        db = await open_database(kv, preloaded=None)
        assert len(apsw.vfs_names()) == len(vfs_before) + 1
        await db.executescript("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT); PRAGMA user_version=3")
        await db.execute("INSERT INTO kv VALUES (?, ?)", ("a", "1"))
        await db.execute("INSERT INTO kv VALUES (:k, :v)", {"k": "b", "v": "2"})
        assert await db.execute("SELECT * FROM kv ORDER BY k") == [("a", "1"), ("b", "2")]
        assert await db.execute("PRAGMA page_size") == [(4096,)]
        assert await db.execute("PRAGMA journal_mode") == [("delete",)]
        await db.close()
        await db.close()  # idempotent
        with pytest.raises(DatabaseClosedError):
            await db.execute("SELECT 1")
        assert all(v for v in kv.data.values())  # no empty values stored
        assert meta_key(TAG_JOURNAL) not in kv.data  # no journal left behind
        assert set(apsw.vfs_names()) == vfs_before  # the VFS is unregistered

        for preloaded in (None, kv.entries()):
            db = await open_database(kv, preloaded=preloaded)
            try:
                assert await db.execute("SELECT * FROM kv ORDER BY k") == [("a", "1"), ("b", "2")]
                assert await db.execute("PRAGMA user_version") == [(3,)]
                assert await db.execute("PRAGMA integrity_check") == [("ok",)]
            finally:
                await db.close()


async def test_large_database_with_partial_preload_reads_only_pages_past_it() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=[])
        await fill(db, 2000)  # ~2 MB
        expected = await summary(db)
        await db.close()
        entries = kv.entries()
        assert len(entries) > 500
        preloaded = engine_preload(kv)
        assert 180 <= len(preloaded) <= 195
        last = preloaded[-1][0]

        kv.get_calls, kv.read_keys = 0, []
        db = await open_database(kv, preloaded=preloaded)
        try:
            assert kv.get_calls == 0  # size, journal check and schema: all preloaded
            assert await summary(db) == expected
            assert kv.read_keys, "pages past the preload come from KV"
            assert all(key > last for key in kv.read_keys)
            assert len(kv.read_keys) == len(set(kv.read_keys))  # each page read once
            assert len(kv.read_keys) <= len(entries) - len(preloaded)
            assert db.stats.kv_keys_read == len(kv.read_keys)
            assert db.stats.preload_hits > 0
            # later queries are right too (pages evicted from the caches are read again)
            assert await db.execute("SELECT length(v) FROM t WHERE id = 1999") == [(1000,)]
            assert await db.execute("SELECT count(*) FROM t WHERE id < 7") == [(7,)]
        finally:
            await db.close()


async def test_full_preload_opens_and_queries_without_kv_reads() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=None)
        await fill(db, 100)
        expected = await summary(db)
        await db.close()

        kv.get_calls = 0
        db = await open_database(kv, preloaded=kv.entries())
        try:
            assert await summary(db) == expected
            assert kv.get_calls == 0
            assert db.stats.kv_get_calls == 0
        finally:
            await db.close()

        # the same without preload reads the size and the pages from KV
        kv.get_calls = 0
        db = await open_database(kv, preloaded=None)
        try:
            assert await summary(db) == expected
            assert kv.get_calls > 0
        finally:
            await db.close()


async def test_empty_preload_is_a_new_database_without_kv_reads() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=[])
        try:
            await db.execute("CREATE TABLE t(x)")
            await db.execute("INSERT INTO t VALUES (1)")
            assert await db.execute("SELECT x FROM t") == [(1,)]
            assert kv.get_calls == 0
        finally:
            await db.close()
        db = await open_database(kv, preloaded=kv.entries())
        try:
            assert await db.execute("SELECT x FROM t") == [(1,)]
        finally:
            await db.close()


async def test_preload_is_cleared_before_migrations() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=None)
        await fill(db, 50)
        await db.close()
        preloaded = kv.entries()  # a snapshot: every page of the table, as it is now
        seen: list[object] = []

        async def migrate(db: Database) -> None:
            hits = db.stats.preload_hits
            await db.execute("UPDATE t SET v = zeroblob(500) WHERE id % 2 = 0")

            def reread(conn: apsw.Connection) -> list[tuple[object, ...]]:
                conn.release_memory()  # drop SQLite's own page cache: the VFS must answer
                return list(conn.execute("SELECT sum(length(v)) FROM t"))

            seen.extend(await db.run(reread))
            seen.append(db.stats.preload_hits - hits)

        # no VFS page cache: a stale preloaded page would be what SQLite reads back
        db = await open_database(kv, preloaded=preloaded, migrate=migrate, cache_pages=0)
        try:
            assert seen == [(25 * 500 + 25 * 1000,), 0]
            assert db.stats.kv_keys_read > 0  # the migration's reads went to KV
            assert await db.execute("PRAGMA integrity_check") == [("ok",)]
        finally:
            await db.close()


async def test_rollback_leaves_data_unchanged() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=None)
        try:
            await fill(db, 200)
            before = await summary(db)
            await db.execute("BEGIN")
            await db.execute("DELETE FROM t WHERE id < 150")
            await db.execute("INSERT INTO t(id, v) VALUES (5000, zeroblob(9000))")
            await db.execute("ROLLBACK")
            assert await summary(db) == before

            def failing(conn: apsw.Connection) -> None:
                conn.execute("UPDATE t SET v = x'00'")
                raise ValueError("abort")

            with pytest.raises(ValueError, match="abort"):
                await db.transaction(failing)
            assert await summary(db) == before
            assert await db.transaction(lambda c: c.execute("SELECT 7").fetchall()) == [(7,)]
        finally:
            await db.close()
        db = await open_database(kv, preloaded=kv.entries())
        try:
            assert await summary(db) == before
        finally:
            await db.close()


async def test_commit_cut_mid_flush_is_rolled_back_on_reopen() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=None)
        await fill(db, 600)
        before = await summary(db)
        await db.close()

        # the update rewrites > 128 pages: the database's flush takes several puts; the
        # KV goes away after the first of them reached it
        kv.crash_on_main_put, kv.main_puts = 2, 0
        db = await open_database(kv, preloaded=None)
        with pytest.raises(DatabaseKvError) as caught:
            await db.execute("UPDATE t SET v = zeroblob(1000)")
        assert isinstance(caught.value.__cause__, ConnectionError)
        with pytest.raises(DatabaseKvError):
            await db.close()  # nothing reaches KV any more
        assert db.closed
        assert meta_key(TAG_JOURNAL) in kv.data  # a hot journal: the commit was cut

        survivor = FakeKv(kv.data)
        db = await open_database(survivor, preloaded=engine_preload(survivor))
        try:
            assert await summary(db) == before
            assert await db.execute("PRAGMA integrity_check") == [("ok",)]
            assert meta_key(TAG_JOURNAL) not in survivor.data  # rolled back and deleted
        finally:
            await db.close()


async def test_kv_failures_surface_and_the_database_stays_usable() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        db = await open_database(kv, preloaded=None)
        await fill(db, 300)
        before = await summary(db)
        await db.close()

        db = await open_database(kv, preloaded=None, cache_pages=0)
        try:
            kv.fail["get_batch"] = 1
            with pytest.raises(DatabaseKvError) as caught:
                await summary(db)
            assert isinstance(caught.value.__cause__, ConnectionError)
            assert await summary(db) == before

            kv.fail["put"] = 2  # the journal is written, the database's pages are not
            with pytest.raises(DatabaseKvError):
                await db.execute("DELETE FROM t WHERE id >= 100")
            assert await summary(db) == before
            kv.fail["delete"] = 1  # the commit point (deleting the journal) fails
            with pytest.raises(DatabaseKvError):
                await db.execute("DELETE FROM t WHERE id >= 200")
            await db.execute("INSERT INTO t(id, v) VALUES (9999, x'01')")
            count = (await db.execute("SELECT count(*) FROM t"))[0][0]
            assert count in (201, 301)  # the failed commit may have been durable or not
            assert await db.execute("PRAGMA integrity_check") == [("ok",)]
        finally:
            await db.close()
        db = await open_database(kv, preloaded=None)
        try:
            assert await db.execute("SELECT count(*) FROM t") == [(count,)]
            assert await db.execute("PRAGMA integrity_check") == [("ok",)]
        finally:
            await db.close()


async def test_failed_open_closes_the_database() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()
        kv.fail["get_batch"] = 1
        vfs_before = set(apsw.vfs_names())
        with pytest.raises(DatabaseKvError):
            await open_database(kv, preloaded=None)

        async def broken(db: Database) -> None:
            await db.execute("CREATE TABLE")

        with pytest.raises(apsw.SQLError):
            await open_database(kv, preloaded=None, migrate=broken)
        assert set(apsw.vfs_names()) == vfs_before


async def test_two_databases_concurrently_do_not_interfere() -> None:
    with trio.fail_after(TIMEOUT):
        kv_a, kv_b = FakeKv(), FakeKv()
        dbs: dict[str, Database] = {}

        async def open_one(label: str, kv: FakeKv) -> None:
            dbs[label] = await open_database(kv, preloaded=[])

        async def work(label: str) -> None:
            db = dbs[label]
            await db.execute("CREATE TABLE t(owner TEXT, n INTEGER)")
            for n in range(40):
                await db.execute("INSERT INTO t VALUES (?, ?)", (label, n))
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_one, "a", kv_a)
            nursery.start_soon(open_one, "b", kv_b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(work, "a")
            nursery.start_soon(work, "b")
        try:
            for label in ("a", "b"):
                rows = await dbs[label].execute("SELECT DISTINCT owner, count(*) FROM t")
                assert rows == [(label, 40)]
            await dbs["a"].close()
            assert await dbs["b"].execute("SELECT count(*) FROM t") == [(40,)]
        finally:
            for db in dbs.values():
                await db.close()
        assert kv_a.data.keys() == kv_b.data.keys()
        assert kv_a.data != kv_b.data


async def test_values_fit_engine_limits_with_large_rows() -> None:
    with trio.fail_after(TIMEOUT):
        kv = FakeKv()  # MemoryPageKv rejects any request over the engine's limits
        db = await open_database(kv, preloaded=[])
        try:
            await db.execute("CREATE TABLE b(v BLOB)")
            await db.execute("INSERT INTO b VALUES (randomblob(3000000))")
            assert await db.execute("SELECT length(v) FROM b") == [(3_000_000,)]
            assert db.stats.pages_written >= 3_000_000 // CHUNK_SIZE
            assert db.stats.kv_put_calls >= db.stats.pages_written // 128
            await db.execute("DELETE FROM b")
            await db.execute("VACUUM")  # shrinks the file: truncation deletes chunks
            assert len(kv.entries(keys.SQLITE_PAGES)) <= 3
        finally:
            await db.close()
