"""Differential stateful test: every backend against a dict model (Hypothesis).

Rules: single writes, multi-operation transactions (atomic, read-your-writes), aborted
transactions, retried transactions, point and range reads (limit, reverse) in read-only and
read-write transactions, and a read-only transaction held open across steps whose reads must keep
seeing the snapshot taken when it started while other transactions commit.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rivetpy.engine import keys
from rivetpy.engine.store import ConflictError, KeyValue, ReadTransaction, Store, Transaction
from tests.engine.backends import BACKENDS, fresh_prefix, open_backend, require_backend
from tests.engine.portal import TrioPortal
from tests.engine.strategies import TUPLES

KEYS = st.lists(st.sampled_from([0x00, 0x01, 0x61, 0xFE]), max_size=3).map(bytes)
BOUNDS = st.one_of(KEYS, st.just(b"\xff"))
VALUES = st.binary(max_size=8)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, VALUES),
        st.tuples(st.just("clear"), KEYS),
        st.tuples(st.just("clear_range"), BOUNDS, BOUNDS).map(lambda t: (t[0], *sorted(t[1:]))),
    ),
    min_size=1,
    max_size=6,
)
LIMITS = st.sampled_from([0, 1, 2, 5])


class BoomError(Exception):
    """Raised by a body to abort its transaction."""


def model_range(
    model: dict[bytes, bytes], begin: bytes, end: bytes, limit: int, reverse: bool
) -> list[tuple[bytes, bytes]]:
    keys = sorted((k for k in model if begin <= k < end), reverse=reverse)
    if limit:
        keys = keys[:limit]
    return [(k, model[k]) for k in keys]


def apply_model(model: dict[bytes, bytes], ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        if op[0] == "set":
            model[op[1]] = op[2]
        elif op[0] == "clear":
            model.pop(op[1], None)
        else:
            for k in [k for k in model if op[1] <= k < op[2]]:
                del model[k]


class SnapshotReader:
    """A read-only transaction kept open in the portal, serving range reads on request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.requests, self._incoming = trio.open_memory_channel[tuple[bytes, bytes, int, bool]](0)
        self._reply, self.replies = trio.open_memory_channel[list[KeyValue] | BaseException](1)

    async def serve(self) -> None:
        async def body(tr: ReadTransaction) -> None:
            async for begin, end, limit, reverse in self._incoming:
                try:
                    rows = await tr.get_range(begin, end, limit=limit, reverse=reverse)
                except Exception as exc:
                    await self._reply.send(exc)
                else:
                    await self._reply.send(rows)

        try:
            await self.store.read(body)
        except Exception as exc:
            await self._reply.send(exc)

    async def read(self, begin: bytes, end: bytes, limit: int, reverse: bool) -> list[KeyValue]:
        with trio.fail_after(10):
            await self.requests.send((begin, end, limit, reverse))
            reply = await self.replies.receive()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def close(self) -> None:
        await self.requests.aclose()


class StoreMachine(RuleBasedStateMachine):
    backend = "sqlite"
    portal: TrioPortal

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, bytes] = {}
        self.prefix = fresh_prefix()
        self.dir = Path(tempfile.mkdtemp(prefix="rivetpy-store-"))
        self.store: Store = self.portal.call(open_backend, self.backend, self.dir)
        self.reader: SnapshotReader | None = None
        self.snapshot: dict[bytes, bytes] = {}

    # -- helpers --------------------------------------------------------------------------------
    def k(self, key: bytes) -> bytes:
        return self.prefix + key

    def run(self, fn: Any) -> Any:
        async def go() -> Any:
            with trio.fail_after(20):
                return await self.store.run(fn)

        return self.portal.call(go)

    def read(self, fn: Any) -> Any:
        async def go() -> Any:
            with trio.fail_after(20):
                return await self.store.read(fn)

        return self.portal.call(go)

    def apply_store(self, tr: Transaction, ops: list[tuple[Any, ...]]) -> None:
        for op in ops:
            if op[0] == "set":
                tr.set(self.k(op[1]), op[2])
            elif op[0] == "clear":
                tr.clear(self.k(op[1]))
            else:
                tr.clear_range(self.k(op[1]), self.k(op[2]))

    def strip(self, rows: list[KeyValue]) -> list[tuple[bytes, bytes]]:
        return [(kv.key[len(self.prefix) :], kv.value) for kv in rows]

    # -- rules ----------------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        pass

    @rule(ops=OPS)
    def transaction(self, ops: list[tuple[Any, ...]]) -> None:
        expected = dict(self.model)
        apply_model(expected, ops)

        async def body(tr: Transaction) -> list[KeyValue]:
            self.apply_store(tr, ops)
            return await tr.get_range(self.k(b""), self.k(b"\xff"))  # read-your-writes

        assert self.strip(self.run(body)) == sorted(expected.items())
        self.model = expected

    @rule(ops=OPS)
    def aborted_transaction(self, ops: list[tuple[Any, ...]]) -> None:
        async def body(tr: Transaction) -> None:
            self.apply_store(tr, ops)
            await tr.get(self.k(b""))
            raise BoomError

        with pytest.raises(BoomError):
            self.run(body)

    @rule(ops=OPS, failures=st.integers(1, 2))
    def retried_transaction(self, ops: list[tuple[Any, ...]], failures: int) -> None:
        attempts: list[int] = []

        async def body(tr: Transaction) -> None:
            attempts.append(1)
            self.apply_store(tr, ops)
            if len(attempts) <= failures:
                raise ConflictError("injected conflict")

        self.run(body)
        assert len(attempts) == failures + 1
        apply_model(self.model, ops)

    @rule(begin=BOUNDS, end=BOUNDS, limit=LIMITS, reverse=st.booleans(), writable=st.booleans())
    def range_read(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, writable: bool
    ) -> None:
        async def body(tr: ReadTransaction) -> list[KeyValue]:
            return await tr.get_range(self.k(begin), self.k(end), limit=limit, reverse=reverse)

        rows = self.run(body) if writable else self.read(body)
        assert self.strip(rows) == model_range(self.model, begin, end, limit, reverse)

    @rule(key=KEYS, snapshot=st.booleans())
    def get(self, key: bytes, snapshot: bool) -> None:
        async def body(tr: ReadTransaction) -> bytes | None:
            return await tr.get(self.k(key), snapshot=snapshot)

        assert self.read(body) == self.model.get(key)

    @precondition(lambda self: self.reader is None)
    @rule()
    def open_snapshot(self) -> None:
        self.reader = SnapshotReader(self.store)
        self.portal.start_soon(self.reader.serve)
        self.snapshot = dict(self.model)
        self.snapshot_read(b"", b"\xff", 0, False)  # the first read fixes the snapshot

    @precondition(lambda self: self.reader is not None)
    @rule(begin=BOUNDS, end=BOUNDS, limit=LIMITS, reverse=st.booleans())
    def snapshot_read(self, begin: bytes, end: bytes, limit: int, reverse: bool) -> None:
        assert self.reader is not None
        rows = self.portal.call(self.reader.read, self.k(begin), self.k(end), limit, reverse)
        assert self.strip(rows) == model_range(self.snapshot, begin, end, limit, reverse)

    @precondition(lambda self: self.reader is not None)
    @rule()
    def close_snapshot(self) -> None:
        assert self.reader is not None
        self.portal.call(self.reader.close)
        self.reader = None

    @invariant()
    def agrees_with_model(self) -> None:
        async def body(tr: ReadTransaction) -> list[KeyValue]:
            return await tr.get_range(self.k(b""), self.k(b"\xff"))

        assert self.strip(self.read(body)) == sorted(self.model.items())

    def teardown(self) -> None:
        if self.reader is not None:
            self.portal.call(self.reader.close)

        async def clear(tr: Transaction) -> None:
            tr.clear_range(self.k(b""), self.k(b"\xff"))

        try:
            self.run(clear)
        finally:
            self.portal.call(self.store.aclose)
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_agrees_with_dict_model(backend: str) -> None:
    require_backend(backend)
    with TrioPortal() as portal:
        machine = type(
            f"StoreMachine_{backend}", (StoreMachine,), {"backend": backend, "portal": portal}
        )
        run_state_machine_as_test(  # type: ignore[no-untyped-call]
            machine,
            settings=settings(
                max_examples=60,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_orders_packed_tuples_like_the_tuple_layer(backend: str, tmp_path: Path) -> None:
    """Range reads return tuple-layer keys in the tuple layer's semantic order."""
    require_backend(backend)
    with TrioPortal() as portal:
        store: Store = portal.call(open_backend, backend, tmp_path)

        @given(st.lists(TUPLES, min_size=1, max_size=12, unique_by=keys.pack))
        @settings(max_examples=30, deadline=None)
        def check(tuples: list[tuple[keys.TupleItem, ...]]) -> None:
            prefix = fresh_prefix()

            async def write(tr: Transaction) -> None:
                for t in tuples:
                    tr.set(keys.pack(t, prefix=prefix), b"")

            async def read(tr: ReadTransaction) -> tuple[list[KeyValue], list[KeyValue]]:
                end = prefix + b"\xff"
                fwd = await tr.get_range(prefix, end)
                return fwd, await tr.get_range(prefix, end, reverse=True)

            async def clear(tr: Transaction) -> None:
                tr.clear_range(prefix, prefix + b"\xff")

            portal.call(store.run, write)
            fwd, rev = portal.call(store.read, read)
            portal.call(store.run, clear)
            expected = sorted(tuples, key=functools.cmp_to_key(keys.compare))
            assert [keys.unpack(kv.key, len(prefix)) for kv in fwd] == expected
            assert [keys.unpack(kv.key, len(prefix)) for kv in rev] == expected[::-1]

        try:
            check()
        finally:
            portal.call(store.aclose)
