"""Where actor KV entries live in the store (kv-preload.md §8).

Actor subspace ``S = pack((RIVET, PEGBOARD, ACTOR_KV)) ‖ id``. A user key ``K`` is embedded as
``KeyWrapper(K) = pack(((K,),))`` (``05 01 esc(K) 00 00``). One entry is stored as value chunks
``S ‖ KW(K) ‖ pack((DATA, i))`` of :data:`VALUE_CHUNK_SIZE` bytes followed (in key order) by its
metadata row ``S ‖ KW(K) ‖ pack((METADATA,))`` holding a BARE ``KvMetadata``.
"""

from __future__ import annotations

from codec import v8
from rivetpy.engine.keys import (
    ACTOR_KV,
    DATA,
    METADATA,
    PEGBOARD,
    RIVET,
    pack,
    pack_id,
    subspace_range,
    unpack,
)

#: Value chunk size: 10 KB (not KiB), FoundationDB's recommended blob chunk.
VALUE_CHUNK_SIZE = 10_000
_ACTOR_KV_PREFIX = pack((RIVET, PEGBOARD, ACTOR_KV))
_DATA = pack((DATA,))
_METADATA = pack((METADATA,))


class CorruptRowError(ValueError):
    """A row under an actor's subspace is not a chunk or metadata row of an entry."""


def key_wrapper(key: bytes) -> bytes:
    """``KeyWrapper(K)``: a nested tuple holding one byte string (exact keys)."""
    return pack(((key,),))


def list_key_wrapper(key: bytes) -> bytes:
    """``ListKeyWrapper(K)``: the nested tuple left open (range starts and prefixes)."""
    return key_wrapper(key)[:-1]


class ActorKvLayout:
    """The keys of one actor's KV subspace."""

    __slots__ = ("actor_id", "subspace")

    def __init__(self, actor_id: str) -> None:
        self.actor_id = actor_id
        self.subspace = _ACTOR_KV_PREFIX + pack_id(actor_id)

    def all_range(self) -> tuple[bytes, bytes]:
        """Every row of the actor (list-all, drop, storage estimate)."""
        return subspace_range(self.subspace)

    def entry_prefix(self, key: bytes) -> bytes:
        return self.subspace + key_wrapper(key)

    def entry_range(self, key: bytes) -> tuple[bytes, bytes]:
        """Every row of entry ``key`` (its chunks, then its metadata)."""
        return subspace_range(self.entry_prefix(key))

    def chunk_key(self, key: bytes, index: int) -> bytes:
        return self.entry_prefix(key) + _DATA + pack((index,))

    def metadata_key(self, key: bytes) -> bytes:
        return self.entry_prefix(key) + _METADATA

    def prefix_range(self, prefix: bytes) -> tuple[bytes, bytes]:
        """Entries whose key starts with ``prefix`` (§8.3; a key with ``ff`` right after the
        prefix sorts after the end and is not included)."""
        start = self.subspace + list_key_wrapper(prefix)
        if start.endswith(b"\x00"):
            start = start[:-1]
        return start, start + b"\xff"

    def list_range(self, query: v8.KvListQuery) -> tuple[bytes, bytes]:
        if isinstance(query, v8.KvListAllQuery):
            return self.all_range()
        if isinstance(query, v8.KvListPrefixQuery):
            return self.prefix_range(query.key)
        start = self.subspace + list_key_wrapper(query.start) + b"\x00"
        end_prefix = self.entry_prefix(query.end)
        return start, end_prefix + (b"\x00" if query.exclusive else b"\xff")

    def delete_range_bounds(self, start: bytes, end: bytes) -> tuple[bytes, bytes]:
        """``[S ‖ KW(start) ‖ 00, S ‖ KW(end) ‖ 00)``: entries with ``start <= K < end``."""
        return self.entry_prefix(start) + b"\x00", self.entry_prefix(end) + b"\x00"

    def decode_row(self, row_key: bytes) -> tuple[bytes, int | None, int]:
        """``(K, chunk index, suffix length)`` of a chunk row, ``(K, None, suffix length)`` of a
        metadata row; ``row_key[:-suffix length]`` is the entry prefix ``S ‖ KW(K)``.

        Raises :class:`CorruptRowError` for anything else.
        """
        try:
            items = unpack(row_key, len(self.subspace))
        except ValueError as exc:
            raise CorruptRowError(f"undecodable KV row key: {exc}") from exc
        if items and isinstance(items[0], tuple) and len(items[0]) == 1:
            key = items[0][0]
            if isinstance(key, bytes):
                if len(items) == 3 and items[1] == DATA and isinstance(items[2], int):
                    if items[2] >= 0:
                        return key, items[2], len(_DATA) + len(pack((items[2],)))
                elif len(items) == 2 and items[1] == METADATA:
                    return key, None, len(_METADATA)
        raise CorruptRowError(f"unexpected KV sub key {items!r}")


def decode_suffix(suffix: bytes) -> int | None:
    """The chunk index (or None for metadata) encoded after an entry prefix ``S ‖ KW(K)``.

    Raises :class:`CorruptRowError`. Fast path of :meth:`ActorKvLayout.decode_row` for the
    following rows of an entry whose prefix is known (tuple encoding is concatenative).
    """
    if suffix == _METADATA:
        return None
    if suffix.startswith(_DATA):
        rest = suffix[len(_DATA) :]
        if rest == b"\x14":
            return 0
        if len(rest) == 2 and rest[0] == 0x15:
            return rest[1]
        try:
            items = unpack(rest)
        except ValueError as exc:
            raise CorruptRowError(f"undecodable KV row key: {exc}") from exc
        index = items[0] if len(items) == 1 else None
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            return index
    raise CorruptRowError(f"unexpected KV sub key suffix {suffix!r}")
