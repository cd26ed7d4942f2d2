"""Tuple layer, Rivet ids and the actor KV key layout (kv-preload.md §8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import v8
from rivetpy.engine import keys
from rivetpy.engine.ids import InvalidIdError, id_from_bytes, id_to_bytes, new_id
from rivetpy.engine.kv.layout import ActorKvLayout, CorruptRowError, decode_suffix, key_wrapper
from tests.engine.strategies import TUPLES

EXAMPLE_ID_BYTES = bytes.fromhex("01 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 00 01")
EXAMPLE_ID = "5jxlv5boumuljx2d2nvyat0o2edl00"
S_HEX = "14 15 03 15 48 40 01 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 00 01"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_id_string_form_matches_the_engine() -> None:
    assert id_from_bytes(EXAMPLE_ID_BYTES) == EXAMPLE_ID
    assert id_to_bytes(EXAMPLE_ID) == EXAMPLE_ID_BYTES


@pytest.mark.parametrize("bad", ["", "x" * 29, "5jxlv5boumuljx2d2nvyat0o2edl0!", "z" * 30])
def test_invalid_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        id_to_bytes(bad)


@given(st.binary(min_size=18, max_size=18))
def test_id_round_trip(data: bytes) -> None:
    raw = b"\x01" + data
    assert id_to_bytes(id_from_bytes(raw)) == raw
    assert len(new_id()) == 30


@given(TUPLES, TUPLES)
def test_tuple_encoding_preserves_the_tuple_order(
    a: tuple[keys.TupleItem, ...], b: tuple[keys.TupleItem, ...]
) -> None:
    pa, pb = keys.pack(a), keys.pack(b)
    assert keys.unpack(pa) == a
    expected = keys.compare(a, b)
    assert (pa > pb) - (pa < pb) == (expected > 0) - (expected < 0)


@given(st.binary(max_size=8), st.binary(max_size=8))
def test_key_wrapper_preserves_raw_order_and_entries_do_not_interleave(a: bytes, b: bytes) -> None:
    assert (key_wrapper(a) < key_wrapper(b)) == (a < b)
    layout = ActorKvLayout(EXAMPLE_ID)
    if a < b:
        assert layout.entry_range(a)[1] <= layout.entry_range(b)[0]
        # every row of a sorts before every row of b
        assert layout.metadata_key(a) < layout.chunk_key(b, 0)


def test_worked_example_of_the_spec() -> None:
    layout = ActorKvLayout(EXAMPLE_ID)
    s = h(S_HEX)
    assert layout.subspace == s
    assert layout.chunk_key(b"\x01", 0) == s + h("05 01 01 00 00 15 04 14")
    assert layout.metadata_key(b"\x01") == s + h("05 01 01 00 00 15 2c")
    assert layout.chunk_key(b"\x08\x01\x00\x00", 1) == s + h(
        "05 01 08 01 00 ff 00 ff 00 00 15 04 15 01"
    )
    assert layout.prefix_range(b"\x08\x01") == (s + h("05 01 08 01"), s + h("05 01 08 01 ff"))


def test_list_and_delete_ranges() -> None:
    layout = ActorKvLayout(EXAMPLE_ID)
    s = layout.subspace
    assert layout.list_range(v8.KvListAllQuery()) == (s + b"\x00", s + b"\xff")
    inclusive = layout.list_range(v8.KvListRangeQuery(b"a", b"c", False))
    exclusive = layout.list_range(v8.KvListRangeQuery(b"a", b"c", True))
    assert inclusive == (s + h("05 01 61 00 00"), s + h("05 01 63 00 00 ff"))
    assert exclusive == (s + h("05 01 61 00 00"), s + h("05 01 63 00 00 00"))
    assert layout.delete_range_bounds(b"a", b"c") == (
        s + h("05 01 61 00 00 00"),
        s + h("05 01 63 00 00 00"),
    )


def test_decode_row() -> None:
    layout = ActorKvLayout(EXAMPLE_ID)
    assert layout.decode_row(layout.chunk_key(b"k\x00", 7)) == (b"k\x00", 7, 4)
    assert layout.decode_row(layout.chunk_key(b"k", 300)) == (b"k", 300, 5)
    assert layout.decode_row(layout.metadata_key(b"")) == (b"", None, 2)
    for bad in (
        layout.subspace + keys.pack((1,)),
        layout.subspace + b"\x05\x01",
        layout.entry_prefix(b"k") + keys.pack((5,)),
    ):
        with pytest.raises(CorruptRowError):
            layout.decode_row(bad)


@given(st.integers(0, 2**64 - 1))
def test_decode_suffix_matches_the_tuple_layer(index: int) -> None:
    assert decode_suffix(keys.pack((keys.DATA, index))) == index
    assert decode_suffix(keys.pack((keys.METADATA,))) is None


@pytest.mark.parametrize(
    "bad", [b"", b"\x15\x05", b"\x15\x04", b"\x15\x04\x13\xfe", b"\x15\x2c\x00"]
)
def test_decode_suffix_rejects_other_rows(bad: bytes) -> None:
    with pytest.raises(CorruptRowError):
        decode_suffix(bad)


def test_actor_name_key_layout() -> None:
    key = keys.actor_name_key(EXAMPLE_ID, "counter")
    assert key == h("14 15 03 15 27 40") + EXAMPLE_ID_BYTES + h("15 20 15 13 02") + b"counter\x00"


def test_strinc() -> None:
    assert keys.strinc(b"a\xff\xff") == b"b"
    with pytest.raises(ValueError):
        keys.strinc(b"\xff")
