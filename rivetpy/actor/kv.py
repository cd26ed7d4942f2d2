"""The actor runtime's KV client: counts round trips, feeds the startup guard, keeps the
preload map true after writes, and gives user code its own key space.

Every call is one KV request to the engine. Reads report to the
:class:`~rivetpy.actor.round_trips.RoundTripGuard` before they are sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rivetpy.actor.keys import USER_KV
from rivetpy.actor.preload import PreloadMap
from rivetpy.actor.round_trips import RoundTripGuard
from rivetpy.runner.api import ActorKv, KvError


@dataclass(slots=True)
class KvStats:
    """KV requests of one actor instance; ``*_at_ready`` freeze the counts when it is ready."""

    reads: int = 0
    writes: int = 0
    reads_at_ready: int | None = None
    writes_at_ready: int | None = None

    def mark_ready(self) -> None:
        self.reads_at_ready = self.reads
        self.writes_at_ready = self.writes


class EmptyValueError(KvError):
    """Empty values are not storable (the engine cannot read them back)."""


class InstanceKv:
    def __init__(self, kv: ActorKv, guard: RoundTripGuard) -> None:
        self._kv = kv
        self.guard = guard
        self.stats = KvStats()
        #: the startup preload while it is valid (writes keep it up to date)
        self.preload: PreloadMap | None = None

    # reads -----------------------------------------------------------------------------------
    async def get(self, keys: Sequence[bytes], site: str) -> list[bytes | None]:
        self.guard.record("get", site, ",".join(k.hex() for k in keys[:4]))
        self.stats.reads += 1
        return await self._kv.get(keys)

    async def list_prefix(
        self, prefix: bytes, site: str, *, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        self.guard.record("list_prefix", site, prefix.hex())
        self.stats.reads += 1
        return await self._kv.list_prefix(prefix, limit=limit)

    async def list_range(
        self, start: bytes, end: bytes, site: str, *, exclusive: bool, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        self.guard.record("list_range", site, start.hex())
        self.stats.reads += 1
        return await self._kv.list_range(start, end, exclusive=exclusive, limit=limit)

    # writes ----------------------------------------------------------------------------------
    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        if not entries:
            return
        for key, value in entries:
            if not value:
                raise EmptyValueError(f"empty value for key {key.hex()}")
        self.stats.writes += 1
        await self._kv.put(entries)
        if self.preload is not None:
            self.preload.record_write([k for k, _ in entries], [v for _, v in entries])

    async def delete(self, keys: Sequence[bytes]) -> None:
        if not keys:
            return
        self.stats.writes += 1
        await self._kv.delete(keys)
        if self.preload is not None:
            self.preload.record_write(list(keys), [None] * len(keys))

    async def delete_range(self, start: bytes, end: bytes) -> None:
        self.stats.writes += 1
        await self._kv.delete_range(start, end)
        self.preload = None

    async def drop(self) -> None:
        self.stats.writes += 1
        await self._kv.drop()
        self.preload = None


class SqlitePageKv:
    """The SQLite VFS's view of KV (``PageKv``): per-database, reads reported to the guard."""

    def __init__(self, kv: InstanceKv) -> None:
        self._kv = kv

    async def get_batch(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return await self._kv.get(keys, "sqlite")

    async def put(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        await self._kv.put(entries)

    async def delete(self, keys: Sequence[bytes]) -> None:
        await self._kv.delete(keys)


class UserKv:
    """Key-value storage for user code, under its own prefix (keys are opaque bytes, or str
    encoded as UTF-8). Values must be non-empty bytes."""

    def __init__(self, kv: InstanceKv) -> None:
        self._kv = kv

    @staticmethod
    def _key(key: bytes | str) -> bytes:
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        return USER_KV + raw

    async def get(self, key: bytes | str) -> bytes | None:
        return (await self._kv.get([self._key(key)], "user"))[0]

    async def get_many(self, keys: Sequence[bytes | str]) -> list[bytes | None]:
        return await self._kv.get([self._key(k) for k in keys], "user")

    async def put(self, key: bytes | str, value: bytes) -> None:
        await self._kv.put([(self._key(key), value)])

    async def put_many(self, entries: Iterable[tuple[bytes | str, bytes]]) -> None:
        await self._kv.put([(self._key(k), v) for k, v in entries])

    async def delete(self, *keys: bytes | str) -> None:
        await self._kv.delete([self._key(k) for k in keys])

    async def list(
        self, prefix: bytes | str = b"", *, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Entries whose (user) key starts with ``prefix``, sorted, keys without the prefix."""
        rows = await self._kv.list_prefix(self._key(prefix), "user", limit=limit)
        return [(k[len(USER_KV) :], v) for k, v in rows]
