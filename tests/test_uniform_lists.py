"""Lists whose elements share one layout, decoded in one pass (``Gen.uniform_decoder``).

The compiled decoder reads such a list with one ``struct`` format when every element repeats the
first one's length prefixes, and element by element otherwise. Both must give exactly what the
interpreted path gives, and reject exactly what it rejects: uniform runs of every flat element
type (scalars, the protocol's structs, a nested struct), runs broken by one element, runs longer
than one unpacking chunk, one-, two- and three-byte length prefixes, and bad bytes inside runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import DecodeError, versioned
from codec.bare import (
    DATA,
    I64,
    STR,
    U16,
    BareParseError,
    BareType,
    Data,
    Field,
    FixedData,
    List,
    Str,
    Struct,
    Union,
    compile_type,
    compiler,
)
from codec.bare.compound import UNIFORM_MIN
from codec.generated import v7, v8
from tests.strategies import values_for


@dataclass(frozen=True, slots=True)
class Pair:
    name: str
    blob: bytes
    count: int


@dataclass(frozen=True, slots=True)
class Outer:
    pair: Pair
    tag: bytes
    tail: bytes


PAIR = Struct("Pair", Pair, [Field("name", "name", STR), Field("blob", "blob", DATA),
                             Field("count", "count", U16)])
OUTER = Struct("Outer", Outer, [Field("pair", "pair", PAIR), Field("tag", "tag", FixedData(3)),
                                Field("tail", "tail", DATA)])

#: Element types with a flat layout: the protocol's own list elements and synthetic ones that
#: cover str fields, fixed-width data and nesting.
ELEMENTS: list[tuple[str, BareType]] = [
    ("data", DATA),
    ("str", STR),
    ("i64", I64),
    ("data[3]", FixedData(3)),
    ("KvMetadata", v7.BARE_KvMetadata),
    ("ActorCheckpoint", v7.BARE_ActorCheckpoint),
    ("HibernatingRequest", v7.BARE_HibernatingRequest),
    ("PreloadedKvEntry", v8.BARE_PreloadedKvEntry),
    ("Pair", PAIR),
    ("Outer", OUTER),
]

#: Lengths around the varint boundaries (one, two and three bytes).
_LONG_LENGTHS = [126, 127, 128, 129, 200, 16383, 16384]


def _char(width: int) -> st.SearchStrategy[str]:
    """One character whose UTF-8 encoding is ``width`` bytes."""
    ranges = {1: (0, 0x7F), 2: (0x80, 0x7FF), 3: (0x800, 0xFFFF), 4: (0x10000, 0x10FFFF)}
    lo, hi = ranges[width]
    return st.characters(min_codepoint=lo, max_codepoint=hi, codec="utf-8")


@st.composite
def _text_of_size(draw: st.DrawFn, size: int) -> st.SearchStrategy[str]:
    """A strategy of strings of exactly ``size`` UTF-8 bytes, all with one width pattern."""
    widths: list[int] = []
    left = size
    while left:
        w = draw(st.sampled_from([w for w in (1, 2, 3, 4) if w <= left]))
        widths.append(w)
        left -= w
    return st.tuples(*[_char(w) for w in widths]).map("".join)


@st.composite
def _shaped(draw: st.DrawFn, t: BareType, lengths: list[int]) -> st.SearchStrategy[Any]:
    """A strategy of values of ``t`` whose length-prefixed fields have ``lengths`` (consumed
    from the front, in layout order)."""
    if isinstance(t, Struct):
        return st.builds(t.cls, *[draw(_shaped(f.type, lengths)) for f in t.fields])
    if isinstance(t, Data):
        size = lengths.pop(0)
        return st.binary(min_size=size, max_size=size)
    if isinstance(t, Str):
        return draw(_text_of_size(lengths.pop(0)))
    return values_for(t)


@st.composite
def uniform_lists(draw: st.DrawFn, t: BareType) -> list[Any]:
    """A list of one element layout, sometimes with one element of another layout."""
    segments = t.stride_segments()
    assert segments is not None
    variable = [s for s in segments if s in ("data", "str")]
    long_ok = "str" not in variable
    lengths = [
        draw(st.integers(0, 24) | st.sampled_from(_LONG_LENGTHS if long_ok else [127, 128]))
        for _ in variable
    ]
    if any(n > 200 for n in lengths):
        count = draw(st.integers(UNIFORM_MIN - 1, UNIFORM_MIN + 3))
    else:
        count = draw(
            st.integers(UNIFORM_MIN - 1, 40)
            | st.sampled_from([compiler.UNIFORM_CHUNK + d for d in (-1, 0, 1, 256, 257)])
        )
    element = draw(_shaped(t, list(lengths)))
    pool = draw(st.lists(element, min_size=1, max_size=4))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=count, max_size=count))
    items = [pool[i] for i in picks]
    if draw(st.booleans()):
        # One element of any layout (often a different one), anywhere in the run.
        items[draw(st.integers(0, count - 1))] = draw(values_for(t))
    return items


def interpreted_parse(t: BareType, data: bytes) -> Any:
    """The interpreted path, insisting on consuming every byte."""
    stream = io.BytesIO(data)
    value = t._parse(stream, None, "list")
    assert stream.tell() == len(data)
    return value


def compiled_outcome(t: BareType, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", compile_type(t).decode_all(data)
    except Exception:
        return "error", None


def interpreted_outcome(t: BareType, data: bytes) -> tuple[str, Any]:
    stream = io.BytesIO(data)
    try:
        value = t._parse(stream, None, "list")
    except BareParseError:
        return "error", None
    return ("ok", value) if stream.tell() == len(data) else ("error", None)


def test_the_protocol_lists_with_a_flat_layout_are_the_expected_ones() -> None:
    found = set()
    seen: set[int] = set()

    def walk(t: Any) -> None:
        if id(t) in seen:
            return
        seen.add(id(t))
        if isinstance(t, List) and t.inner.stride_segments() is not None:
            found.add(t.inner.describe())
        for child in ("inner", "key", "value"):
            if hasattr(t, child):
                walk(getattr(t, child))
        for f in getattr(t, "fields", []):
            walk(f.type)
        if isinstance(t, Union):
            for m in t.members:
                walk(m)

    for version in (7, 8):
        for name in versioned.TOP_LEVEL:
            walk(versioned.bare_type(name, version))
    assert found == {
        "data", "KvMetadata", "ActorCheckpoint", "HibernatingRequest", "PreloadedKvEntry",
    }
    assert v8.BARE_PreloadedKvEntry.stride_segments() == ("data", "data", "data", "q")
    assert v7.BARE_ActorCheckpoint.stride_segments() == ("str", "I", "q")


@pytest.mark.parametrize(("label", "inner"), ELEMENTS, ids=[e[0] for e in ELEMENTS])
def test_uniform_and_broken_runs_decode_like_the_interpreted_path(
    label: str, inner: BareType
) -> None:
    t = List(inner)
    compiled = compile_type(t)

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(uniform_lists(inner))
    def check(items: list[Any]) -> None:
        data = t.build(items)
        parts: list[bytes] = []
        compiled.encode_into(items, parts.append)
        assert b"".join(parts) == data
        assert compiled.decode_all(data) == items
        assert interpreted_parse(t, data) == items
        # also inside a larger buffer, where the run may not reach the end of the input
        value, end = compiled.decode_at(b"\x00" + data + b"\x07\x07", 1, len(data) + 1)
        assert (value, end) == (items, len(data) + 1)

    check()


def test_a_uniform_run_is_unpacked_in_chunks_and_a_broken_one_is_not() -> None:
    t = List(v7.BARE_KvMetadata)
    items = [v7.KvMetadata(b"2.3.11", i) for i in range(300)]
    data = t.build(items)
    compiler._uniform_structs.clear()
    assert compile_type(t).decode_all(data) == items
    # 300 elements = one chunk of 256 and one of 44, each one struct format
    assert set(compiler._uniform_structs) == {("1x6sq", 256), ("1x6sq", 44)}

    compiler._uniform_structs.clear()
    broken = [*items[:150], v7.KvMetadata(b"2.3.9", 150), *items[151:]]
    assert compile_type(t).decode_all(t.build(broken)) == broken
    assert compiler._uniform_structs == {}


def test_the_format_cache_stays_bounded() -> None:
    t = List(DATA)
    compiler._uniform_structs.clear()
    for size in range(700):
        items = [bytes([size % 256]) * size] * UNIFORM_MIN
        assert compile_type(t).decode_all(t.build(items)) == items
    assert 0 < len(compiler._uniform_structs) <= compiler._UNIFORM_CACHE_MAX


def _run(prefix: str, element: str, count: int) -> bytes:
    return bytes.fromhex(f"{count:02x}" + (prefix + element) * count)


BAD_RUNS = [
    # every element repeats a non-canonical length prefix (81 00 = 1 with a trailing zero)
    pytest.param(List(DATA), _run("81 00", "41", 10), id="noncanonical-prefix-in-every-element"),
    pytest.param(List(DATA), _run("", "01 41", 9) + bytes.fromhex("81 00 41"),
                 id="noncanonical-prefix-in-the-last-element"),
    # invalid UTF-8 (a lone continuation byte) in the sixth of ten same-length strings
    pytest.param(List(STR), bytes.fromhex("0a" + "02 6162" * 5 + "02 80 62" + "02 6162" * 4),
                 id="invalid-utf8-inside-a-uniform-run"),
    pytest.param(List(STR), bytes.fromhex("0a" + "02 c3a9" * 9 + "02 c3 28"),
                 id="invalid-utf8-in-the-last-element"),
    # the count promises more elements than the bytes hold
    pytest.param(List(DATA), bytes.fromhex("0a" + "01 41" * 9), id="count-beyond-the-run"),
    pytest.param(List(DATA), bytes.fromhex("0a" + "01 41" * 9 + "01"),
                 id="run-cut-inside-the-last-element"),
    pytest.param(List(v7.BARE_KvMetadata),
                 bytes.fromhex("09" + ("01 41" + "00" * 8) * 8 + "01 41" + "00" * 7),
                 id="struct-run-cut-in-the-fixed-tail"),
    # every element claims 2**63 - 1 bytes: no format is built from such a length
    pytest.param(List(DATA), _run("ffffffffffffffff7f", "", 10), id="huge-length-in-every-element"),
    # a three-byte length prefix with a trailing zero byte (non-canonical) on every element
    pytest.param(List(DATA), _run("80 80 00", "", 8), id="noncanonical-3-byte-prefix"),
]


@pytest.mark.parametrize(("t", "data"), BAD_RUNS)
def test_bad_bytes_inside_runs_are_rejected_by_both_paths(t: BareType, data: bytes) -> None:
    assert compiled_outcome(t, data) == ("error", None)
    assert interpreted_outcome(t, data) == ("error", None)


def test_a_bad_run_in_a_message_is_a_decode_error_with_its_path() -> None:
    keys = [bytes([i]) * 4 for i in range(20)]
    message = v7.ToServerKvRequest("actor", 9, v7.KvGetRequest(keys))
    frame = versioned.encode("ToServer", message, 7)
    good = versioned.TO_SERVER.decode(frame, 7)
    assert good == message
    # the 13th key's length prefix 04 -> 84 00 (non-canonical 4); the run no longer matches
    at = frame.index(b"\x04" + keys[12])
    bad = frame[:at] + b"\x84\x00" + frame[at + 1:]
    with pytest.raises(DecodeError) as info:
        versioned.TO_SERVER.decode(bad, 7)
    assert info.value.path == "ToServer.ToServerKvRequest.data.KvGetRequest.keys[12]"


@pytest.mark.parametrize(
    ("size", "other"),
    # 128 = 80 01, 256 = 80 02; 300 = ac 02, 301 = ad 02; 16384 = 80 80 01,
    # 16512 = 80 81 01, 32768 = 80 80 02
    [(128, 256), (300, 301), (16384, 16512), (16384, 32768), (0, 128)],
    ids=["2-byte-prefix-2nd-byte", "2-byte-prefix-1st-byte", "3-byte-prefix-2nd-byte",
         "3-byte-prefix-3rd-byte", "1-vs-2-byte-prefix"],
)
def test_an_element_whose_prefix_differs_in_one_byte_breaks_the_run(size: int, other: int) -> None:
    t = List(DATA)
    for where in (0, 4, UNIFORM_MIN):
        items = [bytes([i]) * size for i in range(UNIFORM_MIN + 1)]
        items[where] = b"\xee" * other
        assert compile_type(t).decode_all(t.build(items)) == items


def test_runs_shorter_than_the_threshold_decode_element_by_element() -> None:
    t = List(DATA)
    items = [b"abc"] * (UNIFORM_MIN - 1)
    compiler._uniform_structs.clear()
    assert compile_type(t).decode_all(t.build(items)) == items
    assert compiler._uniform_structs == {}
