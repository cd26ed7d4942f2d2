"""Batches a new actor's initial writes into one KV put (kv-preload.md §7.4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

PutFn = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]


class DuplicateWriteError(ValueError):
    """The same key was added twice (duplicate keys in one put race inside the engine)."""


class WriteCollector:
    """``add`` appends, ``flush`` sends everything in ONE put and clears; an empty collector
    sends nothing. A failed flush raises (the actor start fails) and keeps the entries."""

    def __init__(self, put: PutFn) -> None:
        self._put = put
        self._entries: dict[bytes, bytes] = {}
        self.flushes = 0

    def add(self, key: bytes, value: bytes) -> None:
        if key in self._entries:
            raise DuplicateWriteError(f"key {key.hex()} already collected")
        self._entries[key] = value

    @property
    def pending(self) -> list[tuple[bytes, bytes]]:
        return list(self._entries.items())

    async def flush(self) -> int:
        """Send the collected entries; returns how many were written."""
        if not self._entries:
            return 0
        entries = list(self._entries.items())
        await self._put(entries)
        self._entries.clear()
        self.flushes += 1
        return len(entries)
