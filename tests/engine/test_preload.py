"""``batch_preload`` and ``fetch_preloaded_kv`` (kv-preload.md §3, §4)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import v8
from rivetpy.engine.actor_names import write_actor_name
from rivetpy.engine.config import PegboardConfig
from rivetpy.engine.ids import new_id
from rivetpy.engine.kv import ActorKv, ActorKvLayout, entry_size
from rivetpy.engine.preload import (
    CONN_PREFIX,
    INSPECTOR_TOKEN,
    PERSIST_DATA,
    QUEUE_METADATA,
    SQLITE_PREFIX,
    STARTUP_GET_KEYS,
    WORKFLOW_PREFIX,
    PrefixRequest,
    batch_preload,
    fetch_preloaded_kv,
    startup_preload_params,
)
from rivetpy.engine.store import (
    ReadTransaction,
    Store,
    StoreBackendError,
    Transaction,
)
from rivetpy.engine.store.sqlite import SqliteStore
from tests.engine.preload_model import TS, VERSION, in_prefix, load, oracle, size_of

T = TypeVar("T")
TIMEOUT = 30
NAMESPACE = new_id()
META = v8.KvMetadata(VERSION, TS)


@pytest.fixture
async def kv(store: Store) -> ActorKv:
    return ActorKv(store, version=VERSION, clock=lambda: TS)


@pytest.fixture
def actor() -> str:
    return new_id()


def entry(key: bytes, value: bytes) -> v8.PreloadedKvEntry:
    return v8.PreloadedKvEntry(key, value, META)


def test_entry_size_counts_key_value_version_and_timestamp() -> None:
    assert entry_size(entry(b"\x08\x01\x01\x00\x00\x00\x00\x00", b"p" * 4096)) == 8 + 4096 + 5 + 8


def test_startup_params_defaults_and_overrides() -> None:
    config = PegboardConfig()
    assert (config.preload_max_total_bytes, config.preload_max_sqlite_bytes) == (1_048_576, 786_432)
    assert (config.preload_max_workflow_bytes, config.preload_max_connections_bytes) == (
        131_072,
        65_536,
    )
    params = startup_preload_params(config, {})
    assert params is not None
    assert params == (
        [b"\x01", b"\x03", b"\x05\x01\x01"],
        [
            PrefixRequest(b"\x08\x01", 786_432, True),
            PrefixRequest(b"\x06\x01", 131_072, False),
            PrefixRequest(b"\x02", 65_536, False),
        ],
    )
    overridden = startup_preload_params(
        config,
        {
            "preloadMaxSqliteBytes": 0,
            "preloadMaxWorkflowBytes": 2**64 - 1,
            "preloadMaxConnectionsBytes": 7,
        },
    )
    assert overridden is not None
    assert [p.max_bytes for p in overridden[1]] == [0, 2**64 - 1, 7]
    for bad in [1.0, -1, "100", True, None, 2**64, [1], {"a": 1}]:
        params = startup_preload_params(config, {"preloadMaxSqliteBytes": bad})
        assert params is not None and params[1][0].max_bytes == 786_432, bad
    assert startup_preload_params(PegboardConfig(preload_max_total_bytes=0), {}) is None


def test_config_from_mapping() -> None:
    config = PegboardConfig.from_mapping(
        {"preload_max_total_bytes": None, "preload_max_sqlite_bytes": 5}
    )
    assert config == PegboardConfig(preload_max_sqlite_bytes=5)
    with pytest.raises(ValueError):
        PegboardConfig.from_mapping({"preload_max_total_bytes": -1})
    with pytest.raises(ValueError):
        PegboardConfig.from_mapping({"preload_max_bytes": 1})


async def test_budget_bug_get_key_that_did_not_fit_is_not_requested(
    kv: ActorKv, store: Store, actor: str
) -> None:
    """§4.4 regression (upstream 314c8ffc8): an existing get-key that does not fit the budget
    must not be reported as requested, or the runtime would take it for absent."""
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [PERSIST_DATA], [b"s" * 256])
        result = await batch_preload(store, actor, [PERSIST_DATA], [], 1)
        assert result == v8.PreloadedKv([], [], [])
        # a key that really is missing is requested (known absent)
        missing = await batch_preload(store, actor, [INSPECTOR_TOKEN], [], 1024)
        assert missing == v8.PreloadedKv([], [INSPECTOR_TOKEN], [])


async def test_get_keys_after_an_oversized_one_still_fit_and_exhaustion_stops(
    kv: ActorKv, store: Store, actor: str
) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [PERSIST_DATA, INSPECTOR_TOKEN], [b"s" * 2000, b"t" * 10])
        small = size_of(INSPECTOR_TOKEN, b"t" * 10)
        result = await batch_preload(store, actor, list(STARTUP_GET_KEYS), [], small)
        # [1] does not fit: unrecorded; [3] fits exactly; then the budget is exhausted and
        # [5,1,1] is neither read nor recorded although it does not exist
        assert result == v8.PreloadedKv([entry(INSPECTOR_TOKEN, b"t" * 10)], [INSPECTOR_TOKEN], [])
        roomy = await batch_preload(store, actor, list(STARTUP_GET_KEYS), [], 10_000)
        assert roomy.requested_get_keys == list(STARTUP_GET_KEYS)
        assert [e.key for e in roomy.entries] == [PERSIST_DATA, INSPECTOR_TOKEN]


async def test_prefix_outcomes(kv: ActorKv, store: Store, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        pages = {SQLITE_PREFIX + bytes([1, 0, 0, 0, i]): bytes([i]) * 100 for i in range(5)}
        conns = {CONN_PREFIX + b"conn-%d" % i: b"c" * 50 for i in range(3)}
        await kv.put(actor, [*pages, *conns], [*pages.values(), *conns.values()])
        page_size = size_of(next(iter(pages)), b"x" * 100)
        conn_size = size_of(next(iter(conns)), b"c" * 50)

        async def run(*reqs: PrefixRequest, total: int = 1_000_000) -> v8.PreloadedKv:
            return await batch_preload(store, actor, [], list(reqs), total)

        complete = await run(PrefixRequest(SQLITE_PREFIX, 5 * page_size, False))
        assert complete.requested_prefixes == [SQLITE_PREFIX] and len(complete.entries) == 5
        assert [e.key for e in complete.entries] == sorted(pages)
        dropped = await run(PrefixRequest(SQLITE_PREFIX, 5 * page_size - 1, False))
        assert dropped == v8.PreloadedKv([], [], [])
        partial = await run(PrefixRequest(SQLITE_PREFIX, 3 * page_size - 1, True))
        assert partial.requested_prefixes == [SQLITE_PREFIX]
        assert [e.key for e in partial.entries] == sorted(pages)[:2]  # leading entries that fit
        empty = await run(PrefixRequest(WORKFLOW_PREFIX, 100, False))
        assert empty == v8.PreloadedKv([], [], [WORKFLOW_PREFIX])  # scanned, empty
        disabled = await run(PrefixRequest(WORKFLOW_PREFIX, 0, False))
        assert disabled == v8.PreloadedKv([], [], [])
        # priority: sqlite takes the budget, connections (lower priority) lose
        squeezed = await run(
            PrefixRequest(SQLITE_PREFIX, 10**6, True),
            PrefixRequest(CONN_PREFIX, 10**6, False),
            total=5 * page_size + 2 * conn_size,
        )
        assert squeezed.requested_prefixes == [SQLITE_PREFIX]
        # a dropped non-partial prefix leaves its budget to the next one
        after_drop = await run(
            PrefixRequest(SQLITE_PREFIX, page_size, False),
            PrefixRequest(CONN_PREFIX, 3 * conn_size, False),
            total=3 * conn_size,
        )
        assert after_drop.requested_prefixes == [CONN_PREFIX] and len(after_drop.entries) == 3


async def test_get_key_under_a_requested_prefix_is_not_duplicated(
    kv: ActorKv, store: Store, actor: str
) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [b"\x02a", b"\x02b"], [b"1", b"2"])
        result = await batch_preload(
            store, actor, [b"\x02a"], [PrefixRequest(CONN_PREFIX, 1000, False)], 1000
        )
        assert [e.key for e in result.entries] == [b"\x02a", b"\x02b"]
        assert result.requested_prefixes == [CONN_PREFIX]
        assert sum(entry_size(e) for e in result.entries) == size_of(b"\x02a", b"1") + size_of(
            b"\x02b", b"2"
        )


async def test_fetch_applies_actor_name_overrides(kv: ActorKv, store: Store, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(
            actor,
            [PERSIST_DATA, SQLITE_PREFIX + b"\x00", WORKFLOW_PREFIX + b"w", CONN_PREFIX + b"c"],
            [b"state", b"page", b"wf", b"conn"],
        )
        config = PegboardConfig()
        default = await fetch_preloaded_kv(store, config, actor, NAMESPACE, "counter")
        assert default is not None
        assert default.requested_prefixes == [SQLITE_PREFIX, WORKFLOW_PREFIX, CONN_PREFIX]
        assert default.requested_get_keys == list(STARTUP_GET_KEYS)
        assert len(default.entries) == 4

        async def name(tr: Transaction) -> None:
            write_actor_name(
                tr,
                NAMESPACE,
                "counter",
                {
                    "preloadMaxSqliteBytes": 0,
                    "preloadMaxConnectionsBytes": 1,
                    "preloadMaxWorkflowBytes": "x",
                },
            )

        await store.run(name)
        overridden = await fetch_preloaded_kv(store, config, actor, NAMESPACE, "counter")
        assert overridden is not None
        assert overridden.requested_prefixes == [WORKFLOW_PREFIX]
        assert [e.key for e in overridden.entries] == [PERSIST_DATA, WORKFLOW_PREFIX + b"w"]
        other_name = await fetch_preloaded_kv(store, config, actor, NAMESPACE, "other")
        assert other_name == default


async def test_preload_disabled_when_global_cap_is_zero(
    kv: ActorKv, store: Store, actor: str
) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [PERSIST_DATA], [b"state"])
        assert (
            await fetch_preloaded_kv(
                store, PegboardConfig(preload_max_total_bytes=0), actor, NAMESPACE, "a"
            )
            is None
        )
        assert await batch_preload(
            store, actor, list(STARTUP_GET_KEYS), [PrefixRequest(CONN_PREFIX, 10, False)], 0
        ) == v8.PreloadedKv([], [], [])


class CountingStore:
    """Counts transactions; optionally fails reads."""

    def __init__(self, inner: Store, fail: Exception | None = None) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.fail = fail
        self.reads = 0
        self.runs = 0

    async def run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        self.runs += 1
        return await self.inner.run(fn)

    async def read(self, fn: Callable[[ReadTransaction], Awaitable[T]]) -> T:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return await self.inner.read(fn)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_fetch_is_one_read_transaction(kv: ActorKv, store: Store, actor: str) -> None:
    with trio.fail_after(TIMEOUT):
        await kv.put(actor, [PERSIST_DATA, SQLITE_PREFIX + b"\x00"], [b"s", b"p"])
        counting = CountingStore(store)
        assert (
            await fetch_preloaded_kv(counting, PegboardConfig(), actor, NAMESPACE, "a") is not None
        )
        assert (counting.reads, counting.runs) == (1, 0)


async def test_fetch_never_raises_for_store_failures(
    store: Store, actor: str, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(TIMEOUT):
        failing = CountingStore(store, fail=StoreBackendError("disk on fire"))
        with caplog.at_level(logging.WARNING, logger="rivetpy.engine.preload"):
            assert (
                await fetch_preloaded_kv(failing, PegboardConfig(), actor, NAMESPACE, "a") is None
            )
        record = next(r for r in caplog.records if "preload failed" in r.message)
        assert record.__dict__["actor_id"] == actor and "disk on fire" in record.__dict__["error"]


async def test_fetch_falls_back_on_a_corrupt_entry(
    store: Store, actor: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A zero-length value stored by an old engine fails the preload read (§4.5); the start
    command still goes out, without preload."""
    with trio.fail_after(TIMEOUT):
        layout = ActorKvLayout(actor)

        async def corrupt(tr: Transaction) -> None:
            tr.set(layout.metadata_key(PERSIST_DATA), b"\x05" + VERSION + b"\x00" * 8)

        await store.run(corrupt)
        with pytest.raises(Exception, match="empty value at key"):
            await batch_preload(store, actor, [PERSIST_DATA], [], 1000)
        with caplog.at_level(logging.WARNING, logger="rivetpy.engine.preload"):
            assert await fetch_preloaded_kv(store, PegboardConfig(), actor, NAMESPACE, "a") is None
        assert any("preload failed" in r.message for r in caplog.records)


# -- properties (Hypothesis) -----------------------------------------------------------------

VALUES = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.integers(1, 25_000).map(lambda n: b"\xab" * n),
)
SUBKEYS = st.binary(max_size=3)
KEYS = st.one_of(
    st.sampled_from([PERSIST_DATA, INSPECTOR_TOKEN, QUEUE_METADATA, b"\x04user", b"\x07\x01t"]),
    SUBKEYS.map(lambda s: SQLITE_PREFIX + s),
    SUBKEYS.map(lambda s: WORKFLOW_PREFIX + s),
    SUBKEYS.map(lambda s: CONN_PREFIX + s),
)
DATA = st.dictionaries(KEYS, VALUES, max_size=14)
BUDGET = st.one_of(st.integers(0, 3_000), st.integers(0, 80_000), st.sampled_from([0, 1, 10**9]))
REQUESTS = st.permutations([SQLITE_PREFIX, WORKFLOW_PREFIX, CONN_PREFIX]).flatmap(
    lambda order: st.tuples(
        *[st.builds(PrefixRequest, st.just(p), BUDGET, st.booleans()) for p in order]
    )
)
GET_KEYS = st.lists(
    st.sampled_from([PERSIST_DATA, INSPECTOR_TOKEN, QUEUE_METADATA, b"\x02"]), max_size=4
)


def run_with_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    """A fresh embedded store per Hypothesis example (synchronous=OFF: durability is not
    under test here)."""

    async def main() -> T:
        with tempfile.TemporaryDirectory() as tmp, trio.fail_after(TIMEOUT):
            store = await SqliteStore.open(Path(tmp) / "s.sqlite3", synchronous="OFF", readers=1)
            try:
                return await fn(store)
            finally:
                await store.aclose()

    return trio.run(main)


@given(data=DATA, get_keys=GET_KEYS, requests=REQUESTS, max_total=BUDGET)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_batch_preload_properties(
    data: dict[bytes, bytes],
    get_keys: list[bytes],
    requests: tuple[PrefixRequest, ...],
    max_total: int,
) -> None:
    actor = new_id()

    async def scenario(store: Store) -> v8.PreloadedKv:
        kv = ActorKv(store, version=VERSION, clock=lambda: TS)
        await load(kv, actor, data)
        return await batch_preload(store, actor, get_keys, list(requests), max_total)

    result = run_with_store(scenario)
    # same answer as the independent oracle of the spec's algorithm
    assert result == oracle(data, get_keys, requests, max_total)
    # the global cap is never exceeded
    assert sum(entry_size(e) for e in result.entries) <= max_total
    # every entry is the stored value, at most once
    assert all(data[e.key] == e.value for e in result.entries)
    assert len({e.key for e in result.entries}) == len(result.entries)
    present = {e.key for e in result.entries}
    # a requested get-key missing from entries really does not exist
    for key in result.requested_get_keys:
        assert key in present or key not in data
    # prefixes: requested in priority order; non-partial ones complete, partial ones a
    # leading run in key order
    order = [r.prefix for r in requests]
    assert result.requested_prefixes == [p for p in order if p in result.requested_prefixes]
    for req in requests:
        under = sorted(k for k in data if in_prefix(k, req.prefix))
        got = [k for k in under if k in present]
        if req.prefix not in result.requested_prefixes:
            continue
        if req.partial:
            assert got == under[: len(got)]  # a leading run
        else:
            assert got == under
    if max_total == 0:
        assert result == v8.PreloadedKv([], [], [])


@given(
    data=DATA,
    overrides=st.dictionaries(
        st.sampled_from(
            ["preloadMaxSqliteBytes", "preloadMaxWorkflowBytes", "preloadMaxConnectionsBytes"]
        ),
        st.one_of(BUDGET, st.floats(0, 10), st.text(max_size=2)),
    ),
    total=BUDGET,
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fetch_preloaded_kv_applies_config_and_overrides(
    data: dict[bytes, bytes], overrides: dict[str, Any], total: int
) -> None:
    actor = new_id()
    config = PegboardConfig(
        preload_max_total_bytes=total,
        preload_max_sqlite_bytes=4000,
        preload_max_workflow_bytes=3000,
        preload_max_connections_bytes=2000,
    )

    async def scenario(store: Store) -> v8.PreloadedKv | None:
        await load(ActorKv(store, version=VERSION, clock=lambda: TS), actor, data)

        async def name(tr: Transaction) -> None:
            write_actor_name(tr, NAMESPACE, "a", overrides)

        await store.run(name)
        return await fetch_preloaded_kv(store, config, actor, NAMESPACE, "a")

    result = run_with_store(scenario)
    if total == 0:
        assert result is None
        return
    params = startup_preload_params(config, overrides)
    assert params is not None
    for req, (name, default) in zip(
        params[1],
        [
            ("preloadMaxSqliteBytes", 4000),
            ("preloadMaxWorkflowBytes", 3000),
            ("preloadMaxConnectionsBytes", 2000),
        ],
        strict=True,
    ):
        value = overrides.get(name)
        valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        assert req.max_bytes == (value if valid else default)
    assert result == oracle(data, params[0], params[1], total)


async def test_partial_prefix_cut_before_its_first_entry_is_not_recorded(
    store: Store, kv: ActorKv, actor: str
) -> None:
    """Otherwise "requested, no entries" would say the SQLite prefix is empty (a new database)
    for an actor whose database exists: the runtime would overwrite it."""
    with trio.fail_after(TIMEOUT):
        page = b"\x08\x01\x01\x00" + (0).to_bytes(4, "big")
        await kv.put(actor, [PERSIST_DATA, page], [b"s" * 100, b"p" * 4096])
        result = await batch_preload(
            store, actor, [PERSIST_DATA], [PrefixRequest(b"\x08\x01", 786_432, True)], 300
        )
        assert [e.key for e in result.entries] == [PERSIST_DATA]
        assert result.requested_prefixes == []
