"""Round-trip properties for every named type of v7 and v8, and the v7 <-> v8 conversion.

For each named type, generated values must survive encode/decode both ways on the compiled
path (``compile_type(t)``), the interpreted Construct path (``t.build``/``t.parse``/``t._parse``)
and the versioned API, and the two encoders must agree byte for byte. The conversion properties
are the spec's §6-7: v7 -> v8 -> v7 is the identity, v8 -> v7 drops exactly
``CommandStartActor.preloadedKv``, and the v7 bytes are the v8 bytes minus one ``00`` byte per
start command when every ``preloadedKv`` is absent.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import versioned
from codec.bare import (
    BareType,
    Enum,
    List,
    Map,
    Optional,
    Struct,
    Union,
    Wrapper,
    compile_type,
)
from codec.bare.scalars import uvarint_bytes
from codec.errors import DecodeError
from codec.generated import v7, v8
from tests.strategies import values_for

PER_TYPE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The typed hot-path API per top-level type (``codec.TO_CLIENT`` and friends)
API: dict[str, versioned.TopLevel[Any]] = {
    top.name: top
    for top in (
        versioned.TO_CLIENT,
        versioned.TO_SERVER,
        versioned.TO_RUNNER,
        versioned.TO_GATEWAY,
        versioned.TO_SERVERLESS_SERVER,
        versioned.ACTOR_COMMAND_KEY_DATA,
    )
}
TOP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MODULES = {7: v7, 8: v8}
NAMED = [(version, name) for version in (7, 8) for name in MODULES[version].TYPES]
TOP_LEVEL = list(versioned.TOP_LEVEL)


def _ids(case: tuple[int, str]) -> str:
    return f"v{case[0]}-{case[1]}"


def compiled_encode(t: BareType, value: Any) -> bytes:
    parts: list[bytes] = []
    compile_type(t).encode_into(value, parts.append)
    return b"".join(parts)


def interpreted_decode_whole(t: BareType, data: bytes, name: str) -> Any:
    """Interpreted decode that, unlike ``t.parse``, insists on consuming every byte."""
    stream = io.BytesIO(data)
    value = t._parse(stream, None, name)
    assert stream.tell() == len(data), "interpreted path left trailing bytes"
    return value


@pytest.mark.parametrize("case", NAMED, ids=_ids)
def test_every_named_type_round_trips_on_every_path(case: tuple[int, str]) -> None:
    version, name = case
    t = MODULES[version].TYPES[name]
    compiled = compile_type(t)

    @PER_TYPE
    @given(values_for(t))
    def check(value: Any) -> None:
        # compiled path: value -> bytes -> value
        data = compiled_encode(t, value)
        decoded, end = compiled.decode_at(data, 0, len(data))
        assert end == len(data)
        assert decoded == value
        # interpreted (Construct) path, and byte-identical to the compiled encoder
        assert t.build(value) == data
        assert t.parse(data) == value
        assert interpreted_decode_whole(t, data, name) == value
        # versioned API, both directions
        assert versioned.encode_raw(name, value, version) == data
        assert versioned.decode_raw(name, data, version) == value
        # bytes first: every valid encoding re-encodes to itself
        assert versioned.encode_raw(name, versioned.decode_raw(name, data, version), version) == (
            data
        )
        assert compiled_encode(t, compiled.decode_at(data, 0, len(data))[0]) == data
        assert t.build(t.parse(data)) == data

    check()


def _structs_in(value: Any) -> list[Any]:
    """Every dataclass instance inside a decoded value (lists, dicts, nested fields)."""
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if dataclasses.is_dataclass(item):
            found.append(item)
            stack += [getattr(item, f.name) for f in dataclasses.fields(item)]
        elif isinstance(item, list | tuple):
            stack += item
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
    return found


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_compiled_decoder_builds_ordinary_frozen_instances(name: str) -> None:
    """The emitted decoders fill structs through a same-layout twin class and then set
    ``__class__``: the results must be plain, frozen instances of the generated classes, equal
    to (and hashing like) the same value built through ``__init__``."""
    t = versioned.bare_type(name, 8)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values_for(t))
    def check(value: Any) -> None:
        decoded = versioned.decode_raw(name, versioned.encode_raw(name, value, 8), 8)
        for item in _structs_in(decoded):
            cls = type(item)
            assert cls.__module__ in (v7.__name__, v8.__name__)
            fields = dataclasses.fields(item)
            rebuilt = cls(*[getattr(item, f.name) for f in fields])
            assert rebuilt == item
            if fields:
                with pytest.raises(dataclasses.FrozenInstanceError):
                    setattr(item, fields[0].name, None)
                try:
                    hash(rebuilt)
                except TypeError:  # a field holds a list or dict
                    continue
                assert hash(item) == hash(rebuilt)

    check()


@pytest.mark.parametrize("case", NAMED, ids=_ids)
def test_compiled_decoder_honours_offsets(case: tuple[int, str]) -> None:
    """``decode_at(b, p, e)`` decodes from ``p`` and reports the end offset, with bytes around."""
    version, name = case
    t = MODULES[version].TYPES[name]
    compiled = compile_type(t)

    @settings(max_examples=25, deadline=None)
    @given(values_for(t), st.binary(max_size=8), st.binary(max_size=8))
    def check(value: Any, before: bytes, after: bytes) -> None:
        data = compiled_encode(t, value)
        framed = before + data + after
        decoded, end = compiled.decode_at(framed, len(before), len(framed))
        assert decoded == value
        assert end == len(before) + len(data)

    check()


# -- v7 <-> v8 ---------------------------------------------------------------------------------


def map_structs(t: BareType, value: Any, fn: Any) -> Any:
    """Rebuild ``value`` of type ``t`` bottom-up, passing every struct value through ``fn``."""
    if isinstance(t, Struct):
        fields = {f.attr: map_structs(f.type, getattr(value, f.attr), fn) for f in t.fields}
        return fn(t, t.cls(**fields))
    if isinstance(t, Union):
        return map_structs(t.members[t.by_class[type(value)]], value, fn)
    if isinstance(t, Wrapper):
        return t.cls(map_structs(t.inner, value.value, fn))
    if isinstance(t, Optional):
        return None if value is None else map_structs(t.inner, value, fn)
    if isinstance(t, List):
        return [map_structs(t.inner, v, fn) for v in value]
    if isinstance(t, Map):
        return {k: map_structs(t.value, v, fn) for k, v in value.items()}
    return value


def strip_preloaded(t: BareType, value: Any) -> Any:
    def fn(st_: Struct, v: Any) -> Any:
        if st_ is v8.BARE_CommandStartActor:
            return dataclasses.replace(v, preloaded_kv=None)
        return v

    return map_structs(t, value, fn)


def count_starts(t: BareType, value: Any) -> int:
    seen: list[Any] = []

    def fn(st_: Struct, v: Any) -> Any:
        if st_.cls in (v7.CommandStartActor, v8.CommandStartActor):
            seen.append(v)
        return v

    map_structs(t, value, fn)
    return len(seen)


def encode_marking_preloaded(t: BareType, value: Any, out: bytearray, marks: list[int]) -> None:
    """An independent tree-walking encoder that records where each v8 ``preloadedKv`` starts."""
    if isinstance(t, Struct):
        for f in t.fields:
            if t is v8.BARE_CommandStartActor and f.attr == "preloaded_kv":
                marks.append(len(out))
            encode_marking_preloaded(f.type, getattr(value, f.attr), out, marks)
    elif isinstance(t, Union):
        tag = t.by_class[type(value)]
        out += uvarint_bytes(tag)
        encode_marking_preloaded(t.members[tag], value, out, marks)
    elif isinstance(t, Wrapper):
        encode_marking_preloaded(t.inner, value.value, out, marks)
    elif isinstance(t, Optional):
        if value is None:
            out.append(0)
        else:
            out.append(1)
            encode_marking_preloaded(t.inner, value, out, marks)
    elif isinstance(t, List):
        out += uvarint_bytes(len(value))
        for v in value:
            encode_marking_preloaded(t.inner, v, out, marks)
    elif isinstance(t, Map):
        out += uvarint_bytes(len(value))
        for k, v in value.items():
            encode_marking_preloaded(t.key, k, out, marks)
            encode_marking_preloaded(t.value, v, out, marks)
    elif isinstance(t, Enum):
        out += uvarint_bytes(value.value)
    else:
        out += t.build(value)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_v7_upgrade_then_downgrade_is_identity(name: str) -> None:
    t7 = versioned.bare_type(name, 7)

    @TOP
    @given(values_for(t7))
    def check(value: Any) -> None:
        up = versioned.upgrade(name, value, 7)
        assert versioned.downgrade(name, up, 7) == value
        data = versioned.encode_raw(name, value, 7)
        assert versioned.decode(name, data, 7) == up
        assert versioned.encode(name, up, 7) == data
        # the hot path (members shared by v7 and v8 skip the conversion) agrees
        assert API[name].decode(data, 7) == up
        assert API[name].encode(up, 7) == data
        # the upgraded value never carries preloaded KV
        assert strip_preloaded(versioned.bare_type(name, 8), up) == up

    check()


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_v8_downgrade_drops_exactly_preloaded_kv(name: str) -> None:
    t8 = versioned.bare_type(name, 8)

    @TOP
    @given(values_for(t8))
    def check(value: Any) -> None:
        down = versioned.downgrade(name, value, 7)
        assert versioned.upgrade(name, down, 7) == strip_preloaded(t8, value)
        assert versioned.encode(name, value, 7) == versioned.encode_raw(name, down, 7)
        assert API[name].encode(value, 7) == versioned.encode_raw(name, down, 7)

    check()


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_v7_bytes_are_v8_bytes_without_the_absent_preloaded_kv(name: str) -> None:
    t8 = versioned.bare_type(name, 8)

    @TOP
    @given(values_for(t8))
    def check(value: Any) -> None:
        value = strip_preloaded(t8, value)
        v8_bytes = versioned.encode_raw(name, value, 8)
        v7_bytes = versioned.encode(name, value, 7)
        out = bytearray()
        marks: list[int] = []
        encode_marking_preloaded(t8, value, out, marks)
        assert bytes(out) == v8_bytes
        starts = count_starts(t8, value)
        assert len(marks) == starts
        assert len(v8_bytes) == len(v7_bytes) + starts
        assert all(v8_bytes[m] == 0 for m in marks)
        without = bytearray(v8_bytes)
        for m in reversed(marks):
            del without[m]
        assert bytes(without) == v7_bytes
        assert versioned.decode(name, v7_bytes, 7) == value
        assert versioned.decode(name, v8_bytes, 8) == value

    check()


def test_spec_example_8_3_v7_is_the_v8_prefix() -> None:
    """Spec §8.3: the v8 start command with preloaded KV, and its 67-byte v7 form."""
    actor = b"5jxlv5boumuljx2d2nvyat0o2edl00"
    ts = bytes.fromhex("0068e5cf8b010000")
    v7_hex = (
        b"\x01\x01\x1e" + actor + b"\x01\x00\x00\x00" + bytes(8) + b"\x00"
        b"\x07counter" + b"\x01\x01k" + ts + b"\x00" + b"\x00"
    )
    preloaded = (
        b"\x01\x01\x01\x01\x01\xaa\x052.1.7" + ts + b"\x03\x01\x01\x01\x03\x03\x05\x01\x01"
        b"\x03\x02\x08\x01\x02\x06\x01\x01\x02"
    )
    frame8 = v7_hex + preloaded
    assert len(v7_hex) == 67
    assert len(frame8) == 105
    msg = versioned.decode("ToClient", frame8, 8)
    assert isinstance(msg, v8.ToClientCommands)
    start = msg.value[0].inner
    assert isinstance(start, v8.CommandStartActor)
    assert start.preloaded_kv == v8.PreloadedKv(
        entries=[v8.PreloadedKvEntry(b"\x01", b"\xaa", v8.KvMetadata(b"2.1.7", 1_700_000_000_000))],
        requested_get_keys=[b"\x01", b"\x03", b"\x05\x01\x01"],
        requested_prefixes=[b"\x08\x01", b"\x06\x01", b"\x02"],
    )
    assert versioned.encode("ToClient", msg, 8) == frame8
    assert versioned.encode("ToClient", msg, 7) == v7_hex
    assert versioned.encode("ToClient", strip_preloaded(v8.BARE_ToClient, msg), 8) == (
        v7_hex + b"\x00"
    )


def test_only_members_defined_once_for_both_versions_skip_the_conversion() -> None:
    """The hot path passes v7 values through unconverted exactly for the union members that v8
    imports from v7; a member that changed (it carries CommandStartActor) is converted."""
    client = versioned.TO_CLIENT
    client.decode(versioned.encode("ToClient", v8.ToClientPing(1), 7), 7)
    shared = client._fast_by_version[7].shared
    assert v8.ToClientKvResponse in shared and v8.ToClientPing in shared
    assert v8.ToClientCommands not in shared and v7.ToClientCommands not in shared
    assert API["ToServer"]._path(7, DecodeError).same  # ToServer did not change
    start = v8.CommandStartActor(v8.ActorConfig("a", None, 0, None), [], None)
    commands = v8.ToClientCommands([v8.CommandWrapper(v8.ActorCheckpoint("x", 1, 0), start)])
    decoded = client.decode(client.encode(commands, 7), 7)
    assert decoded == commands and type(decoded.value[0].inner) is v8.CommandStartActor
