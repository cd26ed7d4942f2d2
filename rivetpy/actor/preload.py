"""The preloaded startup KV of one actor start, as an immutable lookup table.

Built once from the start command's ``PreloadedKv`` (kv-preload.md §6). Every lookup has three
outcomes, kept apart by type so that "known absent" can never be mistaken for "not preloaded":

* :meth:`PreloadMap.get` returns :class:`PreloadHit` (``value`` is the bytes, or ``None`` when the
  engine looked and the key does not exist) or :data:`NOT_PRELOADED` (the caller must read KV);
* :meth:`PreloadMap.list_prefix` returns the sorted entries under a requested prefix or
  :data:`NOT_PRELOADED`.

A map is only valid until the first local write to a key it covers (§7.2): writers must call
:meth:`PreloadMap.record_write` (or drop the map).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from codec import v8


class _NotPreloaded(enum.Enum):
    NOT_PRELOADED = "not preloaded"

    def __repr__(self) -> str:
        return "NOT_PRELOADED"


NOT_PRELOADED: Final = _NotPreloaded.NOT_PRELOADED
"""The engine did not cover this key or prefix: read it from KV."""

NotPreloaded = _NotPreloaded


@dataclass(frozen=True, slots=True)
class PreloadHit:
    """The engine covered the key: ``value`` is its value, or ``None`` if it does not exist."""

    value: bytes | None


class PreloadMap:
    """Sorted preloaded entries plus the get-keys and prefixes the engine reported as read.

    Duplicate entries (a get-key also under a prefix) keep the first value; unsorted input is
    sorted (unsigned lexicographic byte order, which is Python's ``bytes`` order).
    """

    __slots__ = ("_keys", "_prefixes", "_requested_keys", "_values")

    def __init__(
        self,
        entries: Iterable[tuple[bytes, bytes]],
        requested_get_keys: Iterable[bytes],
        requested_prefixes: Iterable[bytes],
    ) -> None:
        values: dict[bytes, bytes] = {}
        for key, value in entries:
            values.setdefault(bytes(key), bytes(value))
        self._values = values
        self._keys = sorted(values)
        self._requested_keys = frozenset(bytes(k) for k in requested_get_keys)
        self._prefixes = frozenset(bytes(p) for p in requested_prefixes)

    @classmethod
    def from_preloaded(cls, preloaded: v8.PreloadedKv) -> PreloadMap:
        return cls(
            ((e.key, e.value) for e in preloaded.entries),
            preloaded.requested_get_keys,
            preloaded.requested_prefixes,
        )

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def total_bytes(self) -> int:
        return sum(len(k) + len(v) for k, v in self._values.items())

    def get(self, key: bytes) -> PreloadHit | NotPreloaded:
        value = self._values.get(key)
        if value is not None:
            return PreloadHit(value)
        if key in self._requested_keys:
            return PreloadHit(None)
        return NOT_PRELOADED

    def list_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]] | NotPreloaded:
        """Entries whose key starts with ``prefix``, sorted, if the engine scanned exactly this
        prefix (byte-equal); for a *partial* prefix the list may be truncated (lookups only)."""
        if prefix not in self._prefixes:
            return NOT_PRELOADED
        return self._scan(prefix)

    def _scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        keys = self._keys
        out: list[tuple[bytes, bytes]] = []
        for i in range(bisect.bisect_left(keys, prefix), len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                break
            out.append((key, self._values[key]))
        return out

    def record_write(self, keys: Sequence[bytes], values: Sequence[bytes | None]) -> None:
        """Keep the map true after a local write (``None`` = deleted): a covered key takes the
        new value so a later lookup cannot return stale data."""
        for key, value in zip(keys, values, strict=True):
            known = (
                key in self._values
                or key in self._requested_keys
                or any(key.startswith(p) for p in self._prefixes)
            )
            if not known:
                continue
            if value is None:
                if key in self._values:
                    del self._values[key]
                    self._keys.remove(key)
                self._requested_keys = self._requested_keys | {key}
            else:
                if key not in self._values:
                    bisect.insort(self._keys, key)
                self._values[key] = value
