"""The strict BARE types as Construct constructs.

``T.parse``/``T.build`` (Construct's interpreted entry points) and Construct's own
``T.compile()`` (which links the emitted index-based code) must give the same values and bytes,
and reject the same invalid input and values with a ``ConstructError``. Construct's ``parse``
ignores trailing bytes; a top-level format ends in ``Terminated``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from construct import Construct, ConstructError, FocusedSeq, Terminated, TerminatedError
from construct import Struct as CStruct
from hypothesis import HealthCheck, given, settings

from codec import versioned
from codec.bare import (
    BOOL,
    DATA,
    I8,
    I16,
    I32,
    I64,
    INT,
    STR,
    U8,
    U16,
    U32,
    U64,
    UINT,
    VOID,
    BareBuildError,
    BareParseError,
    BareType,
    FixedData,
    List,
    Map,
    Optional,
)
from codec.generated import v7, v8
from tests.strategies import values_for

DATA4 = FixedData(4)
OPT_U8 = Optional(U8)
LIST_U8 = List(U8)
MAP_STR_U8 = Map(STR, U8)
LIST_STR = List(STR)

_compiled: dict[int, tuple[Construct[Any, Any], Construct[Any, Any]]] = {}


def compiled(t: Construct[Any, Any]) -> Construct[Any, Any]:
    """Construct's ``t.compile()``, once per construct."""
    hit = _compiled.get(id(t))
    if hit is None or hit[0] is not t:
        hit = (t, t.compile())
        _compiled[id(t)] = hit
    return hit[1]


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_uint_300() -> None:
    assert UINT.build(300) == b"\xac\x02"
    assert UINT.parse(b"\xac\x02") == 300
    assert compiled(UINT).build(300) == b"\xac\x02"
    assert compiled(UINT).parse(b"\xac\x02") == 300


VALID = [
    # uint: LEB128, minimal
    pytest.param(UINT, 0, "00", id="uint-0"),
    pytest.param(UINT, 1, "01", id="uint-1"),
    pytest.param(UINT, 127, "7f", id="uint-127"),
    pytest.param(UINT, 128, "80 01", id="uint-128"),
    pytest.param(UINT, 16383, "ff 7f", id="uint-16383"),
    pytest.param(UINT, 16384, "80 80 01", id="uint-16384"),
    pytest.param(UINT, (1 << 63) - 1, "ff" * 8 + "7f", id="uint-2**63-1"),
    pytest.param(UINT, (1 << 64) - 1, "ff" * 9 + "01", id="uint-max"),
    # int: zig-zag then LEB128
    pytest.param(INT, 0, "00", id="int-0"),
    pytest.param(INT, -1, "01", id="int-minus-1"),
    pytest.param(INT, 1, "02", id="int-1"),
    pytest.param(INT, -64, "7f", id="int-minus-64"),
    pytest.param(INT, 64, "80 01", id="int-64"),
    pytest.param(INT, (1 << 63) - 1, "fe" + "ff" * 8 + "01", id="int-max"),
    pytest.param(INT, -(1 << 63), "ff" * 9 + "01", id="int-min"),
    # fixed width, little-endian
    pytest.param(U8, 255, "ff", id="u8-255"),
    pytest.param(U16, 0x1234, "34 12", id="u16"),
    pytest.param(U16, 65535, "ff ff", id="u16-max"),
    pytest.param(U32, 7, "07 00 00 00", id="u32-7"),
    pytest.param(U64, (1 << 64) - 1, "ff" * 8, id="u64-max"),
    pytest.param(I8, -1, "ff", id="i8-minus-1"),
    pytest.param(I16, -2, "fe ff", id="i16-minus-2"),
    pytest.param(I32, -(1 << 31), "00 00 00 80", id="i32-min"),
    pytest.param(I64, 1_700_000_000_000, "00 68 e5 cf 8b 01 00 00", id="i64-ts"),
    pytest.param(I64, -(1 << 63), "00" * 7 + "80", id="i64-min"),
    # bool, str, data, data[4], void
    pytest.param(BOOL, False, "00", id="bool-false"),
    pytest.param(BOOL, True, "01", id="bool-true"),
    pytest.param(STR, "", "00", id="str-empty"),
    pytest.param(STR, "héllo", "06 68 c3a9 6c 6c 6f", id="str-utf8"),
    pytest.param(STR, "\U0001f600", "04 f09f9880", id="str-4-byte"),
    pytest.param(STR, "a" * 128, "80 01" + "61" * 128, id="str-128"),
    pytest.param(DATA, b"", "00", id="data-empty"),
    pytest.param(DATA, b"\x00\xff", "02 00 ff", id="data-2"),
    pytest.param(DATA4, b"abcd", "61 62 63 64", id="data4"),
    pytest.param(VOID, None, "", id="void"),
    # compound
    pytest.param(OPT_U8, None, "00", id="optional-absent"),
    pytest.param(OPT_U8, 5, "01 05", id="optional-present"),
    pytest.param(LIST_U8, [], "00", id="list-empty"),
    pytest.param(LIST_U8, [1, 2], "02 01 02", id="list-2"),
    pytest.param(MAP_STR_U8, {"a": 1, "b": 2}, "02 0161 01 0162 02", id="map-2"),
    pytest.param(v7.BARE_StopCode, v7.StopCode.ERROR, "01", id="enum"),
    pytest.param(
        v7.BARE_KvMetadata,
        v7.KvMetadata(b"2.1.7", 1_700_000_000_000),
        "05 322e312e37 0068e5cf8b010000",
        id="struct",
    ),
    pytest.param(v7.BARE_ToServerStopping, v7.ToServerStopping(), "", id="void-struct"),
    pytest.param(
        v7.BARE_ToServer, v7.ToServerPong(1_700_000_000_000), "04 0068e5cf8b010000", id="union"
    ),
    pytest.param(v7.BARE_ToServer, v7.ToServerStopping(), "03", id="union-void-member"),
    pytest.param(
        v7.BARE_ToServer,
        v7.ToServerAckCommands([]),
        "02 00",
        id="union-struct-member",
    ),
    pytest.param(
        v7.BARE_ToServerEvents,
        v7.ToServerEvents([]),
        "00",
        id="wrapper",
    ),
    pytest.param(
        v8.BARE_ActorCommandKeyData,
        v8.CommandStartActor(v8.ActorConfig("counter", "k", 1_700_000_000_000, None), [], None),
        "00 07636f756e746572 01016b 0068e5cf8b010000 00 00 00",
        id="spec-8.4-body",
    ),
]


@pytest.mark.parametrize(("t", "value", "hex_"), VALID)
def test_parse_and_build(t: BareType, value: Any, hex_: str) -> None:
    data = h(hex_)
    assert t.build(value) == data
    assert t.parse(data) == value
    assert compiled(t).build(value) == data
    assert compiled(t).parse(data) == value


@pytest.mark.parametrize(("t", "value", "hex_"), VALID)
def test_parse_ignores_trailing_bytes_but_terminated_does_not(
    t: BareType, value: Any, hex_: str
) -> None:
    data = h(hex_)
    whole = FocusedSeq("v", "v" / t, Terminated)
    for c in (t, compiled(t)):
        assert c.parse(data + b"\x01") == value
    for c in (whole, compiled(whole)):
        assert c.parse(data) == value
        assert c.build(value) == data
        with pytest.raises(TerminatedError):
            c.parse(data + b"\x01")


def test_bare_types_inside_a_construct_struct() -> None:
    fmt = CStruct("n" / UINT, "items" / LIST_STR, "flag" / BOOL, Terminated)
    data = h("ac02 02 0161 0162 01")
    for c in (fmt, compiled(fmt)):
        parsed = c.parse(data)
        assert (parsed.n, parsed["items"], parsed.flag) == (300, ["a", "b"], True)
        assert c.build({"n": 300, "items": ["a", "b"], "flag": True}) == data
        with pytest.raises(ConstructError):
            c.parse(h("ac02 02 0161 0162 02"))


HUGE = "ff ff ff ff ff ff ff ff 7f"
# ToClientCommands with one CommandWrapper{actor "a", start{name "", no key, ts 0, no input, []}},
# up to (excluding) the v8 preloadedKv optional tag.
V8_START = "01 01 0161 00000000 0000000000000000 00 00 00 0000000000000000 00 00"

INVALID_BYTES = [
    pytest.param(UINT, "", id="uint-empty"),
    pytest.param(UINT, "80 00", id="uint-80-00"),
    pytest.param(UINT, "ff 00", id="uint-ff-00"),
    pytest.param(UINT, "80 80 00", id="uint-80-80-00"),
    pytest.param(UINT, "80" * 10 + "00", id="uint-11-bytes"),
    pytest.param(UINT, "ff" * 9 + "02", id="uint-over-64-bits"),
    pytest.param(UINT, "80", id="uint-truncated"),
    pytest.param(INT, "80 00", id="int-non-canonical"),
    pytest.param(INT, "ff" * 9 + "02", id="int-over-64-bits"),
    pytest.param(U16, "01", id="u16-truncated"),
    pytest.param(I64, "00" * 7, id="i64-truncated"),
    pytest.param(BOOL, "02", id="bool-02"),
    pytest.param(BOOL, "ff", id="bool-ff"),
    pytest.param(BOOL, "", id="bool-empty"),
    pytest.param(STR, "01 ff", id="str-utf8-ff"),
    pytest.param(STR, "02 c0 80", id="str-utf8-overlong"),
    pytest.param(STR, "03 ed a0 80", id="str-utf8-surrogate"),
    pytest.param(STR, "01 e2", id="str-utf8-truncated"),
    pytest.param(STR, "05 61", id="str-length-beyond"),
    pytest.param(STR, HUGE, id="str-huge-length"),
    pytest.param(DATA, "02 00", id="data-length-beyond"),
    pytest.param(DATA, HUGE, id="data-huge-length"),
    pytest.param(DATA, "81 00", id="data-non-canonical-length"),
    pytest.param(DATA4, "01 02 03", id="data4-short"),
    pytest.param(OPT_U8, "02 00", id="optional-tag-02"),
    pytest.param(OPT_U8, "01", id="optional-present-truncated"),
    pytest.param(LIST_U8, "80 80 80 80 80 20", id="list-count-2**40"),
    pytest.param(LIST_U8, HUGE, id="list-huge-count"),
    pytest.param(MAP_STR_U8, "02 0161 01 0161 02", id="map-duplicate-key"),
    pytest.param(MAP_STR_U8, HUGE, id="map-huge-count"),
    pytest.param(v7.BARE_StopCode, "02", id="enum-2"),
    pytest.param(v7.BARE_ToClient, "06", id="union-tag-6"),
    pytest.param(v7.BARE_ToClient, "80 01", id="union-tag-128"),
    pytest.param(v7.BARE_ToClient, "80 00", id="union-tag-non-canonical"),
    pytest.param(v7.BARE_ToServer, "", id="union-empty"),
    pytest.param(v7.BARE_KvMetadata, "00 0000", id="struct-truncated"),
    pytest.param(v8.BARE_ToClient, V8_START + "02", id="v8-preloaded-kv-tag-02"),
]


@pytest.mark.parametrize(("t", "hex_"), INVALID_BYTES)
def test_invalid_bytes_raise_a_construct_error_on_both_paths(t: BareType, hex_: str) -> None:
    data = h(hex_)
    with pytest.raises(BareParseError):
        t.parse(data)
    with pytest.raises(ConstructError):
        compiled(t).parse(data)


INVALID_VALUES = [
    pytest.param(UINT, -1, id="uint-negative"),
    pytest.param(UINT, 1 << 64, id="uint-2**64"),
    pytest.param(UINT, True, id="uint-bool"),
    pytest.param(UINT, 1.5, id="uint-float"),
    pytest.param(INT, 1 << 63, id="int-2**63"),
    pytest.param(U16, 65536, id="u16-65536"),
    pytest.param(U32, -1, id="u32-minus-1"),
    pytest.param(I64, 1 << 63, id="i64-2**63"),
    pytest.param(I8, 128, id="i8-128"),
    pytest.param(BOOL, 1, id="bool-1"),
    pytest.param(BOOL, None, id="bool-none"),
    pytest.param(STR, "\ud800", id="str-lone-surrogate"),
    pytest.param(STR, b"x", id="str-bytes"),
    pytest.param(DATA, "x", id="data-str"),
    pytest.param(DATA, [1], id="data-list"),
    pytest.param(DATA4, b"abc", id="data4-3-bytes"),
    pytest.param(DATA4, b"abcde", id="data4-5-bytes"),
    pytest.param(VOID, 0, id="void-0"),
    pytest.param(OPT_U8, 256, id="optional-inner-out-of-range"),
    pytest.param(LIST_U8, {1}, id="list-set"),
    pytest.param(LIST_U8, {1: 1}, id="list-dict"),
    pytest.param(LIST_U8, [256], id="list-item-out-of-range"),
    pytest.param(MAP_STR_U8, [("a", 1)], id="map-list"),
    pytest.param(MAP_STR_U8, {1: 1}, id="map-key-int"),
    pytest.param(v7.BARE_StopCode, 1, id="enum-int"),
    pytest.param(v7.BARE_KvMetadata, v7.ActorName("{}"), id="struct-wrong-class"),
    pytest.param(v7.BARE_KvMetadata, v7.KvMetadata("2.1.7", 0), id="struct-field-wrong-type"),  # type: ignore[arg-type]
    pytest.param(v7.BARE_ToServer, v7.ToClientPing(0), id="union-non-member"),
    pytest.param(v7.BARE_ToServerEvents, [], id="wrapper-given-inner"),
]


@pytest.mark.parametrize(("t", "value"), INVALID_VALUES)
def test_invalid_values_raise_a_construct_error_on_both_paths(t: BareType, value: Any) -> None:
    with pytest.raises(BareBuildError):
        t.build(value)
    with pytest.raises(ConstructError):
        compiled(t).build(value)


# -- whole messages: the two Construct paths agree -----------------------------------------------

ROOTS = [(version, name) for version in (7, 8) for name in versioned.TOP_LEVEL]


@pytest.mark.parametrize(("version", "name"), ROOTS, ids=[f"v{v}-{n}" for v, n in ROOTS])
def test_construct_compile_agrees_with_interpreted_on_generated_values(
    version: int, name: str
) -> None:
    t = versioned.bare_type(name, version)
    c = compiled(t)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values_for(t))
    def check(value: Any) -> None:
        data = t.build(value)
        assert c.build(value) == data
        assert data == versioned.encode_raw(name, value, version)
        assert t.parse(data) == value
        assert c.parse(data) == value

    check()


def _outcome(c: Construct[Any, Any], data: bytes) -> tuple[str, Any]:
    try:
        return "ok", c.parse(data)
    except ConstructError:
        return "error", None


@pytest.mark.parametrize(("version", "name"), ROOTS, ids=[f"v{v}-{n}" for v, n in ROOTS])
def test_construct_compile_rejects_what_interpreted_rejects(version: int, name: str) -> None:
    t = versioned.bare_type(name, version)
    c = compiled(t)
    rng = random.Random(f"construct-{name}-{version}")
    outcomes = set()
    for _ in range(500):
        data = bytes([rng.randrange(8)]) + rng.randbytes(rng.randrange(24))
        interpreted = _outcome(t, data)
        assert _outcome(c, data) == interpreted, data.hex()
        outcomes.add(interpreted[0])
    assert "error" in outcomes
