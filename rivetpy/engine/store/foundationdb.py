"""The FoundationDB backend, through the official ``foundationdb`` bindings.

Selected by config (``StoreConfig(backend="foundationdb")``); the bindings and the FoundationDB
client library (``libfdb_c``) are loaded only when such a store is opened, so everything else in
rivetpy works without them. The bindings block: every call that waits on the cluster runs in a
worker thread (``trio.to_thread.run_sync``) bounded by a ``CapacityLimiter``; ``set``/``clear``
only buffer in the client and are called directly. The store contract suite runs against this
backend wherever ``FDB_CLUSTER_FILE`` names a reachable cluster.

Retry loop: FoundationDB errors are surfaced as the typed errors of
:mod:`rivetpy.engine.store.api`; after an error escapes the body or the commit, the loop asks the
client (``on_error``) whether it is retryable, which also applies FoundationDB's backoff, and
either runs the body again or raises.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import trio

from rivetpy.engine.store.api import (
    ConflictError,
    InvertedRangeError,
    KeyOutsideLegalRangeError,
    KeyTooLargeError,
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
    TransactionTooLargeError,
    ValueTooLargeError,
    check_key,
    check_range,
)

T = TypeVar("T")
log = logging.getLogger("rivetpy.engine.store")

DEFAULT_API_VERSION = 710
NOT_COMMITTED = 1020
_TYPED: dict[int, type[StoreError]] = {
    1020: ConflictError,
    2004: KeyOutsideLegalRangeError,
    2005: InvertedRangeError,
    2101: TransactionTooLargeError,
    2102: KeyTooLargeError,
    2103: ValueTooLargeError,
}


def load_fdb(api_version: int = DEFAULT_API_VERSION) -> Any:
    """Import the bindings and select the API version. Raises :class:`StoreBackendError`."""
    try:
        import fdb  # type: ignore[import-untyped]  # noqa: PLC0415 (optional, heavy)
    except ImportError as exc:
        raise StoreBackendError("the foundationdb Python package is not installed") from exc
    try:
        fdb.api_version(api_version)
    except Exception as exc:  # OSError/RuntimeError: libfdb_c missing or too old
        raise StoreBackendError(f"FoundationDB client library unavailable: {exc}") from exc
    return fdb


def _wait_on_error(tr: Any, code: int) -> None:
    tr.on_error(code).wait()


def _typed(code: int, message: str) -> StoreError:
    cls = _TYPED.get(code)
    if cls is None:
        return StoreBackendError(f"foundationdb: {message} ({code})", code)
    return cls(f"foundationdb: {message} ({code})")


class _FdbTransaction:
    def __init__(self, store: FdbStore, tr: Any, writable: bool) -> None:
        self._store = store
        self._tr = tr
        self._writable = writable
        self._budget = MutationBudget()
        self._finished = False

    def _source(self, snapshot: bool) -> Any:
        if self._finished:
            raise StoreError("the transaction is finished")
        return self._tr.snapshot if snapshot else self._tr

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        check_key(key)
        src = self._source(snapshot)

        def job() -> bytes | None:
            future = src.get(key)
            future.wait()
            value = future.value
            return None if value is None else bytes(value)

        return await self._store._call(job)

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
        src = self._source(snapshot)
        if begin >= end:
            return []
        mode = self._store.fdb.StreamingMode.want_all

        def job() -> list[KeyValue]:
            rows = src.get_range(begin, end, limit=limit, reverse=reverse, streaming_mode=mode)
            return [KeyValue(bytes(kv.key), bytes(kv.value)) for kv in rows.to_list()]

        return await self._store._call(job)

    async def get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], *, snapshot: bool = False
    ) -> list[list[KeyValue]]:
        for begin, end in ranges:
            check_range(begin, end)
        src = self._source(snapshot)
        mode = self._store.fdb.StreamingMode.want_all
        wanted = list(ranges)

        def job() -> list[list[KeyValue]]:
            # Start every read before waiting on any: the cluster serves them in parallel.
            started = [
                src.get_range(b, e, streaming_mode=mode) if b < e else None for b, e in wanted
            ]
            return [
                []
                if r is None
                else [KeyValue(bytes(kv.key), bytes(kv.value)) for kv in r.to_list()]
                for r in started
            ]

        return await self._store._call(job)

    async def get_estimated_range_size_bytes(self, begin: bytes, end: bytes) -> int:
        check_range(begin, end)
        tr = self._source(False)
        if begin >= end:
            return 0
        size = await self._store._call(lambda: tr.get_estimated_range_size_bytes(begin, end).wait())
        return int(size)

    def _writer(self) -> Any:
        if not self._writable:
            raise ReadOnlyTransactionError("cannot write in a read-only transaction")
        return self._source(False)

    def set(self, key: bytes, value: bytes) -> None:
        tr = self._writer()
        self._budget.on_set(key, value)
        tr.set(key, value)

    def clear(self, key: bytes) -> None:
        tr = self._writer()
        self._budget.on_clear(key)
        tr.clear(key)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        tr = self._writer()
        self._budget.on_clear_range(begin, end)
        if begin < end:
            tr.clear_range(begin, end)

    def finish(self) -> None:
        self._finished = True


class FdbStore:
    """A FoundationDB database. Create with :meth:`open`; see the module docstring."""

    backend = "foundationdb"

    def __init__(self, fdb: Any, db: Any, *, max_threads: int, retry_limit: int) -> None:
        self.fdb = fdb
        self._db = db
        self._limiter = trio.CapacityLimiter(max_threads)
        self._retry_limit = retry_limit
        self._closed = False

    @classmethod
    async def open(
        cls,
        cluster_file: str | None = None,
        *,
        api_version: int = DEFAULT_API_VERSION,
        max_threads: int = 16,
        retry_limit: int = 100,
    ) -> FdbStore:
        """Connect to the cluster named by ``cluster_file`` (None: the default cluster file).

        Raises :class:`StoreBackendError` if the bindings or the client library are missing.
        """
        fdb = await trio.to_thread.run_sync(load_fdb, api_version)
        try:
            db = await trio.to_thread.run_sync(fdb.open, cluster_file)
        except fdb.FDBError as exc:
            raise _typed(exc.code, str(exc)) from exc
        log.info("foundationdb store opened", extra={"cluster_file": cluster_file})
        return cls(fdb, db, max_threads=max_threads, retry_limit=retry_limit)

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except self.fdb.FDBError as exc:
            raise _typed(exc.code, exc.description) from exc

    async def _attempts(self, body: Callable[[_FdbTransaction], Awaitable[T]], writable: bool) -> T:
        tr = self._db.create_transaction()
        last: StoreError | None = None
        for n in range(self._retry_limit + 1):
            if self._closed:
                raise StoreClosedError("the store is closed")
            wrapper = _FdbTransaction(self, tr, writable)
            try:
                result = await body(wrapper)
                if writable:
                    await self._call(lambda: tr.commit().wait())
                return result
            except (RetryableError, StoreBackendError) as exc:
                if isinstance(exc, StoreBackendError):
                    if exc.code is None:
                        raise
                    code = exc.code
                else:
                    code = NOT_COMMITTED
                last = exc
                try:  # retryable: backoff and reset; otherwise on_error raises it back
                    await self._call(partial(_wait_on_error, tr, code))
                except StoreError:
                    raise exc from exc.__cause__
                log.debug("retrying transaction", extra={"attempt": n + 1, "error": str(exc)})
            except BaseException:
                tr.cancel()
                raise
            finally:
                wrapper.finish()
        raise RetryLimitExceededError(f"gave up after {self._retry_limit} retries") from last

    async def run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        return await self._attempts(fn, writable=True)

    async def read(self, fn: Callable[[ReadTransaction], Awaitable[T]]) -> T:
        return await self._attempts(fn, writable=False)

    async def aclose(self) -> None:
        """Refuse new transactions (the bindings keep one network thread per process)."""
        self._closed = True
