"""PreloadMap (three-way lookups, prefix listing), WriteCollector and the round-trip guard."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import v8
from rivetpy.actor.preload import NOT_PRELOADED, PreloadHit, PreloadMap
from rivetpy.actor.round_trips import RoundTripGuard
from rivetpy.actor.write_collector import DuplicateWriteError, WriteCollector

GUARD = "rivetpy.actor.round_trips"


def test_get_is_three_way() -> None:
    pm = PreloadMap([(b"\x01", b"state")], [b"\x01", b"\x03"], [])
    assert pm.get(b"\x01") == PreloadHit(b"state")
    assert pm.get(b"\x03") == PreloadHit(None)  # requested, absent: known absent
    assert pm.get(b"\x05\x01\x01") is NOT_PRELOADED
    assert not isinstance(NOT_PRELOADED, PreloadHit)


def test_entries_under_a_prefix_are_hits_even_if_not_requested_keys() -> None:
    pm = PreloadMap([(b"\x02abc", b"c")], [], [b"\x02"])
    assert pm.get(b"\x02abc") == PreloadHit(b"c")
    assert pm.get(b"\x02zzz") is NOT_PRELOADED  # per-key: not a requested get-key


def test_list_prefix_boundaries() -> None:
    entries = [
        (b"\x08\x01", b"equal-to-prefix"),
        (b"\x08\x01\x00", b"a"),
        (b"\x08\x01\xff\xff", b"b"),
        (b"\x08\x02", b"next"),
        (b"\x08", b"shorter"),
        (b"\x06\x01x", b"w"),
    ]
    pm = PreloadMap(list(reversed(entries)), [], [b"\x08\x01", b"", b"\x06\x01", b"\x02"])
    assert pm.list_prefix(b"\x08\x01") == [
        (b"\x08\x01", b"equal-to-prefix"),
        (b"\x08\x01\x00", b"a"),
        (b"\x08\x01\xff\xff", b"b"),
    ]
    assert [k for k, _ in pm.list_prefix(b"")] == sorted(k for k, _ in entries)  # type: ignore[union-attr]
    assert pm.list_prefix(b"\x02") == []  # scanned, empty
    assert pm.list_prefix(b"\x06") is NOT_PRELOADED  # only byte-equal prefixes count
    assert pm.list_prefix(b"\x08") is NOT_PRELOADED


def test_duplicates_keep_the_first_value() -> None:
    pm = PreloadMap([(b"k", b"first"), (b"k", b"second")], [b"k"], [b"k"])
    assert pm.get(b"k") == PreloadHit(b"first")
    assert pm.list_prefix(b"k") == [(b"k", b"first")]


def test_from_wire_and_record_write() -> None:
    meta = v8.KvMetadata(b"v", 1)
    pm = PreloadMap.from_preloaded(
        v8.PreloadedKv([v8.PreloadedKvEntry(b"\x02a", b"conn", meta)], [b"\x01"], [b"\x02"])
    )
    assert pm.get(b"\x01") == PreloadHit(None)
    pm.record_write([b"\x01", b"\x02b", b"\x02a", b"\x09"], [b"new", b"c2", None, b"x"])
    assert pm.get(b"\x01") == PreloadHit(b"new")  # no stale "absent" after a local write
    assert pm.list_prefix(b"\x02") == [(b"\x02b", b"c2")]
    assert pm.get(b"\x02a") == PreloadHit(None)
    assert pm.get(b"\x09") is NOT_PRELOADED  # not covered: not invented


keys = st.binary(max_size=4)


@given(st.lists(st.tuples(keys, st.binary(max_size=3))), st.lists(keys), keys)
def test_list_prefix_matches_a_linear_model(
    entries: list[tuple[bytes, bytes]], requested: list[bytes], prefix: bytes
) -> None:
    pm = PreloadMap(entries, requested, [prefix])
    first: dict[bytes, bytes] = {}
    for k, v in entries:
        first.setdefault(k, v)
    assert pm.list_prefix(prefix) == sorted(
        (k, v) for k, v in first.items() if k.startswith(prefix)
    )
    for k in set(requested) | set(first):
        hit = pm.get(k)
        assert hit == PreloadHit(first.get(k))


async def test_write_collector_sends_one_put_and_refuses_duplicates() -> None:
    puts: list[list[tuple[bytes, bytes]]] = []

    async def put(entries: object) -> None:
        puts.append(list(entries))  # type: ignore[call-overload]

    wc = WriteCollector(put)
    assert await wc.flush() == 0 and puts == []  # nothing collected: no request
    wc.add(b"\x01", b"s")
    wc.add(b"\x03", b"t")
    with pytest.raises(DuplicateWriteError):
        wc.add(b"\x01", b"again")
    assert await wc.flush() == 2
    assert puts == [[(b"\x01", b"s"), (b"\x03", b"t")]]
    assert await wc.flush() == 0 and len(puts) == 1


async def test_write_collector_keeps_entries_when_the_put_fails() -> None:
    async def put(entries: object) -> None:
        raise OSError("kv down")

    wc = WriteCollector(put)
    wc.add(b"\x01", b"s")
    with pytest.raises(OSError):
        await wc.flush()
    assert wc.pending == [(b"\x01", b"s")]


def test_guard_logs_first_read_per_method_counts_all_and_summarizes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=GUARD)
    guard = RoundTripGuard("actor-1", "thing")
    guard.record("get", "state", "01")  # not armed yet: ignored
    guard.arm()
    guard.record("get", "state", "01")
    guard.record("get", "sqlite", "0801")
    guard.record("list_prefix", "connections", "02")
    with guard.paused():
        guard.record("get", "user", "04")  # user code: not counted
    guard.record("get", "queue", "050101")
    assert guard.counts == {"get": 3, "list_prefix": 1}
    firsts = [r for r in caplog.records if r.getMessage().startswith("unexpected")]
    assert [(r.__dict__["kv_method"], r.__dict__["site"]) for r in firsts] == [
        ("get", "state"),
        ("list_prefix", "connections"),
    ]
    guard.finish()
    guard.record("get", "late", "01")
    assert guard.counts == {"get": 3, "list_prefix": 1}
    summary = [r for r in caplog.records if r.getMessage().startswith("KV round-trips")]
    assert len(summary) == 1 and summary[0].__dict__["kv_round_trips_total"] == 4


def test_guard_restores_after_a_raising_callback_and_stays_quiet_when_unarmed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = RoundTripGuard("a", "n")
    guard.arm()
    with pytest.raises(RuntimeError), guard.paused():
        raise RuntimeError("user code failed")
    assert guard.armed
    unarmed = RoundTripGuard("b", "n")
    unarmed.record("get", "state", "01")
    unarmed.finish()
    assert unarmed.counts == {} and not caplog.records
