"""An apsw VFS keeping one actor's SQLite files in actor KV as 4096-byte chunks.

Storage format (under ``keys.SQLITE``, schema version 1):

* ``SQLITE_META + tag`` -> the file's size, u64 big-endian (8 bytes). The file exists iff this
  key exists.
* ``SQLITE_PAGES + tag + u32 BE index`` -> bytes ``[index * 4096, (index + 1) * 4096)`` of the
  file, always a full 4096-byte value; bytes past the file size are zero. Chunks at or past the
  stored size are never read (they may be leftovers of an interrupted delete or truncate).
* tags: 0 the main database, 1 its rollback journal, 2 its WAL (never used: the VFS has no
  shared memory, so the database runs in rollback-journal mode).

Writes are buffered per file and written on ``xSync``, ``xClose`` and a shrinking ``xTruncate``
(SQLite may truncate after its last sync): every dirty chunk in
index order except chunk 0, then chunk 0 and the size in the last put, then deletes of chunks
cut off by truncation. A file is deleted by deleting its size first, then its chunks. Together
with SQLite's journal protocol (journal synced before the database is written, journal deleted
after the database is synced) a commit interrupted at any KV request is rolled back from the
journal on the next open.

This process is the only writer of the files, so their sizes, once read, and every chunk it
writes are known locally: an LRU cache of chunks (and the preload, during open) answers most
reads. Temporary files (statement journals, temp tables) live in memory.
"""

# ruff: noqa: N802  (apsw's VFS method names)

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict

import apsw

from rivetpy.actor.sqlite_kv import (
    CHUNK_SIZE,
    TAG_JOURNAL,
    TAG_MAIN,
    TAG_WAL,
    PageStore,
    chunk_key,
    decode_size,
    encode_size,
    meta_key,
)

log = logging.getLogger(__name__)

_ZERO_CHUNK = bytes(CHUNK_SIZE)
_names = itertools.count(1)


def _chunks(size: int) -> int:
    return -(-size // CHUNK_SIZE)


class ChunkCache:
    """LRU cache of chunk values by KV key; 0 capacity disables it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, key: bytes) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __contains__(self, key: bytes) -> bool:
        return key in self._items

    def drop(self, key: bytes) -> None:
        self._items.pop(key, None)


class KvFileState:
    """One file's state, shared by every handle open on it.

    ``durable`` is how many leading bytes of the chunks in KV are valid: the stored size,
    lowered at once by a truncation. Chunks at or past it read as zeros without a KV request.
    """

    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.loaded = False
        self.exists = False
        self.size = 0
        self.durable = 0
        self.meta_stored = False
        self.meta_dirty = False
        self.dirty: dict[int, bytes] = {}
        self.doomed: set[int] = set()


class KvVfs(apsw.VFS):
    """The VFS of one database: registered under a unique name, unregistered by :meth:`close`.

    ``db_name`` is the SQLite filename; ``db_name + "-journal"`` and ``"-wal"`` are its other
    files. Any other name is refused (temporary files, opened without a name, live in memory).
    """

    def __init__(
        self, store: PageStore, db_name: str, *, cache_pages: int = 256, readahead_pages: int = 0
    ) -> None:
        self.store = store
        self.db_name = db_name
        self.vfs_name = f"rivetpy-kv-{next(_names)}"
        self.cache = ChunkCache(cache_pages)
        #: on a miss in the main database, also fetch up to this many following chunks (same get)
        self.readahead = min(readahead_pages, cache_pages)
        self._files = {
            db_name: KvFileState(TAG_MAIN),
            db_name + "-journal": KvFileState(TAG_JOURNAL),
            db_name + "-wal": KvFileState(TAG_WAL),
        }
        super().__init__(self.vfs_name, base="")

    def close(self) -> None:
        self.unregister()

    def clear_preload(self) -> None:
        """End of open: stop answering from the preload. Its pages not written since are KV's
        values: the leading ones (the first pages of the database) seed the cache."""
        pages = [(k, v) for k, v in self.store.clear_preload() if len(v) == CHUNK_SIZE]
        for key, value in reversed(pages[: self.cache.capacity]):
            if key not in self.cache:
                self.cache.put(key, value)

    # -- VFS methods

    def xFullPathname(self, name: str) -> str:
        return name

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> apsw.VFSFile:
        filename = name.filename() if isinstance(name, apsw.URIFilename) else name
        if filename is None or flags[0] & apsw.SQLITE_OPEN_DELETEONCLOSE:
            return MemoryFile()  # type: ignore[return-value]
        state = self._files.get(filename)
        if state is None:
            raise apsw.CantOpenError(f"the KV VFS only stores {self.db_name!r} and its journal")
        self._load(state)
        if not state.exists:
            if not flags[0] & apsw.SQLITE_OPEN_CREATE:
                raise apsw.CantOpenError(f"{filename!r} does not exist")
            state.exists, state.size, state.meta_dirty = True, 0, True
        flags[1] = flags[0]
        return KvFile(self, state)  # type: ignore[return-value]

    def xAccess(self, pathname: str, flags: int) -> bool:
        state = self._files.get(pathname)
        if state is None:
            return False
        self._load(state)
        return state.exists

    def xDelete(self, filename: str, syncdir: bool) -> None:
        state = self._files.get(filename)
        if state is not None:
            self.delete_file(state)

    # -- file operations

    def _load(self, state: KvFileState) -> None:
        """Learn whether ``state``'s file exists and its size; the first call asks for every file
        in one KV get (SQLite checks the journal and WAL right after opening the database)."""
        if state.loaded:
            return
        pending = [s for s in self._files.values() if not s.loaded]
        values = self.store.get_many([meta_key(s.tag) for s in pending])
        for each, value in zip(pending, values, strict=True):
            each.loaded = True
            if value is not None:
                each.exists = each.meta_stored = True
                each.size = each.durable = decode_size(value)

    def _fetch(self, state: KvFileState, indexes: list[int]) -> dict[int, bytes]:
        """Current contents of whole chunks, with at most one KV get for all that miss."""
        found: dict[int, bytes] = {}
        missing: list[int] = []
        indexes_set = set(indexes)
        for index in indexes:
            key = chunk_key(state.tag, index)
            dirty = state.dirty.get(index)
            if dirty is not None:
                found[index] = dirty
            elif index * CHUNK_SIZE >= state.durable:
                found[index] = _ZERO_CHUNK
            elif (cached := self.cache.get(key)) is not None:
                self.store.stats.cache_hits += 1
                found[index] = cached
            else:
                missing.append(index)
        if missing:
            wanted = missing + self._readahead(state, max(missing))
            values = self.store.get_many([chunk_key(state.tag, i) for i in wanted])
            for index, stored in zip(wanted, values, strict=True):
                if stored is None:
                    log.warning(
                        "sqlite chunk missing from KV: reading zeros",
                        extra={"db": self.store.label, "tag": state.tag, "chunk": index},
                    )
                    stored = _ZERO_CHUNK  # noqa: PLW2901
                chunk = stored[:CHUNK_SIZE].ljust(CHUNK_SIZE, b"\0")
                self.cache.put(chunk_key(state.tag, index), chunk)
                if index in indexes_set:
                    found[index] = chunk
        return found

    def _readahead(self, state: KvFileState, after: int) -> list[int]:
        if state.tag != TAG_MAIN:
            return []
        extra: list[int] = []
        for index in range(after + 1, after + 1 + self.readahead):
            if index * CHUNK_SIZE >= state.durable:
                break
            if index not in state.dirty and chunk_key(state.tag, index) not in self.cache:
                extra.append(index)
        return extra

    def read(self, state: KvFileState, amount: int, offset: int) -> bytes:
        end = min(offset + amount, state.size)
        if offset >= end:
            return b""
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        found = self._fetch(state, list(range(first, last + 1)))
        data = b"".join(found[i] for i in range(first, last + 1))
        start = offset - first * CHUNK_SIZE
        return data[start : start + end - offset]

    def write(self, state: KvFileState, data: bytes, offset: int) -> None:
        end = offset + len(data)
        if not data:
            return
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        partial = [
            i for i in {first, last} if offset > i * CHUNK_SIZE or end < (i + 1) * CHUNK_SIZE
        ]
        bases = self._fetch(state, sorted(partial))
        for index in range(first, last + 1):
            lo = max(offset, index * CHUNK_SIZE)
            hi = min(end, (index + 1) * CHUNK_SIZE)
            piece = data[lo - offset : hi - offset]
            if index in bases:
                chunk = bytearray(bases[index])
                chunk[lo - index * CHUNK_SIZE : hi - index * CHUNK_SIZE] = piece
                state.dirty[index] = bytes(chunk)
            else:
                state.dirty[index] = piece
            state.doomed.discard(index)
        if end > state.size:
            state.size, state.meta_dirty = end, True

    def truncate(self, state: KvFileState, size: int) -> None:
        if size >= state.size:
            if size > state.size:
                state.size, state.meta_dirty = size, True
            return
        keep = _chunks(size)
        for index in range(keep, _chunks(state.size)):
            state.dirty.pop(index, None)
            self.cache.drop(chunk_key(state.tag, index))
            if index * CHUNK_SIZE < state.durable:
                state.doomed.add(index)
        if size % CHUNK_SIZE:
            # keep "bytes past the size are zero" for the new last chunk
            index = keep - 1
            base = self._fetch(state, [index])[index]
            cut = size - index * CHUNK_SIZE
            state.dirty[index] = base[:cut] + bytes(CHUNK_SIZE - cut)
        state.size, state.durable = size, min(state.durable, size)
        state.meta_dirty = True
        # SQLite may truncate after its last sync of a commit (VACUUM): do it now, as a file
        # system would, with everything buffered before it
        self.sync(state)

    def sync(self, state: KvFileState) -> None:
        """Write the file's buffered chunks and size to KV; see the module doc for the order."""
        if not state.exists:
            return
        for index in range(_chunks(state.durable), _chunks(state.size)):
            # never written since it grew: overwrite whatever an interrupted delete left there
            state.dirty.setdefault(index, _ZERO_CHUNK)
        order = sorted(state.dirty, key=lambda i: (i == 0, i))
        entries = [(chunk_key(state.tag, i), state.dirty[i]) for i in order]
        # a file never given a size in KV needs none while it is empty (absent == empty)
        write_meta = state.meta_dirty and (state.meta_stored or state.size > 0)
        if write_meta:
            entries.append((meta_key(state.tag), encode_size(state.size)))
        if entries:
            self.store.put(entries)
            for key, value in entries[: len(order)]:
                self.cache.put(key, value)
            state.dirty.clear()
            state.durable = state.size
            if write_meta:
                state.meta_dirty, state.meta_stored = False, True
        if state.doomed:
            self.store.delete([chunk_key(state.tag, i) for i in sorted(state.doomed)])
            state.doomed.clear()

    def delete_file(self, state: KvFileState) -> None:
        stale = set(range(_chunks(state.durable))) | state.doomed
        doomed = [meta_key(state.tag)] if state.meta_stored else []
        doomed += [chunk_key(state.tag, i) for i in sorted(stale)]
        if doomed:
            # the size first: the file is gone once it is (the first request of the delete)
            self.store.delete(doomed)
        state.exists = state.meta_stored = state.meta_dirty = False
        state.loaded = True
        state.size = state.durable = 0
        state.dirty.clear()
        state.doomed.clear()
        for index in stale:
            self.cache.drop(chunk_key(state.tag, index))


class KvFile:
    """A handle on one :class:`KvFileState`; locks are no-ops (one connection, one process)."""

    def __init__(self, vfs: KvVfs, state: KvFileState) -> None:
        self._vfs = vfs
        self._state = state
        self._lock = apsw.SQLITE_LOCK_NONE
        self._closed = False

    def xRead(self, amount: int, offset: int) -> bytes:
        return self._vfs.read(self._state, amount, offset)

    def xWrite(self, data: bytes, offset: int) -> None:
        self._vfs.write(self._state, bytes(data), offset)

    def xTruncate(self, newsize: int) -> None:
        self._vfs.truncate(self._state, newsize)

    def xSync(self, flags: int) -> None:
        self._vfs.sync(self._state)

    def xFileSize(self) -> int:
        return self._state.size

    def xClose(self) -> None:
        if self._closed:
            return
        self._closed = True
        state = self._state
        if state.exists and (state.dirty or state.doomed or state.meta_dirty):
            self._vfs.sync(state)

    def xLock(self, level: int) -> None:
        self._lock = max(self._lock, level)

    def xUnlock(self, level: int) -> None:
        self._lock = level

    def xCheckReservedLock(self) -> bool:
        return self._lock >= apsw.SQLITE_LOCK_RESERVED

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return CHUNK_SIZE

    def xDeviceCharacteristics(self) -> int:
        # SAFE_APPEND holds: a sync writes the size after (or with) the chunks it covers
        return int(apsw.SQLITE_IOCAP_SAFE_APPEND | apsw.SQLITE_IOCAP_POWERSAFE_OVERWRITE)


class MemoryFile:
    """A temporary file in memory (SQLite deletes it on close)."""

    def __init__(self) -> None:
        self._data = bytearray()

    def xRead(self, amount: int, offset: int) -> bytes:
        return bytes(self._data[offset : offset + amount])

    def xWrite(self, data: bytes, offset: int) -> None:
        if len(self._data) < offset:
            self._data.extend(bytes(offset - len(self._data)))
        self._data[offset : offset + len(data)] = data

    def xTruncate(self, newsize: int) -> None:
        del self._data[newsize:]

    def xSync(self, flags: int) -> None:
        pass

    def xFileSize(self) -> int:
        return len(self._data)

    def xClose(self) -> None:
        self._data = bytearray()

    def xLock(self, level: int) -> None:
        pass

    def xUnlock(self, level: int) -> None:
        pass

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return CHUNK_SIZE

    def xDeviceCharacteristics(self) -> int:
        return 0
