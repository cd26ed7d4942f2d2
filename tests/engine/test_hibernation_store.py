"""The durable hibernating-request store (hibernation.md §5), on every store backend."""

from __future__ import annotations

import os

from rivetpy.engine import hibernation_store as hs
from rivetpy.engine.ids import id_from_bytes, new_id
from rivetpy.engine.store import KeyValue, ReadTransaction, Store, Transaction

NOW = 1_700_000_000_000
THRESHOLD = hs.ELIGIBLE_THRESHOLD_MS


def sock() -> tuple[bytes, bytes]:
    return os.urandom(4), os.urandom(4)


async def upsert(store: Store, actor: str, key: tuple[bytes, bytes], ts: int) -> None:
    async def body(tr: Transaction) -> None:
        await hs.upsert(tr, actor, key[0], key[1], ts)

    await store.run(body)


async def delete(store: Store, actor: str, key: tuple[bytes, bytes]) -> None:
    async def body(tr: Transaction) -> None:
        await hs.delete(tr, actor, key[0], key[1])

    await store.run(body)


async def listed(
    store: Store, actor: str, now: int = NOW, threshold: int = THRESHOLD
) -> list[tuple[bytes, bytes]]:
    async def body(tr: ReadTransaction) -> list[tuple[bytes, bytes]]:
        return await hs.list_eligible(tr, actor, now, threshold)

    return await store.read(body)


async def index_rows(store: Store, actor: str) -> list[KeyValue]:
    prefix = hs.actor_index_prefix(actor)

    async def body(tr: ReadTransaction) -> list[KeyValue]:
        return await tr.get_range(prefix, prefix + b"\xff")

    return await store.read(body)


async def pointer(store: Store, key: tuple[bytes, bytes]) -> bytes | None:
    async def body(tr: ReadTransaction) -> bytes | None:
        return await tr.get(hs.last_ping_key(*key))

    return await store.read(body)


def test_key_layout_matches_the_spec_example() -> None:
    actor = id_from_bytes(bytes.fromhex("0100112233445566778899aabbccddeeff0001"))
    gw, req = bytes.fromhex("0a000000"), bytes.fromhex("2a00ff10")
    assert hs.index_key(actor, 1_700_000_000_000, gw, req) == bytes.fromhex(
        "141503152015284001001122334455667788 99aabbccddeeff0001"
        "1a018bcfe56800 010a00ff00ff00ff00 012a00ffff1000".replace(" ", "")
    )
    assert hs.last_ping_key(gw, req) == bytes.fromhex(
        "141503152815 04 010a00ff00ff00ff00 012a00ffff1000 1518".replace(" ", "")
    )


async def test_upsert_list_delete(store: Store) -> None:
    actor, a = new_id(), sock()
    assert await listed(store, actor) == []
    await upsert(store, actor, a, NOW - 10)
    assert await listed(store, actor) == [a]
    assert await pointer(store, a) == (NOW - 10).to_bytes(8, "big", signed=True)
    await delete(store, actor, a)
    assert await listed(store, actor) == []
    assert await index_rows(store, actor) == []
    assert await pointer(store, a) is None
    # deleting an unknown request is a no-op
    await delete(store, actor, a)


async def test_stale_entries_are_not_listed_but_kept(store: Store) -> None:
    actor, fresh, edge, stale = new_id(), sock(), sock(), sock()
    await upsert(store, actor, stale, NOW - THRESHOLD - 1)
    await upsert(store, actor, edge, NOW - THRESHOLD)
    await upsert(store, actor, fresh, NOW - 5)
    assert await listed(store, actor) == [edge, fresh]
    # no GC on list: the stale index entry stays until its socket is upserted or deleted
    assert len(await index_rows(store, actor)) == 3
    await delete(store, actor, stale)
    assert len(await index_rows(store, actor)) == 2


async def test_reupsert_moves_the_index_entry(store: Store) -> None:
    actor, a, b = new_id(), sock(), sock()
    await upsert(store, actor, a, NOW - THRESHOLD - 100)
    await upsert(store, actor, b, NOW - 50)
    assert await listed(store, actor) == [b]
    await upsert(store, actor, a, NOW - 10)
    assert await listed(store, actor) == [b, a]
    rows = await index_rows(store, actor)
    assert [r.key for r in rows] == [
        hs.index_key(actor, NOW - 50, *b),
        hs.index_key(actor, NOW - 10, *a),
    ]
    assert await pointer(store, a) == (NOW - 10).to_bytes(8, "big", signed=True)


async def test_ordered_by_last_ping_ascending(store: Store) -> None:
    actor = new_id()
    socks = [sock() for _ in range(5)]
    times = [NOW - 3, NOW - 1000, NOW, NOW - 40_000, NOW - 2]
    for key, ts in zip(socks, times, strict=True):
        await upsert(store, actor, key, ts)
    expected = [k for _, k in sorted(zip(times, socks, strict=True))]
    assert await listed(store, actor) == expected


async def test_per_actor_isolation(store: Store) -> None:
    a1, a2 = new_id(), new_id()
    k1, k2 = sock(), sock()
    await upsert(store, a1, k1, NOW - 1)
    await upsert(store, a2, k2, NOW - 2)
    assert await listed(store, a1) == [k1]
    assert await listed(store, a2) == [k2]
    await delete(store, a1, k1)
    assert await listed(store, a1) == []
    assert await listed(store, a2) == [k2]


async def test_operations_compose_in_one_transaction(store: Store) -> None:
    actor, a, b = new_id(), sock(), sock()

    async def body(tr: Transaction) -> list[tuple[bytes, bytes]]:
        await hs.upsert(tr, actor, a[0], a[1], NOW - 20)
        await hs.upsert(tr, actor, b[0], b[1], NOW - 30)
        await hs.upsert(tr, actor, a[0], a[1], NOW - 10)
        await hs.delete(tr, actor, b[0], b[1])
        return await hs.list_eligible(tr, actor, NOW, THRESHOLD)

    assert await store.run(body) == [a]
    assert await listed(store, actor) == [a]
    assert len(await index_rows(store, actor)) == 1
