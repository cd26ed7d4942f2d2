"""Actor KV operations on a store, with the engine's layout and limits.

Each operation is one store transaction. Limits are checked before anything is written, so a
rejected request (:class:`KvLimitError`) writes nothing; :meth:`ActorKv.handle` turns it into a
``KvErrorResponse`` with the same message. The caller (the engine core) is responsible for
running requests only for actors assigned to the requesting runner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from codec import v8
from rivetpy import __version__
from rivetpy.engine.kv.entry import CorruptEntryError, Entry, EntryAssembler, encode_metadata
from rivetpy.engine.kv.layout import VALUE_CHUNK_SIZE, ActorKvLayout
from rivetpy.engine.kv.limits import (
    DEFAULT_LIST_LIMIT,
    MAX_STORAGE_SIZE,
    KvError,
    check_quota,
    validate_keys,
    validate_list_query,
    validate_put,
    validate_range,
)
from rivetpy.engine.store.api import ReadTransaction, Store, StoreError, Transaction
from rivetpy.engine.store.ranges import RangePages

log = logging.getLogger("rivetpy.engine.kv")

#: ``KvMetadata.version`` written with every entry: the engine's version string.
ENGINE_VERSION = __version__.encode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _response(entries: list[Entry]) -> tuple[list[bytes], list[bytes], list[v8.KvMetadata]]:
    return [e.key for e in entries], [e.value for e in entries], [e.metadata for e in entries]


async def read_entries(
    tr: ReadTransaction, layout: ActorKvLayout, keys: Sequence[bytes], *, snapshot: bool = False
) -> list[Entry | None]:
    """The entry of each key (``None`` if absent), read in one round trip."""
    rows = await tr.get_ranges([layout.entry_range(k) for k in keys], snapshot=snapshot)
    out: list[Entry | None] = []
    for key_rows in rows:
        asm = EntryAssembler(layout)
        for row in key_rows:
            asm.feed(row)
        out.append(asm.finish())
    return out


class ActorKv:
    """Actor KV over ``store``. ``quota`` is the per-actor storage limit in bytes."""

    def __init__(
        self,
        store: Store,
        *,
        version: bytes = ENGINE_VERSION,
        clock: Callable[[], int] = now_ms,
        quota: int = MAX_STORAGE_SIZE,
    ) -> None:
        self.store = store
        self.version = version
        self.clock = clock
        self.quota = quota

    async def get(self, actor_id: str, keys: Sequence[bytes]) -> v8.KvGetResponse:
        """Entries of the keys that exist, in request order (absent keys are omitted)."""
        validate_keys(keys)
        layout = ActorKvLayout(actor_id)
        wanted = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]

        async def body(tr: ReadTransaction) -> list[Entry | None]:
            return await read_entries(tr, layout, wanted)

        found = [e for e in await self.store.read(body) if e is not None]
        return v8.KvGetResponse(*_response(found))

    async def list(
        self,
        actor_id: str,
        query: v8.KvListQuery,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> v8.KvListResponse:
        """Entries in the query's range, in key order (or reverse), at most ``limit``
        (default :data:`DEFAULT_LIST_LIMIT`)."""
        validate_list_query(query, limit)
        layout = ActorKvLayout(actor_id)
        begin, end = layout.list_range(query)
        max_entries = DEFAULT_LIST_LIMIT if limit is None else limit

        async def body(tr: ReadTransaction) -> list[Entry]:
            entries: list[Entry] = []
            if max_entries == 0:
                return entries
            asm = EntryAssembler(layout)
            async for page in RangePages(tr, begin, end, reverse=reverse):
                for row in page:
                    done = asm.feed(row)
                    if done is not None:
                        entries.append(done)
                        if len(entries) >= max_entries:
                            return entries
            last = asm.finish()
            if last is not None:
                entries.append(last)
            return entries

        return v8.KvListResponse(*_response(await self.store.read(body)))

    async def put(self, actor_id: str, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        """Replace the entries (all or nothing). Raises :class:`KvLimitError`."""
        payload = validate_put(keys, values)
        layout = ActorKvLayout(actor_id)
        metadata = encode_metadata(v8.KvMetadata(self.version, self.clock()))
        pairs = list(zip(keys, values, strict=True))

        async def body(tr: Transaction) -> None:
            stored = await tr.get_estimated_range_size_bytes(*layout.all_range())
            check_quota(stored, payload, self.quota)
            for key, value in pairs:
                tr.clear_range(*layout.entry_range(key))
                tr.set(layout.metadata_key(key), metadata)
                for index, start in enumerate(range(0, len(value), VALUE_CHUNK_SIZE)):
                    tr.set(layout.chunk_key(key, index), value[start : start + VALUE_CHUNK_SIZE])

        await self.store.run(body)

    async def delete(self, actor_id: str, keys: Sequence[bytes]) -> None:
        validate_keys(keys)
        layout = ActorKvLayout(actor_id)

        async def body(tr: Transaction) -> None:
            for key in keys:
                tr.clear_range(*layout.entry_range(key))

        await self.store.run(body)

    async def delete_range(self, actor_id: str, start: bytes, end: bytes) -> None:
        """Delete entries with ``start <= key < end``; nothing if ``start >= end``."""
        validate_range(start, end)
        if start >= end:
            return
        begin, stop = ActorKvLayout(actor_id).delete_range_bounds(start, end)

        async def body(tr: Transaction) -> None:
            tr.clear_range(begin, stop)

        await self.store.run(body)

    async def drop(self, actor_id: str) -> None:
        """Delete every entry of the actor."""
        begin, end = ActorKvLayout(actor_id).all_range()

        async def body(tr: Transaction) -> None:
            tr.clear_range(begin, end)

        await self.store.run(body)

    async def handle(self, actor_id: str, request: v8.KvRequestData) -> v8.KvResponseData:
        """Execute a runner's KV request; every failure becomes a ``KvErrorResponse``."""
        try:
            match request:
                case v8.KvGetRequest(keys):
                    return await self.get(actor_id, keys)
                case v8.KvListRequest(query, reverse, limit):
                    return await self.list(actor_id, query, reverse=bool(reverse), limit=limit)
                case v8.KvPutRequest(keys, values):
                    await self.put(actor_id, keys, values)
                    return v8.KvPutResponse()
                case v8.KvDeleteRequest(keys):
                    await self.delete(actor_id, keys)
                    return v8.KvDeleteResponse()
                case v8.KvDeleteRangeRequest(start, end):
                    await self.delete_range(actor_id, start, end)
                    return v8.KvDeleteResponse()
                case v8.KvDropRequest():
                    await self.drop(actor_id)
                    return v8.KvDropResponse()
        except KvError as exc:
            return v8.KvErrorResponse(exc.message)
        except CorruptEntryError as exc:
            log.error("corrupt KV entry", extra={"actor_id": actor_id, "error": str(exc)})
            return v8.KvErrorResponse(str(exc))
        except StoreError as exc:
            log.error("KV store failure", extra={"actor_id": actor_id, "error": repr(exc)})
            return v8.KvErrorResponse(f"internal error: {exc}")
        raise TypeError(f"unknown KV request {request!r}")
