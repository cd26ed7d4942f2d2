"""An independent in-memory oracle of ``batch_preload`` (kv-preload.md §4.3, with the §4.4 fix)
and helpers to load actor data through ActorKv."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from codec import v8
from rivetpy.engine.kv import MAX_KEYS, ActorKv
from rivetpy.engine.preload import PrefixRequest

VERSION = b"0.1.0"
TS = 1_700_000_000_000


def size_of(key: bytes, value: bytes) -> int:
    return len(key) + len(value) + len(VERSION) + 8


def in_prefix(key: bytes, prefix: bytes) -> bool:
    """Prefix scan membership, including the §8.3 edge (``ff`` right after the prefix)."""
    return key.startswith(prefix) and key[len(prefix) : len(prefix) + 1] != b"\xff"


def oracle(
    data: Mapping[bytes, bytes],
    get_keys: Sequence[bytes],
    prefixes: Sequence[PrefixRequest],
    max_total: int,
) -> v8.PreloadedKv:
    meta = v8.KvMetadata(VERSION, TS)
    entries: list[v8.PreloadedKvEntry] = []
    total = 0
    req_keys: list[bytes] = []
    req_prefixes: list[bytes] = []
    taken: set[bytes] = set()
    for key in dict.fromkeys(get_keys):
        if total >= max_total:
            break
        if key not in data:
            req_keys.append(key)
        elif total + size_of(key, data[key]) <= max_total:
            entries.append(v8.PreloadedKvEntry(key, data[key], meta))
            total += size_of(key, data[key])
            req_keys.append(key)
            taken.add(key)
    for req in prefixes:
        limit = min(req.max_bytes, max(0, max_total - total))
        if limit == 0:
            continue
        found: list[v8.PreloadedKvEntry] = []
        used = 0
        exceeded = False
        for key in sorted(k for k in data if in_prefix(k, req.prefix)):
            if key in taken:
                continue
            if used + size_of(key, data[key]) > limit:
                exceeded = True
                break
            used += size_of(key, data[key])
            found.append(v8.PreloadedKvEntry(key, data[key], meta))
        if exceeded and not (req.partial and found):
            continue  # a partial prefix cut before its first entry is not "scanned, empty"
        req_prefixes.append(req.prefix)
        total += used
        entries.extend(found)
        taken.update(e.key for e in found)
    return v8.PreloadedKv(entries, req_keys, req_prefixes)


async def load(kv: ActorKv, actor: str, data: Mapping[bytes, bytes]) -> None:
    """Write ``data`` with KV puts that respect the request limits."""
    batch_keys: list[bytes] = []
    batch_values: list[bytes] = []
    payload = 0
    for key, value in data.items():
        size = len(key) + 2 + len(value)
        if batch_keys and (len(batch_keys) == MAX_KEYS or payload + size > 900_000):
            await kv.put(actor, batch_keys, batch_values)
            batch_keys, batch_values, payload = [], [], 0
        batch_keys.append(key)
        batch_values.append(value)
        payload += size
    if batch_keys:
        await kv.put(actor, batch_keys, batch_values)
