"""Reassembling logical KV entries from stored rows (kv-preload.md §8.4)."""

from __future__ import annotations

import codec
from codec import v8
from rivetpy.engine.kv.layout import ActorKvLayout, CorruptRowError, decode_suffix
from rivetpy.engine.store.api import KeyValue

Entry = v8.PreloadedKvEntry


class CorruptEntryError(ValueError):
    """Stored rows do not form a valid entry (empty value, no metadata, bad row)."""


def encode_metadata(metadata: v8.KvMetadata) -> bytes:
    """BARE ``KvMetadata``, no version prefix (the metadata row's value)."""
    return codec.encode_raw("KvMetadata", metadata, codec.LATEST)


def decode_metadata(raw: bytes) -> v8.KvMetadata:
    try:
        metadata: v8.KvMetadata = codec.decode_raw("KvMetadata", raw, codec.LATEST)
    except codec.DecodeError as exc:
        raise CorruptEntryError(f"bad KV metadata: {exc}") from exc
    return metadata


def entry_size(entry: Entry) -> int:
    """Budget size of a preloaded entry: key + value + metadata version + 8 (the i64 ts)."""
    return len(entry.key) + len(entry.value) + len(entry.metadata.version) + 8


class EntryBuilder:
    """Rows of one entry, in any order: chunks are joined by index (a repeated index keeps
    the first value seen), the first metadata row wins."""

    __slots__ = ("chunks", "key", "metadata", "prefix")

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        self.key = key
        #: the entry's row-key prefix ``S ‖ KW(key)``
        self.prefix = prefix
        self.chunks: dict[int, bytes] = {}
        self.metadata: v8.KvMetadata | None = None

    def add(self, index: int | None, value: bytes) -> None:
        if index is None:
            if self.metadata is None:
                self.metadata = decode_metadata(value)
        else:
            self.chunks.setdefault(index, value)

    def build(self) -> Entry:
        """Raises :class:`CorruptEntryError` if the value is empty or metadata is missing."""
        if len(self.chunks) == 1:
            value = next(iter(self.chunks.values()))
        else:
            value = b"".join(self.chunks[i] for i in sorted(self.chunks))
        if not value:
            raise CorruptEntryError(f"empty value at key {self.key!r}")
        if self.metadata is None:
            raise CorruptEntryError(f"no metadata for key {self.key!r}")
        return Entry(self.key, value, self.metadata)


class EntryAssembler:
    """Groups a stream of rows (forward or reverse key order) into entries.

    :meth:`feed` returns the previous entry, finished, when a row of a new key arrives;
    :meth:`finish` returns the last one. Errors are :class:`CorruptEntryError`.
    """

    __slots__ = ("_current", "_layout")

    def __init__(self, layout: ActorKvLayout) -> None:
        self._layout = layout
        self._current: EntryBuilder | None = None

    def feed(self, row: KeyValue) -> Entry | None:
        current = self._current
        done: Entry | None = None
        try:
            if current is not None and row.key.startswith(current.prefix):
                index = decode_suffix(row.key[len(current.prefix) :])
            else:
                key, index, suffix_len = self._layout.decode_row(row.key)
                if current is not None:
                    done = current.build()
                current = self._current = EntryBuilder(key, row.key[:-suffix_len])
        except CorruptRowError as exc:
            raise CorruptEntryError(str(exc)) from exc
        current.add(index, row.value)
        return done

    @property
    def pending_key(self) -> bytes | None:
        return None if self._current is None else self._current.key

    def finish(self) -> Entry | None:
        current, self._current = self._current, None
        return None if current is None else current.build()


def assemble(layout: ActorKvLayout, rows: list[KeyValue]) -> list[Entry]:
    """Every entry of a complete list of rows."""
    out: list[Entry] = []
    asm = EntryAssembler(layout)
    for row in rows:
        done = asm.feed(row)
        if done is not None:
            out.append(done)
    last = asm.finish()
    if last is not None:
        out.append(last)
    return out
