"""Actor startup KV preload: ``batch_preload`` and ``fetch_preloaded_kv`` (kv-preload.md §4).

The "requested" lists carry the core contract (§1): a get-key is listed only if it is known
absent or its entry is in ``entries`` (the budget-bug fix, §4.4); a prefix is listed only if it
was scanned completely, or, for a *partial* prefix, truncated after the leading entries that fit.
Skipped keys and prefixes are not listed, so the runtime falls back to KV reads for them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codec import v8
from rivetpy.actor import keys as actor_keys
from rivetpy.engine.actor_names import read_actor_name_metadata
from rivetpy.engine.config import PegboardConfig, as_u64
from rivetpy.engine.kv.actor_kv import read_entries
from rivetpy.engine.kv.entry import CorruptEntryError, Entry, EntryAssembler, entry_size
from rivetpy.engine.kv.layout import ActorKvLayout
from rivetpy.engine.store.api import ReadTransaction, Store, StoreError
from rivetpy.engine.store.ranges import RangePages

log = logging.getLogger("rivetpy.engine.preload")

# The runtime's key constants (one definition, shared with the actor runtime, which reads
# exactly these keys at startup).
PERSIST_DATA = actor_keys.PERSIST_DATA
CONN_PREFIX = actor_keys.CONNECTIONS
INSPECTOR_TOKEN = actor_keys.INSPECTOR_TOKEN
QUEUE_METADATA = actor_keys.QUEUE_METADATA
WORKFLOW_PREFIX = actor_keys.WORKFLOW
SQLITE_PREFIX = actor_keys.SQLITE
#: Exact keys read at startup, in order.
STARTUP_GET_KEYS = actor_keys.PRELOAD_GET_KEYS

# Actor-name metadata keys overriding the per-prefix budgets.
OVERRIDE_SQLITE = "preloadMaxSqliteBytes"
OVERRIDE_WORKFLOW = "preloadMaxWorkflowBytes"
OVERRIDE_CONNECTIONS = "preloadMaxConnectionsBytes"


@dataclass(frozen=True, slots=True)
class PrefixRequest:
    """Preload entries under ``prefix`` up to ``max_bytes``. ``partial``: keep the leading
    entries that fit when the data exceeds the limit (per-key lookups only); otherwise all or
    nothing."""

    prefix: bytes
    max_bytes: int
    partial: bool


def startup_preload_params(
    config: PegboardConfig, metadata: Mapping[str, Any]
) -> tuple[list[bytes], list[PrefixRequest]] | None:
    """The startup get-keys and prefix requests (descending priority: sqlite, workflows,
    connections) with per-actor overrides applied; ``None`` if preloading is disabled."""
    if config.preload_max_total_bytes == 0:
        return None

    def budget(name: str, default: int) -> int:
        override = as_u64(metadata.get(name))
        return default if override is None else override

    prefixes = [
        PrefixRequest(
            SQLITE_PREFIX, budget(OVERRIDE_SQLITE, config.preload_max_sqlite_bytes), True
        ),
        PrefixRequest(
            WORKFLOW_PREFIX, budget(OVERRIDE_WORKFLOW, config.preload_max_workflow_bytes), False
        ),
        PrefixRequest(
            CONN_PREFIX, budget(OVERRIDE_CONNECTIONS, config.preload_max_connections_bytes), False
        ),
    ]
    return list(STARTUP_GET_KEYS), prefixes


async def _scan_prefix(
    tr: ReadTransaction, layout: ActorKvLayout, prefix: bytes, limit: int, seen: set[bytes]
) -> tuple[list[Entry], int, bool]:
    """Leading entries of ``prefix`` within ``limit`` bytes: ``(entries, bytes, exceeded)``.

    Stops reading at the first entry that does not fit. Entries already in ``seen`` (get-keys)
    count as present but are neither repeated nor charged again.
    """
    entries: list[Entry] = []
    used = 0
    asm = EntryAssembler(layout)

    def take(entry: Entry) -> bool:
        nonlocal used
        if entry.key in seen:
            return True
        size = entry_size(entry)
        if used + size > limit:
            return False
        used += size
        entries.append(entry)
        return True

    async for page in RangePages(tr, *layout.prefix_range(prefix), snapshot=True, first_page=64):
        for row in page:
            done = asm.feed(row)
            if done is not None and not take(done):
                return entries, used, True
    last = asm.finish()
    if last is not None and not take(last):
        return entries, used, True
    return entries, used, False


async def preload_in_transaction(
    tr: ReadTransaction,
    actor_id: str,
    get_keys: Sequence[bytes],
    prefix_requests: Sequence[PrefixRequest],
    max_total: int,
) -> v8.PreloadedKv:
    """The body of :func:`batch_preload` (snapshot reads only; state is fresh per attempt)."""
    layout = ActorKvLayout(actor_id)
    entries: list[Entry] = []
    total = 0
    requested_get_keys: list[bytes] = []
    requested_prefixes: list[bytes] = []
    seen: set[bytes] = set()

    # Phase 1: exact get-keys, in order. They are read together in one round trip; keys skipped
    # for lack of budget are dropped unrecorded, exactly as if they had not been read.
    unique_keys = list(dict.fromkeys(get_keys)) if max_total > 0 else []
    found = await read_entries(tr, layout, unique_keys, snapshot=True) if unique_keys else []
    for i, (key, entry) in enumerate(zip(unique_keys, found, strict=True)):
        if total >= max_total:
            log.debug(
                "preload get-keys skipped due to global budget exhaustion",
                extra={"actor_id": actor_id, "skipped_keys": len(unique_keys) - i},
            )
            break
        if entry is None:
            requested_get_keys.append(key)  # known absent
            continue
        size = entry_size(entry)
        if total + size <= max_total:
            entries.append(entry)
            seen.add(key)
            total += size
            requested_get_keys.append(key)
        else:  # exists but does not fit: leave it unrecorded so the runtime reads it (§4.4)
            log.debug(
                "preload get-key skipped due to global budget exhaustion",
                extra={"actor_id": actor_id, "key": key.hex(), "size": size},
            )

    # Phase 2: prefixes in descending priority.
    for request in prefix_requests:
        remaining = max(0, max_total - total)
        limit = min(request.max_bytes, remaining)
        if limit <= 0:
            log.debug(
                "preload prefix skipped, effective limit is 0",
                extra={
                    "actor_id": actor_id,
                    "prefix": request.prefix.hex(),
                    "max_bytes": request.max_bytes,
                    "remaining": remaining,
                },
            )
            continue
        found_entries, used, exceeded = await _scan_prefix(tr, layout, request.prefix, limit, seen)
        if exceeded and not (request.partial and found_entries):
            # A partial prefix cut before its first entry is not recorded either: "requested
            # with no entries" would tell the runtime the prefix is empty (for SQLite: a new
            # database) when it is not.
            log.debug(
                "preload prefix exceeded its limit, discarding it",
                extra={
                    "actor_id": actor_id,
                    "prefix": request.prefix.hex(),
                    "limit": limit,
                    "partial": request.partial,
                },
            )
            continue
        if exceeded:
            log.debug(
                "preload prefix truncated (partial: true), keeping leading entries",
                extra={"actor_id": actor_id, "prefix": request.prefix.hex(), "bytes": used},
            )
        requested_prefixes.append(request.prefix)
        total += used
        entries.extend(found_entries)
        seen.update(e.key for e in found_entries)

    return v8.PreloadedKv(entries, requested_get_keys, requested_prefixes)


async def batch_preload(
    store: Store,
    actor_id: str,
    get_keys: Sequence[bytes],
    prefix_requests: Sequence[PrefixRequest],
    max_total: int,
) -> v8.PreloadedKv:
    """Read the get-keys, then the prefixes, in one snapshot transaction (§4.3).

    ``total`` (Σ :func:`entry_size` of ``entries``) never exceeds ``max_total``. Raises
    :class:`StoreError` or :class:`CorruptEntryError` if the read fails.
    """

    async def body(tr: ReadTransaction) -> v8.PreloadedKv:
        return await preload_in_transaction(tr, actor_id, get_keys, prefix_requests, max_total)

    return await store.read(body)


async def fetch_preloaded_kv(
    store: Store,
    config: PegboardConfig,
    actor_id: str,
    namespace_id: str,
    actor_name: str,
) -> v8.PreloadedKv | None:
    """The ``preloadedKv`` of a start command, or ``None`` (disabled, or the read failed).

    Reads the actor-name overrides and the preload in one snapshot transaction. Never raises
    for a failed read: preloading is an optimization, so the failure is logged and the start
    command goes out without preload (the actor falls back to KV reads). Cancellation
    propagates.
    """
    if config.preload_max_total_bytes == 0:
        return None

    async def body(tr: ReadTransaction) -> v8.PreloadedKv | None:
        metadata = await read_actor_name_metadata(tr, namespace_id, actor_name)
        params = startup_preload_params(config, metadata)
        if params is None:
            return None
        get_keys, prefixes = params
        return await preload_in_transaction(
            tr, actor_id, get_keys, prefixes, config.preload_max_total_bytes
        )

    fields = {"actor_id": actor_id, "namespace_id": namespace_id, "actor_name": actor_name}
    try:
        return await store.read(body)
    except (StoreError, CorruptEntryError) as exc:
        log.warning(
            "KV preload failed; starting the actor without preload",
            extra={**fields, "error": repr(exc)},
        )
    except Exception:
        log.exception("KV preload crashed; starting the actor without preload", extra=fields)
    return None
