"""Actor KV: every operation and limit on the engine layout (kv-preload.md §8, §9)."""

from __future__ import annotations

import pytest
import trio

from codec import v8
from rivetpy.engine.ids import new_id
from rivetpy.engine.kv import (
    MAX_KEY_SIZE,
    MAX_KEYS,
    MAX_PUT_PAYLOAD_SIZE,
    MAX_VALUE_SIZE,
    VALUE_CHUNK_SIZE,
    ActorKv,
    ActorKvLayout,
    CorruptEntryError,
    KvLimitError,
    KvStorageQuotaError,
    encode_metadata,
)
from rivetpy.engine.kv import actor_kv as actor_kv_module
from rivetpy.engine.store import KeyValue, ReadTransaction, Store, Transaction

TIMEOUT = 30
TS = 1_700_000_000_000


@pytest.fixture
async def kv(store: Store) -> ActorKv:
    return ActorKv(store, clock=lambda: TS)


@pytest.fixture
def actor() -> str:
    return new_id()


async def rows(store: Store, actor: str) -> list[KeyValue]:
    async def body(tr: ReadTransaction) -> list[KeyValue]:
        return await tr.get_range(*ActorKvLayout(actor).all_range())

    return await store.read(body)


def pairs(resp: v8.KvGetResponse | v8.KvListResponse) -> list[tuple[bytes, bytes]]:
    return list(zip(resp.keys, resp.values, strict=True))


@pytest.mark.parametrize("size", [1, 9_999, 10_000, 10_001, 20_000, 20_001, MAX_VALUE_SIZE])
async def test_values_are_chunked_at_10000_bytes(
    kv: ActorKv, store: Store, actor: str, size: int
) -> None:
    with trio.fail_after(TIMEOUT):
        value = bytes(i % 251 for i in range(size))
        await kv.put(actor, [b"k"], [value])
        layout = ActorKvLayout(actor)
        stored = await rows(store, actor)
        n_chunks = -(-size // VALUE_CHUNK_SIZE)
        assert [r.key for r in stored] == [layout.chunk_key(b"k", i) for i in range(n_chunks)] + [
            layout.metadata_key(b"k")
        ]
        assert [len(r.value) for r in stored[:-1]] == [
            min(VALUE_CHUNK_SIZE, size - i * VALUE_CHUNK_SIZE) for i in range(n_chunks)
        ]
        assert stored[-1].value == encode_metadata(v8.KvMetadata(b"0.1.0", TS))
        got = await kv.get(actor, [b"k"])
        assert pairs(got) == [(b"k", value)]
        assert got.metadata == [v8.KvMetadata(b"0.1.0", TS)]
        listed = await kv.list(actor, v8.KvListAllQuery(), reverse=True)
        assert pairs(listed) == [(b"k", value)]  # reverse reassembles chunks in index order


async def test_overwrite_replaces_all_chunks(kv: ActorKv, store: Store, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [b"k"], [b"x" * 20_000])
        await kv.put(actor, [b"k"], [b"short"])
        assert len(await rows(store, actor)) == 2
        assert pairs(await kv.get(actor, [b"k"])) == [(b"k", b"short")]


async def test_get_keeps_request_order_and_omits_absent_keys(kv: ActorKv, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [b"a", b"b", b""], [b"1", b"2", b"empty-key"])
        got = await kv.get(actor, [b"b", b"zz", b"a", b"a", b""])
        assert pairs(got) == [(b"b", b"2"), (b"a", b"1"), (b"", b"empty-key")]
        assert pairs(await kv.get(actor, [])) == []
        other = await kv.get(new_id(), [b"a"])  # actors are isolated
        assert other.keys == []


async def test_list_queries(kv: ActorKv, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        keys = [
            b"\x02a",
            b"\x02b",
            b"\x02",
            b"\x02\x00",
            b"\x03",
            b"\x08\x01\x00",
            b"a",
            b"b",
            b"c",
        ]
        await kv.put(actor, keys, [k + b"!" for k in keys])

        async def ls(query: v8.KvListQuery, **kw: object) -> list[bytes]:
            return (await kv.list(actor, query, **kw)).keys  # type: ignore[arg-type]

        assert await ls(v8.KvListAllQuery()) == sorted(keys)
        assert await ls(v8.KvListAllQuery(), reverse=True, limit=2) == sorted(keys)[::-1][:2]
        assert await ls(v8.KvListAllQuery(), limit=0) == []
        assert await ls(v8.KvListPrefixQuery(b"\x02")) == [b"\x02", b"\x02\x00", b"\x02a", b"\x02b"]
        assert await ls(v8.KvListPrefixQuery(b"\x02"), reverse=True, limit=1) == [b"\x02b"]
        assert await ls(v8.KvListPrefixQuery(b"\x08")) == [b"\x08\x01\x00"]
        assert await ls(v8.KvListPrefixQuery(b"zz")) == []
        assert await ls(v8.KvListRangeQuery(b"a", b"c", False)) == [b"a", b"b", b"c"]
        assert await ls(v8.KvListRangeQuery(b"a", b"c", True)) == [b"a", b"b"]
        assert await ls(v8.KvListRangeQuery(b"\x02", b"\x02b", True)) == [
            b"\x02",
            b"\x02\x00",
            b"\x02a",
        ]
        assert await ls(v8.KvListRangeQuery(b"c", b"a", False)) == []
        values = (await kv.list(actor, v8.KvListPrefixQuery(b"\x03"))).values
        assert values == [b"\x03!"]


async def test_prefix_scan_does_not_see_ff_right_after_the_prefix(kv: ActorKv, actor: str) -> None:
    """Documented edge case (§8.3): ``P ‖ ff ‖ …`` sorts after the prefix range."""
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [b"\x02\xff", b"\x02\xfe"], [b"1", b"2"])
        assert (await kv.list(actor, v8.KvListPrefixQuery(b"\x02"))).keys == [b"\x02\xfe"]


async def test_default_list_limit(kv: ActorKv, actor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with trio.fail_after(TIMEOUT):
        monkeypatch.setattr(actor_kv_module, "DEFAULT_LIST_LIMIT", 3)
        await kv.put(actor, [bytes([i]) for i in range(5)], [b"v"] * 5)
        assert len((await kv.list(actor, v8.KvListAllQuery())).keys) == 3
        assert len((await kv.list(actor, v8.KvListAllQuery(), limit=5)).keys) == 5


async def test_delete_delete_range_and_drop(kv: ActorKv, store: Store, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        keys = [b"a", b"b", b"b\x00", b"ba", b"c", b"d"]
        await kv.put(actor, keys, [b"x" * 15_000] * len(keys))
        other = new_id()
        await kv.put(other, [b"a"], [b"keep"])

        await kv.delete(actor, [b"a", b"missing"])
        assert (await kv.list(actor, v8.KvListAllQuery())).keys == keys[1:]
        await kv.delete_range(actor, b"c", b"b")  # start >= end: no-op
        await kv.delete_range(actor, b"b", b"b")
        assert (await kv.list(actor, v8.KvListAllQuery())).keys == keys[1:]
        await kv.delete_range(actor, b"b", b"c")  # [b, c): c stays
        assert (await kv.list(actor, v8.KvListAllQuery())).keys == [b"c", b"d"]
        await kv.drop(actor)
        assert await rows(store, actor) == []
        assert pairs(await kv.get(other, [b"a"])) == [(b"a", b"keep")]


LIMIT_CASES: list[tuple[str, v8.KvRequestData, str]] = [
    (
        "get keys",
        v8.KvGetRequest([b"k%d" % i for i in range(MAX_KEYS + 1)]),
        "a maximum of 128 keys is allowed",
    ),
    (
        "get key size",
        v8.KvGetRequest([b"k" * (MAX_KEY_SIZE - 1)]),
        "key is too long (max 2048 bytes)",
    ),
    (
        "delete keys",
        v8.KvDeleteRequest([b"k%d" % i for i in range(MAX_KEYS + 1)]),
        "a maximum of 128 keys is allowed",
    ),
    ("delete key size", v8.KvDeleteRequest([b"k" * 3000]), "key is too long (max 2048 bytes)"),
    (
        "put entries",
        v8.KvPutRequest([b"k%d" % i for i in range(MAX_KEYS + 1)], [b"v"] * (MAX_KEYS + 1)),
        "a maximum of 128 key-value entries is allowed",
    ),
    (
        "put lengths",
        v8.KvPutRequest([b"a", b"b"], [b"v"]),
        "keys list length != values list length",
    ),
    (
        "put key size",
        v8.KvPutRequest([b"ok", b"k" * (MAX_KEY_SIZE - 1)], [b"v", b"v"]),
        "key is too long (max 2048 bytes)",
    ),
    (
        "put value size",
        v8.KvPutRequest([b"ok", b"big"], [b"v", b"v" * (MAX_VALUE_SIZE + 1)]),
        "value is too large (max 128 KiB)",
    ),
    ("put empty value", v8.KvPutRequest([b"ok", b"empty"], [b"v", b""]), "value cannot be empty"),
    (
        "put payload",
        v8.KvPutRequest([b"k%d" % i for i in range(8)], [b"v" * MAX_VALUE_SIZE] * 8),
        "total payload is too large (max 976 KiB)",
    ),
    (
        "list range start",
        v8.KvListRequest(v8.KvListRangeQuery(b"k" * 2047, b"z", False), None, None),
        "start key is too long (max 2048 bytes)",
    ),
    (
        "list range end",
        v8.KvListRequest(v8.KvListRangeQuery(b"a", b"k" * 2047, True), None, None),
        "end key is too long (max 2048 bytes)",
    ),
    (
        "list prefix",
        v8.KvListRequest(v8.KvListPrefixQuery(b"k" * 2047), None, None),
        "prefix key is too long (max 2048 bytes)",
    ),
    (
        "delete range",
        v8.KvDeleteRangeRequest(b"a", b"k" * 2047),
        "end key is too long (max 2048 bytes)",
    ),
]


@pytest.mark.parametrize(
    ("request_data", "message"), [pytest.param(r, m, id=i) for i, r, m in LIMIT_CASES]
)
async def test_limit_violations_are_kv_errors_and_write_nothing(
    kv: ActorKv, store: Store, actor: str, request_data: v8.KvRequestData, message: str
) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [b"ok"], [b"before"])
        before = await rows(store, actor)
        assert await kv.handle(actor, request_data) == v8.KvErrorResponse(message)
        assert await rows(store, actor) == before


async def test_limits_at_their_boundaries_are_accepted(kv: ActorKv, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        longest = b"k" * (MAX_KEY_SIZE - 2)
        keys = [longest] + [b"k%d" % i for i in range(MAX_KEYS - 1)]
        await kv.put(actor, keys, [b"v"] * MAX_KEYS)
        assert len((await kv.get(actor, keys)).keys) == MAX_KEYS
        # payload exactly at the limit: 7 values of 128 KiB, the rest in one value
        n = 7
        payload_keys = [b"p%d" % i for i in range(n + 1)]
        rest = MAX_PUT_PAYLOAD_SIZE - n * MAX_VALUE_SIZE - sum(len(k) + 2 for k in payload_keys)
        values = [b"v" * MAX_VALUE_SIZE] * n + [b"v" * rest]
        await kv.put(actor, payload_keys, values)
        assert [len(v) for v in (await kv.get(actor, payload_keys)).values] == [
            len(v) for v in values
        ]
        with pytest.raises(KvLimitError, match="total payload"):
            await kv.put(actor, payload_keys, [*values[:-1], values[-1] + b"v"])
        await kv.delete(actor, keys)
        assert (await kv.get(actor, keys)).keys == []


async def test_storage_quota(store: Store, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        kv = ActorKv(store, quota=1000)
        with pytest.raises(KvStorageQuotaError, match="not enough space left in storage"):
            await kv.put(actor, [b"k"], [b"v" * 1001])
        assert await rows(store, actor) == []
        response = await kv.handle(actor, v8.KvPutRequest([b"k"], [b"v" * 1001]))
        assert isinstance(response, v8.KvErrorResponse)
        assert response.message.startswith("not enough space left in storage (1000 bytes remaining")
        if store.backend == "sqlite":  # exact size estimate: stored bytes count
            await kv.put(actor, [b"k"], [b"v" * 600])
            with pytest.raises(KvStorageQuotaError):
                await kv.put(actor, [b"k2"], [b"v" * 600])


async def test_handle_answers_every_request_type(kv: ActorKv, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        assert (
            await kv.handle(actor, v8.KvPutRequest([b"a", b"b"], [b"1", b"2"]))
            == v8.KvPutResponse()
        )
        got = await kv.handle(actor, v8.KvGetRequest([b"a"]))
        assert got == v8.KvGetResponse([b"a"], [b"1"], [v8.KvMetadata(b"0.1.0", TS)])
        listed = await kv.handle(actor, v8.KvListRequest(v8.KvListAllQuery(), True, 1))
        assert isinstance(listed, v8.KvListResponse) and listed.keys == [b"b"]
        assert await kv.handle(actor, v8.KvDeleteRequest([b"a"])) == v8.KvDeleteResponse()
        assert await kv.handle(actor, v8.KvDeleteRangeRequest(b"a", b"c")) == v8.KvDeleteResponse()
        assert await kv.handle(actor, v8.KvDropRequest()) == v8.KvDropResponse()


async def test_corrupt_entries_fail_reads(kv: ActorKv, store: Store, actor: str) -> None:
    """An entry with metadata but no value (a zero-length put of an older engine) or with no
    metadata cannot be reassembled (§8.4)."""
    with trio.fail_after(TIMEOUT):
        layout = ActorKvLayout(actor)

        async def corrupt(tr: Transaction) -> None:
            tr.set(layout.metadata_key(b"empty"), encode_metadata(v8.KvMetadata(b"0.1.0", TS)))
            tr.set(layout.chunk_key(b"nometa", 0), b"v")

        await store.run(corrupt)
        with pytest.raises(CorruptEntryError, match="empty value at key"):
            await kv.get(actor, [b"empty"])
        with pytest.raises(CorruptEntryError, match="no metadata for key"):
            await kv.get(actor, [b"nometa"])
        response = await kv.handle(actor, v8.KvListRequest(v8.KvListAllQuery(), None, None))
        assert isinstance(response, v8.KvErrorResponse)
        assert "empty value at key" in response.message
