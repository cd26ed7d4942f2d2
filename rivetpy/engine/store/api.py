"""The store contract: FoundationDB semantics behind a typed, Trio-friendly interface.

A *transaction* is an ``async`` function receiving a :class:`Transaction` (or a
:class:`ReadTransaction`); the store runs it in a retry loop::

    async def body(tr: Transaction) -> int:
        n = int(await tr.get(b"counter") or b"0") + 1
        tr.set(b"counter", str(n).encode())
        return n

    n = await store.run(body)

Contract (identical on every backend):

* **Retry loop.** :meth:`Store.run` commits the body's writes atomically, or runs the body again
  from scratch when a :class:`RetryableError` (a conflict) escapes it or its commit. The body must
  therefore create its accumulators inside itself and have no side effects other than through
  the transaction. Any other exception aborts the transaction (nothing written) and propagates.
* **Reads.** All reads of one transaction see one consistent snapshot plus the transaction's own
  writes. ``snapshot=False`` reads are *serializable*: if a key or range read this way is changed
  by another transaction that commits first, this transaction fails with a conflict and is
  retried. ``snapshot=True`` reads never cause conflicts.
* **Read-only transactions** (:meth:`Store.read`) see one consistent snapshot and never conflict.
* **Ranges** are half-open ``[begin, end)`` in unsigned byte order; ``limit=0`` means no limit;
  ``reverse`` returns the last keys first. An empty or inverted range reads nothing.
* **Limits** (FoundationDB's): keys at most :data:`MAX_KEY_SIZE` bytes, values at most
  :data:`MAX_VALUE_SIZE`, at most :data:`MAX_TRANSACTION_SIZE` bytes affected by one
  transaction (Σ key+value of sets, key of clears, begin+end of range clears); keys to read or
  write must be below ``b"\\xff"`` (the system keyspace). A violation raises a
  :class:`StoreLimitError` subclass at the call that exceeds it; it is never retried.

Errors split by blame: :class:`StoreLimitError` (the caller asked for something illegal),
:class:`RetryableError` (try again; handled by the loop), :class:`StoreBackendError` (the
database failed), :class:`StoreClosedError` (the store was closed by its owner).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")

#: FoundationDB's maximum key size in bytes.
MAX_KEY_SIZE = 10_000
#: FoundationDB's maximum value size in bytes.
MAX_VALUE_SIZE = 100_000
#: FoundationDB's maximum transaction size in bytes (affected bytes of mutations).
MAX_TRANSACTION_SIZE = 10_000_000
#: First key of the system keyspace; user keys sort strictly below it.
SYSTEM_KEYSPACE = b"\xff"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreLimitError(StoreError):
    """The caller asked for something FoundationDB forbids; retrying cannot help."""


class KeyTooLargeError(StoreLimitError):
    """A key is longer than :data:`MAX_KEY_SIZE` (FoundationDB error 2102)."""


class ValueTooLargeError(StoreLimitError):
    """A value is longer than :data:`MAX_VALUE_SIZE` (FoundationDB error 2103)."""


class TransactionTooLargeError(StoreLimitError):
    """The transaction's mutations exceed :data:`MAX_TRANSACTION_SIZE` (error 2101)."""


class KeyOutsideLegalRangeError(StoreLimitError):
    """A key is in the system keyspace ``>= b"\\xff"`` (FoundationDB error 2004)."""


class InvertedRangeError(StoreLimitError):
    """``clear_range`` with ``begin > end`` (FoundationDB error 2005)."""


class ReadOnlyTransactionError(StoreLimitError):
    """A write was attempted in a transaction run by :meth:`Store.read`."""


class RetryableError(StoreError):
    """The transaction may succeed if run again; :meth:`Store.run` retries it."""


class ConflictError(RetryableError):
    """Another transaction changed what this one read serializably (error 1020)."""


class RetryLimitExceededError(StoreError):
    """The retry loop gave up; the last retryable error is the ``__cause__``."""


class StoreBackendError(StoreError):
    """The database failed (I/O error, corruption, unreachable cluster); cause in ``__cause__``."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreClosedError(StoreError):
    """The store was closed by its owner before or during the call."""


class ReadTransaction(Protocol):
    """Reads of one transaction (see the module docstring for the contract)."""

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None: ...

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]: ...

    async def get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], *, snapshot: bool = False
    ) -> list[list[KeyValue]]:
        """Read several whole ranges at once (one round trip where the backend allows)."""
        ...

    async def get_estimated_range_size_bytes(self, begin: bytes, end: bytes) -> int:
        """An estimate of the bytes (keys + values) stored in ``[begin, end)``."""
        ...


class Transaction(ReadTransaction, Protocol):
    """A read-write transaction. Writes are buffered and visible to its own later reads."""

    def set(self, key: bytes, value: bytes) -> None: ...

    def clear(self, key: bytes) -> None: ...

    def clear_range(self, begin: bytes, end: bytes) -> None: ...


class Store(Protocol):
    """A transactional ordered key-value store (one database).

    The owner opens it (see :func:`rivetpy.engine.store.open_store`) and closes it with
    :meth:`aclose` once no task uses it any more.
    """

    #: ``"sqlite"`` or ``"foundationdb"``
    backend: str

    async def run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in a read-write transaction with the retry loop; return its result."""
        ...

    async def read(self, fn: Callable[[ReadTransaction], Awaitable[T]]) -> T:
        """Run ``fn`` in a read-only transaction (one snapshot, no conflicts)."""
        ...

    async def aclose(self) -> None: ...


def check_key(key: bytes) -> None:
    """Raise unless ``key`` may be read or written."""
    if len(key) > MAX_KEY_SIZE:
        raise KeyTooLargeError(f"key is too large ({len(key)} > {MAX_KEY_SIZE} bytes)")
    if key >= SYSTEM_KEYSPACE:
        raise KeyOutsideLegalRangeError("key is outside the legal range (>= b'\\xff')")


def check_range(begin: bytes, end: bytes) -> None:
    """Raise unless ``[begin, end)`` lies within the user keyspace (end may be ``ff``)."""
    for k in (begin, end):
        if len(k) > MAX_KEY_SIZE + 1:
            raise KeyTooLargeError(f"range key is too large ({len(k)} bytes)")
    if begin > SYSTEM_KEYSPACE or end > SYSTEM_KEYSPACE:
        raise KeyOutsideLegalRangeError("range is outside the legal range (> b'\\xff')")


class MutationBudget:
    """Validates mutations and counts the transaction's affected bytes."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0

    def _add(self, n: int) -> None:
        if self.size + n > MAX_TRANSACTION_SIZE:
            raise TransactionTooLargeError(
                f"transaction is too large ({self.size + n} > {MAX_TRANSACTION_SIZE} bytes)"
            )
        self.size += n

    def on_set(self, key: bytes, value: bytes) -> None:
        check_key(key)
        if len(value) > MAX_VALUE_SIZE:
            raise ValueTooLargeError(f"value is too large ({len(value)} > {MAX_VALUE_SIZE} bytes)")
        self._add(len(key) + len(value))

    def on_clear(self, key: bytes) -> None:
        check_key(key)
        self._add(len(key))

    def on_clear_range(self, begin: bytes, end: bytes) -> None:
        check_range(begin, end)
        if begin > end:
            raise InvertedRangeError("clear_range: begin is after end")
        self._add(len(begin) + len(end))
