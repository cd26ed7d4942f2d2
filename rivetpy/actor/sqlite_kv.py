"""The KV side of the actor's SQLite VFS: key layout, preload lookups, limit-respecting batches.

:class:`PageStore` is what the (synchronous) VFS talks to. It runs in the database's worker
thread and reaches the actor's async KV on the Trio loop with :func:`trio.from_thread.run`.

Preload (kv-preload.md §7.6): the entries the engine preloaded under :data:`keys.SQLITE` answer
per-key lookups locally. The engine's partial prefix preload keeps the *leading* entries in key
order, so a key that sorts before the last preloaded key and is not preloaded is known absent;
keys after it are unknown and read from KV. An empty list means the prefix was scanned and holds
nothing: every key is known absent. Writes and deletes always go to KV; a key written while the
preload is active is no longer answered by the preload (its preloaded value or absence is stale).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio

from rivetpy.actor import keys
from rivetpy.engine.kv.limits import (
    MAX_KEYS,
    MAX_PUT_PAYLOAD_SIZE,
    MAX_VALUE_SIZE,
    validate_keys,
    validate_put,
    wrapped_len,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")

#: bytes per KV value holding file data; equal to the SQLite page size the database is created with
CHUNK_SIZE = 4096
#: SQLite files kept in KV, by tag (the byte after ``SQLITE_META`` / ``SQLITE_PAGES``)
TAG_MAIN, TAG_JOURNAL, TAG_WAL = 0, 1, 2


class PageKv(Protocol):
    """The actor KV as the database sees it; async, called from the Trio thread.

    Every call is one KV request and must respect the engine's limits (the store splits for
    that): at most 128 keys or entries, put payload ``sum(len(key) + 2) + sum(len(value))``
    at most 999,424 bytes, values non-empty and at most 131,072 bytes.
    """

    async def get_batch(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values in key order, ``None`` for absent keys."""
        ...

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None: ...

    async def delete(self, keys: Sequence[bytes]) -> None: ...


class DatabaseKvError(Exception):
    """A KV request made on behalf of SQLite failed; the KV's exception is ``__cause__``.

    Raised out of the :class:`~rivetpy.actor.database.Database` method whose statement needed
    the request. SQLite saw an I/O error: the statement (or its transaction) failed and the
    database stays usable; a half-written commit is rolled back from the journal kept in KV.
    """


@dataclass
class DatabaseStats:
    """Counters of one database's KV traffic (read from the Trio thread, written by the VFS)."""

    kv_get_calls: int = 0
    kv_keys_read: int = 0
    preload_hits: int = 0
    preload_known_absent: int = 0
    cache_hits: int = 0
    kv_put_calls: int = 0
    kv_entries_written: int = 0
    pages_written: int = 0
    kv_delete_calls: int = 0
    kv_keys_deleted: int = 0


def meta_key(tag: int) -> bytes:
    """File metadata: the value is the file size as a u64 big-endian (8 bytes)."""
    return keys.SQLITE_META + bytes([tag])


def chunk_key(tag: int, index: int) -> bytes:
    """File data: bytes ``[index * 4096, (index + 1) * 4096)``, always a full 4096-byte value."""
    return keys.SQLITE_PAGES + bytes([tag]) + index.to_bytes(4, "big")


def encode_size(size: int) -> bytes:
    return size.to_bytes(8, "big")


def decode_size(value: bytes) -> int:
    if len(value) != 8:
        raise ValueError(f"SQLite file metadata must be 8 bytes, got {len(value)}")
    return int.from_bytes(value, "big")


def put_batches(entries: Sequence[tuple[bytes, bytes]]) -> list[list[tuple[bytes, bytes]]]:
    """Split ``entries`` in order into puts within the engine's entry and payload limits."""
    batches: list[list[tuple[bytes, bytes]]] = []
    current: list[tuple[bytes, bytes]] = []
    payload = 0
    for key, value in entries:
        if not value or len(value) > MAX_VALUE_SIZE:
            raise ValueError(f"value of {len(value)} bytes cannot be stored in KV")
        size = wrapped_len(key) + len(value)
        if current and (len(current) == MAX_KEYS or payload + size > MAX_PUT_PAYLOAD_SIZE):
            batches.append(current)
            current, payload = [], 0
        current.append((key, value))
        payload += size
    if current:
        batches.append(current)
    return batches


class _NotPreloaded:
    """Lookup result: the preload says nothing about the key; read it from KV."""


NOT_PRELOADED = _NotPreloaded()


class Preload:
    """The entries preloaded under ``SQLITE``: a three-way lookup (value, known absent, unknown)."""

    def __init__(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        self._values = dict(entries)
        #: every key before this one that is not preloaded is absent (None: every key is)
        self._last = max(self._values) if self._values else None
        self._stale: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._values)

    def lookup(self, key: bytes) -> bytes | _NotPreloaded | None:
        if key in self._stale:
            return NOT_PRELOADED
        value = self._values.get(key)
        if value is not None:
            return value
        if self._last is None or key < self._last:
            return None
        return NOT_PRELOADED

    def invalidate(self, key: bytes) -> None:
        """``key`` was written or deleted: the preload no longer answers for it."""
        self._stale.add(key)

    def fresh_entries(self) -> list[tuple[bytes, bytes]]:
        """Preloaded entries never written since, in key order: still equal to KV's values."""
        return sorted((k, v) for k, v in self._values.items() if k not in self._stale)


async def _shielded(fn: Callable[[A], Awaitable[T]], arg: A) -> T:
    # A SQLite call is not abandoned half-way: cancelling the Database method waits for it.
    with trio.CancelScope(shield=True):
        result = await fn(arg)
    return result


class PageStore:
    """Synchronous KV access for the VFS, from the database's worker thread.

    Owned by one database: its preload, counters and KV handle are never shared (kv-preload.md
    §10 #5). Every KV failure is raised as :class:`DatabaseKvError`.
    """

    def __init__(
        self,
        kv: PageKv,
        preloaded: Sequence[tuple[bytes, bytes]] | None,
        stats: DatabaseStats,
        *,
        label: str,
    ) -> None:
        self._kv = kv
        self._preload = Preload(preloaded) if preloaded is not None else None
        self.stats = stats
        self.label = label

    @property
    def preload_active(self) -> bool:
        return self._preload is not None

    def clear_preload(self) -> list[tuple[bytes, bytes]]:
        """Stop answering from the preload; returns its entries still equal to KV's values."""
        preload, self._preload = self._preload, None
        if preload is None:
            return []
        log.debug("sqlite preload cleared", extra={"db": self.label, "entries": len(preload)})
        return preload.fresh_entries()

    def _call(self, fn: Callable[[A], Awaitable[T]], arg: A, what: str, count: int) -> T:
        try:
            return trio.from_thread.run(_shielded, fn, arg)
        except Exception as exc:
            log.warning(
                "sqlite KV request failed",
                extra={"db": self.label, "op": what, "keys": count, "error": repr(exc)},
            )
            raise DatabaseKvError(
                f"KV {what} of {count} key(s) for SQLite database {self.label!r} failed: {exc!r}"
            ) from exc

    def get_many(self, wanted: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``wanted`` in order: preload answers locally, misses in one KV get.

        More than 128 misses take one get per 128 keys (the engine's limit).
        """
        results: list[bytes | None] = [None] * len(wanted)
        missing: list[int] = []
        for i, key in enumerate(wanted):
            found = self._preload.lookup(key) if self._preload is not None else NOT_PRELOADED
            if isinstance(found, _NotPreloaded):
                missing.append(i)
            elif found is None:
                self.stats.preload_known_absent += 1
            else:
                self.stats.preload_hits += 1
                results[i] = found
        for start in range(0, len(missing), MAX_KEYS):
            positions = missing[start : start + MAX_KEYS]
            batch = [wanted[i] for i in positions]
            self.stats.kv_get_calls += 1
            self.stats.kv_keys_read += len(batch)
            values = self._call(self._kv.get_batch, batch, "get", len(batch))
            if len(values) != len(batch):
                raise DatabaseKvError(f"KV get returned {len(values)} values for {len(batch)} keys")
            for i, value in zip(positions, values, strict=True):
                results[i] = value
        return results

    def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """Write ``entries`` in order, in as many puts as the limits need (one after another)."""
        for batch in put_batches(entries):
            if self._preload is not None:
                for key, _ in batch:
                    self._preload.invalidate(key)
            self.stats.kv_put_calls += 1
            self._call(self._kv.put, batch, "put", len(batch))
            self.stats.kv_entries_written += len(batch)
            self.stats.pages_written += sum(
                1 for key, _ in batch if key.startswith(keys.SQLITE_PAGES)
            )

    def delete(self, doomed: Sequence[bytes]) -> None:
        for start in range(0, len(doomed), MAX_KEYS):
            batch = list(doomed[start : start + MAX_KEYS])
            if self._preload is not None:
                for key in batch:
                    self._preload.invalidate(key)
            self.stats.kv_delete_calls += 1
            self._call(self._kv.delete, batch, "delete", len(batch))
            self.stats.kv_keys_deleted += len(batch)


class MemoryPageKv:
    """A :class:`PageKv` in a dict, enforcing the engine's KV limits (tests, benchmarks).

    Each request is atomic, as in the engine: a rejected request changes nothing. ``calls``
    counts requests by method name.
    """

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = {} if data is None else data
        self.calls: dict[str, int] = {"get_batch": 0, "put": 0, "delete": 0}

    async def get_batch(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self.calls["get_batch"] += 1
        validate_keys(keys)
        await trio.lowlevel.checkpoint()
        return [self.data.get(key) for key in keys]

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        self.calls["put"] += 1
        validate_put([k for k, _ in entries], [v for _, v in entries])
        await trio.lowlevel.checkpoint()
        self.data.update(entries)

    async def delete(self, keys: Sequence[bytes]) -> None:
        self.calls["delete"] += 1
        validate_keys(keys)
        await trio.lowlevel.checkpoint()
        for key in keys:
            self.data.pop(key, None)

    def entries(self, prefix: bytes = keys.SQLITE) -> list[tuple[bytes, bytes]]:
        """The stored entries under ``prefix`` in key order (what a complete preload gives)."""
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))
