"""The embedded store: one SQLite file in WAL mode (the default backend).

How FoundationDB's semantics are provided:

* **Read-write transactions are serialized**: one writer connection, taken by a Trio lock for
  the whole body, whose SQLite transaction (``BEGIN IMMEDIATE``) starts before its first read.
  Nothing can commit between a body's reads and its commit, so every read is serializable and a
  conflict cannot happen between transactions of this process: a valid FoundationDB outcome (the
  one where no two transactions overlap). ``snapshot=True`` reads are therefore the same as
  serializable ones here. Another process writing the same file is serialized by SQLite's own
  lock; "database is locked" after ``busy_timeout`` surfaces as :class:`ConflictError` and is
  retried like an FDB conflict.
* **Read-only transactions** use a pool of reader connections. WAL gives each one a real
  snapshot, taken at its first read, that concurrent commits do not change and that never blocks
  or is blocked by the writer.
* **Writes are buffered** in the transaction object (so ``set``/``clear`` are synchronous like
  FoundationDB's) and flushed to the writer connection before the next read (read-your-writes)
  or at commit, in one worker-thread call. An aborted body rolls everything back.
* **Durability**: ``synchronous=FULL`` by default (each commit is fsynced to the WAL).
* **Size estimates** (``get_estimated_range_size_bytes``) are exact for ranges of up to
  ``exact_rows`` rows; beyond that they come from a byte sample kept with the data, like
  FoundationDB's: a pair of ``s`` bytes is sampled with probability ``s / sample_unit`` (by a hash
  of its key) and weighs ``sample_unit``, so an estimate costs O(bytes / sample_unit), not O(rows).

Blocking SQLite calls run in worker threads (``trio.to_thread.run_sync``) bounded by a
``CapacityLimiter`` of ``readers + 1``; a connection is used by one thread at a time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import trio

from rivetpy.engine.store.api import (
    ConflictError,
    KeyValue,
    MutationBudget,
    ReadOnlyTransactionError,
    ReadTransaction,
    RetryableError,
    RetryLimitExceededError,
    StoreBackendError,
    StoreClosedError,
    StoreError,
    Transaction,
    check_key,
    check_range,
)

T = TypeVar("T")
log = logging.getLogger("rivetpy.engine.store")

SCHEMA_VERSION = 1
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)
_SET = "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
_CLEAR = "DELETE FROM kv WHERE k = ?"
_CLEAR_RANGE = "DELETE FROM kv WHERE k >= ? AND k < ?"
_RANGE_FWD = "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?"
_RANGE_REV = "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k DESC LIMIT ?"
_GET = "SELECT v FROM kv WHERE k = ?"
_EXACT_SIZE = (
    "SELECT count(*), total(s) FROM"
    " (SELECT length(k) + length(v) AS s FROM kv WHERE k >= ? AND k < ? LIMIT ?)"
)
_SAMPLED_SIZE = "SELECT total(w) FROM kv_sample WHERE k >= ? AND k < ?"
_SAMPLE_SET = (
    "INSERT INTO kv_sample (k, w) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET w = excluded.w"
)
_SAMPLE_CLEAR = "DELETE FROM kv_sample WHERE k = ?"
_SAMPLE_CLEAR_RANGE = "DELETE FROM kv_sample WHERE k >= ? AND k < ?"
DEFAULT_EXACT_ROWS = 1000
DEFAULT_SAMPLE_UNIT = 1 << 20

Op = tuple[str, tuple[bytes | int, ...]]


def _connect(path: str, synchronous: str, busy_timeout_ms: int, reader: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if reader:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _init_schema(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == 0:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB NOT NULL PRIMARY KEY, v BLOB NOT NULL)"
            " WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS kv_sample (k BLOB NOT NULL PRIMARY KEY, w INTEGER NOT NULL)"
            " WITHOUT ROWID"
        )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    elif version != SCHEMA_VERSION:
        raise StoreBackendError(f"unsupported store schema version {version}")


def _translate(exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _BUSY_CODES:
        return ConflictError(f"database is busy: {exc}")
    return StoreBackendError(f"sqlite: {exc}", code)


def sample_weight(key: bytes, size: int, unit: int) -> int | None:
    """The pair's weight in the byte sample, or None if it is not sampled.

    Sampled with probability ``size / unit`` (decided by a hash of the key, so a rewrite of the
    same pair decides the same way) and then weighs ``unit``: the expected sum is ``size``.
    """
    if size >= unit:
        return size
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    return unit if h * unit < size << 64 else None


def _apply(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Execute buffered mutations in order, batching runs of the same statement."""
    i = 0
    while i < len(ops):
        sql = ops[i][0]
        j = i
        while j < len(ops) and ops[j][0] == sql:
            j += 1
        conn.executemany(sql, [params for _, params in ops[i:j]])
        i = j


class _SqliteTransaction:
    """One attempt of a transaction on one connection (see the module docstring)."""

    def __init__(self, store: SqliteStore, conn: sqlite3.Connection, writable: bool) -> None:
        self._store = store
        self._conn = conn
        self._writable = writable
        self._begun = False
        self._finished = False
        self._pending: list[Op] = []
        self._pending_sample: list[Op] = []
        self._budget = MutationBudget()
        self._lock = trio.StrictFIFOLock()

    # -- plumbing -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Worker-thread side: open the SQLite transaction and flush buffered writes."""
        if not self._begun:
            self._conn.execute("BEGIN IMMEDIATE" if self._writable else "BEGIN")
            self._begun = True
        if self._pending:
            # the two tables are independent: each one's operations stay in order
            ops, self._pending = self._pending, []
            sample_ops, self._pending_sample = self._pending_sample, []
            _apply(self._conn, ops)
            _apply(self._conn, sample_ops)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._finished:
            raise StoreError("the transaction is finished")
        async with self._lock:

            def job() -> T:
                self._prepare()
                return fn()

            return await self._store._in_thread(job)

    def _check_writable(self) -> None:
        if self._finished:
            raise StoreError("the transaction is finished")
        if not self._writable:
            raise ReadOnlyTransactionError("cannot write in a read-only transaction")

    def _write(self, op: Op, sample_op: Op) -> None:
        self._pending.append(op)
        self._pending_sample.append(sample_op)

    # -- reads ----------------------------------------------------------------------------------
    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        check_key(key)
        row = await self._call(lambda: self._conn.execute(_GET, (key,)).fetchone())
        return None if row is None else bytes(row[0])

    def _range(self, begin: bytes, end: bytes, limit: int, reverse: bool) -> list[KeyValue]:
        if begin >= end:
            return []
        sql = _RANGE_REV if reverse else _RANGE_FWD
        cur = self._conn.execute(sql, (begin, end, limit if limit > 0 else -1))
        return [KeyValue(bytes(k), bytes(v)) for k, v in cur]

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]:
        check_range(begin, end)
        return await self._call(lambda: self._range(begin, end, limit, reverse))

    async def get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], *, snapshot: bool = False
    ) -> list[list[KeyValue]]:
        for begin, end in ranges:
            check_range(begin, end)
        wanted = list(ranges)
        return await self._call(lambda: [self._range(b, e, 0, False) for b, e in wanted])

    async def get_estimated_range_size_bytes(self, begin: bytes, end: bytes) -> int:
        check_range(begin, end)
        exact_rows = self._store.exact_rows

        def estimate() -> int:
            if begin >= end:
                return 0
            count, total = self._conn.execute(_EXACT_SIZE, (begin, end, exact_rows + 1)).fetchone()
            if count <= exact_rows:
                return int(total)
            return int(self._conn.execute(_SAMPLED_SIZE, (begin, end)).fetchone()[0])

        return await self._call(estimate)

    # -- writes ---------------------------------------------------------------------------------
    def set(self, key: bytes, value: bytes) -> None:
        self._check_writable()
        self._budget.on_set(key, value)
        key, value = bytes(key), bytes(value)
        weight = sample_weight(key, len(key) + len(value), self._store.sample_unit)
        sample_op = (_SAMPLE_CLEAR, (key,)) if weight is None else (_SAMPLE_SET, (key, weight))
        self._write((_SET, (key, value)), sample_op)

    def clear(self, key: bytes) -> None:
        self._check_writable()
        self._budget.on_clear(key)
        self._write((_CLEAR, (bytes(key),)), (_SAMPLE_CLEAR, (bytes(key),)))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self._check_writable()
        self._budget.on_clear_range(begin, end)
        if begin < end:
            bounds = (bytes(begin), bytes(end))
            self._write((_CLEAR_RANGE, bounds), (_SAMPLE_CLEAR_RANGE, bounds))

    # -- end ------------------------------------------------------------------------------------
    async def commit(self) -> None:
        if self._writable and (self._begun or self._pending):
            await self._call(lambda: self._conn.execute("COMMIT"))
            self._begun = False
        self._finished = True

    async def close(self) -> None:
        """Roll back whatever is still open; safe under cancellation."""
        self._finished = True
        self._pending = []
        if self._begun:
            self._begun = False
            with trio.CancelScope(shield=True):
                try:
                    await self._store._in_thread(lambda: self._conn.execute("ROLLBACK"))
                except StoreError:
                    log.exception("sqlite rollback failed")


class SqliteStore:
    """The embedded SQLite store. Create with :meth:`open`; see the module docstring."""

    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        readers: list[sqlite3.Connection],
        *,
        retry_limit: int,
        exact_rows: int = DEFAULT_EXACT_ROWS,
        sample_unit: int = DEFAULT_SAMPLE_UNIT,
    ) -> None:
        self.path = path
        self.exact_rows = exact_rows
        self.sample_unit = sample_unit
        self._writer = writer
        self._readers = readers
        self._retry_limit = retry_limit
        self._limiter = trio.CapacityLimiter(len(readers) + 1)
        self._write_lock = trio.Lock()
        self._pool_send, self._pool_recv = trio.open_memory_channel[sqlite3.Connection](
            len(readers)
        )
        for conn in readers:
            self._pool_send.send_nowait(conn)
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        readers: int = 4,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        retry_limit: int = 100,
        exact_rows: int = DEFAULT_EXACT_ROWS,
        sample_unit: int = DEFAULT_SAMPLE_UNIT,
    ) -> SqliteStore:
        """Open (creating if needed) the store file at ``path``.

        ``synchronous`` is SQLite's pragma (``FULL``: durable across power loss; ``NORMAL``:
        durable across process crashes only). Raises :class:`StoreBackendError`.
        """
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"invalid synchronous mode {synchronous!r}")
        if readers < 1:
            raise ValueError("at least one reader connection is needed")
        file = Path(path)

        def connect_all() -> tuple[sqlite3.Connection, list[sqlite3.Connection]]:
            file.parent.mkdir(parents=True, exist_ok=True)
            writer = _connect(str(file), synchronous, busy_timeout_ms, reader=False)
            try:
                _init_schema(writer)
                pool = [
                    _connect(str(file), synchronous, busy_timeout_ms, reader=True)
                    for _ in range(readers)
                ]
            except BaseException:
                writer.close()
                raise
            return writer, pool

        try:
            writer, pool = await trio.to_thread.run_sync(connect_all)
        except sqlite3.Error as exc:
            raise StoreBackendError(f"cannot open sqlite store {file}: {exc}") from exc
        log.info("sqlite store opened", extra={"path": str(file), "readers": readers})
        return cls(
            file,
            writer,
            pool,
            retry_limit=retry_limit,
            exact_rows=exact_rows,
            sample_unit=sample_unit,
        )

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        last: RetryableError | None = None
        for n in range(self._retry_limit + 1):
            self._check_open()
            try:
                return await attempt()
            except RetryableError as exc:
                last = exc
                log.debug("retrying transaction", extra={"attempt": n + 1, "error": str(exc)})
            await trio.sleep(min(0.01 * 2**n, 1.0) * random.uniform(0.5, 1.0))
        raise RetryLimitExceededError(f"gave up after {self._retry_limit} retries") from last

    async def run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self._write_lock:
                self._check_open()
                tr = _SqliteTransaction(self, self._writer, writable=True)
                try:
                    result = await fn(tr)
                    await tr.commit()
                    return result
                finally:
                    await tr.close()

        return await self._retrying(attempt)

    async def read(self, fn: Callable[[ReadTransaction], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                conn = await self._pool_recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StoreClosedError("the store is closed") from None
            try:
                tr = _SqliteTransaction(self, conn, writable=False)
                try:
                    result = await fn(tr)
                    await tr.commit()
                    return result
                finally:
                    await tr.close()
            finally:
                self._pool_send.send_nowait(conn)

        return await self._retrying(attempt)

    async def aclose(self) -> None:
        """Wait for running transactions, then close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            async with self._write_lock:
                conns = [self._writer]
                for _ in self._readers:
                    conns.append(await self._pool_recv.receive())
                self._pool_send.close()

                def close_all() -> None:
                    for conn in conns:
                        conn.close()

                await trio.to_thread.run_sync(close_all)
        log.info("sqlite store closed", extra={"path": str(self.path)})
