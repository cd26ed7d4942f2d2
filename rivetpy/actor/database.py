"""The per-actor SQLite database: apsw on a KV-backed VFS, driven from Trio.

Every SQLite call runs in a worker thread (``trio.to_thread.run_sync`` under a per-database
``CapacityLimiter(1)``); the VFS reaches the actor KV from there with ``trio.from_thread.run``.
A call is never abandoned half-way: cancelling a method waits for its SQLite call to finish.

Preload (kv-preload.md §7.6): the entries the engine preloaded under ``keys.SQLITE`` answer the
VFS's reads while the database opens (hot-journal check, schema); they stop being consulted when
the migration step starts, and in any case before :func:`open_database` returns. Preloaded pages
that were not written meanwhile are still KV's values and seed the VFS's page cache.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import apsw
import trio

from rivetpy.actor.sqlite_kv import DatabaseKvError, DatabaseStats, PageKv, PageStore
from rivetpy.actor.sqlite_vfs import KvVfs

__all__ = [
    "Database",
    "DatabaseClosedError",
    "DatabaseKvError",
    "DatabaseStats",
    "PageKv",
    "open_database",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: run on every open: 4096-byte pages (one KV value each; only a new database takes it), a
#: rollback journal deleted at commit (no WAL: the VFS has no shared memory), full syncs, and
#: temporary data in memory
_OPEN_PRAGMAS = (
    "PRAGMA page_size=4096;"
    "PRAGMA journal_mode=DELETE;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA temp_store=MEMORY;"
)


class DatabaseClosedError(Exception):
    """The database was closed by this process (:meth:`Database.close`)."""


class Database:
    """One actor's SQLite database; made by :func:`open_database`, owned by one actor instance.

    Methods may be called concurrently from several tasks: they run one at a time. SQL errors
    are apsw's exceptions; a failed KV request is :class:`DatabaseKvError` (the KV error in
    ``__cause__``), after which the database stays usable.
    """

    def __init__(self, vfs: KvVfs, label: str) -> None:
        self._vfs = vfs
        self._filename = vfs.db_name
        self._label = label
        self._limiter = trio.CapacityLimiter(1)
        self._conn: apsw.Connection | None = None
        self._closed = False
        self.stats: DatabaseStats = vfs.store.stats

    @property
    def closed(self) -> bool:
        return self._closed

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise DatabaseClosedError(f"database {self._label!r} is closed")
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    def _connection(self) -> apsw.Connection:
        if self._conn is None:  # closed while the call was waiting for the thread
            raise DatabaseClosedError(f"database {self._label!r} is closed")
        return self._conn

    async def _open(self) -> None:
        def connect() -> None:
            conn = apsw.Connection(
                self._filename,
                flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE,
                vfs=self._vfs.vfs_name,
            )
            try:
                for _ in conn.execute(_OPEN_PRAGMAS):
                    pass
                # read the schema now, while the preload answers
                conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
            except BaseException:
                conn.close()
                raise
            self._conn = conn

        await self._call(connect)

    def _end_preload(self) -> None:
        if self._vfs.store.preload_active:
            self._vfs.clear_preload()

    async def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` (one statement, or several without parameters); returns every row it
        produced, in order."""

        def run() -> list[tuple[Any, ...]]:
            return list(self._connection().execute(sql, params))

        return await self._call(run)

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        def run() -> None:
            for _ in self._connection().executemany(sql, seq):
                pass

        await self._call(run)

    async def executescript(self, sql: str) -> None:
        def run() -> None:
            for _ in self._connection().execute(sql):
                pass

        await self._call(run)

    async def run(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Call ``fn(connection)`` in the database's thread; nothing else runs meanwhile."""
        return await self._call(lambda: fn(self._connection()))

    async def transaction(self, fn: Callable[[apsw.Connection], T]) -> T:
        """:meth:`run` in a transaction: committed if ``fn`` returns, rolled back if it raises."""

        def run(conn: apsw.Connection) -> T:
            with conn:
                result = fn(conn)
            return result

        return await self.run(run)

    async def close(self) -> None:
        """Flush and close the connection, unregister the VFS; idempotent.

        A failure to flush (KV error) is raised after everything is closed anyway.
        """
        if self._closed:
            return

        def shut() -> None:
            conn, self._conn = self._conn, None
            try:
                if conn is not None:
                    try:
                        conn.close()
                    except BaseException:
                        conn.close(force=True)  # closed for sure; the first error is raised
                        raise
            finally:
                self._vfs.close()

        try:
            await trio.to_thread.run_sync(shut, limiter=self._limiter)
        finally:
            self._closed = True
            log.debug("sqlite database closed", extra={"db": self._label})


async def open_database(
    kv: PageKv,
    *,
    preloaded: Sequence[tuple[bytes, bytes]] | None,
    migrate: Callable[[Database], Awaitable[None]] | None = None,
    name: str = "main",
    cache_pages: int = 256,
    readahead_pages: int = 0,
) -> Database:
    """Open (creating if new) the actor's database stored in ``kv`` and run ``migrate`` on it.

    ``preloaded`` is the preload of the partial prefix ``keys.SQLITE`` (sorted ``(key, value)``
    entries; ``[]`` when the engine scanned it and found nothing, i.e. a new database) or None.
    ``cache_pages`` bounds the VFS's page cache (4096-byte pages); ``readahead_pages`` > 0
    makes a page read from KV also fetch that many following pages in the same request (fewer
    round trips for scans, more bytes read). On any failure the database is closed and the
    error raised.
    """
    label = f"{name}#{id(kv):x}"
    store = PageStore(kv, preloaded, DatabaseStats(), label=label)
    vfs = KvVfs(store, name, cache_pages=cache_pages, readahead_pages=readahead_pages)
    db = Database(vfs, label)
    try:
        await db._open()
        db._end_preload()
        if migrate is not None:
            await migrate(db)
    except BaseException:
        with trio.CancelScope(shield=True):
            await _close_quietly(db)
        raise
    log.debug(
        "sqlite database open",
        extra={"db": label, "vfs": vfs.vfs_name, **vars(db.stats)},
    )
    return db


async def _close_quietly(db: Database) -> None:
    try:
        await db.close()
    except Exception as exc:
        log.warning("closing a database that failed to open", extra={"error": repr(exc)})
