"""Versioned encode/decode of the protocol's top-level types.

Two levels:

* ``decode_raw``/``encode_raw`` work in one version's own types (``codec.v7`` or ``codec.v8``).
* ``decode``/``encode`` work in the latest types (v8) and convert at the edge, as the engine
  does: decode with the layout of ``version`` then upgrade; downgrade then encode.

The embedded form (stored command values, internal pub/sub payloads) is a 2-byte little-endian
version followed by the body in that version's layout. Stored data may come from versions whose
layout equals one we carry (``ActorCommandKeyData`` of v5-v7 is v7's layout, per the spec);
those are accepted.

Every decode raises :class:`DecodeError` and nothing else; every encode raises
:class:`EncodeError` and nothing else.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from codec import convert as _convert
from codec.bare import BareBuildError, BareParseError, BareType, Union, compile_type
from codec.errors import DecodeError, EncodeError
from codec.generated import v7, v8

LATEST: Final = 8
#: Default and upper bound for a single message, in bytes. Larger frames are rejected before a
#: byte is parsed. The engine refuses tunnel payloads over 20 MiB; 64 MiB leaves room for large
#: KV responses and preloaded KV.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024

TOP_LEVEL: Final = (
    "ToClient",
    "ToServer",
    "ToRunner",
    "ToGateway",
    "ToServerlessServer",
    "ActorCommandKeyData",
)

_MODULES = {7: v7, 8: v8}

#: For each top-level type, protocol version -> the version whose layout we decode it with
#: (the spec's table of identical layouts, restricted to what we carry).
LAYOUTS: Final[dict[str, dict[int, int]]] = {
    "ToServer": {7: 7, 8: 8},
    "ToClient": {6: 7, 7: 7, 8: 8},
    "ToRunner": {5: 7, 6: 7, 7: 7, 8: 8},
    "ToGateway": {4: 7, 5: 7, 6: 7, 7: 7, 8: 8},
    "ActorCommandKeyData": {5: 7, 6: 7, 7: 7, 8: 8},
    "ToServerlessServer": {7: 7, 8: 8},
}

_VERSION_PREFIX = struct.Struct("<H")


def layout_version(type_name: str, version: int) -> int | None:
    """The generated module version whose layout encodes ``type_name`` at ``version``."""
    if type_name in LAYOUTS:
        return LAYOUTS[type_name].get(version)
    return version if version in _MODULES else None


def bare_type(type_name: str, version: int) -> BareType:
    """The strict BARE definition of any named type at a protocol version.

    Raises KeyError for an unknown type name or unsupported version.
    """
    layout = layout_version(type_name, version)
    if layout is None:
        raise KeyError(f"version {version} is not supported for {type_name}")
    found: BareType = _MODULES[layout].TYPES[type_name]
    return found


def _as_bytes(data: Any, path: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise DecodeError(f"expected bytes, got {type(data).__name__}", path)


def _lookup(type_name: str, version: int, error: type[DecodeError] | type[EncodeError]) -> BareType:
    try:
        return bare_type(type_name, version)
    except KeyError:
        if type_name not in v8.TYPES:
            raise error(f"unknown type {type_name!r}", type_name) from None
        raise error(f"protocol version {version} is not supported", type_name) from None


@dataclass(frozen=True, slots=True)
class _Entry:
    """Everything the hot path needs for one (type, version), computed once."""

    name: str
    version: int
    layout: BareType
    latest: BareType
    decode_at: Callable[[bytes, int, int], tuple[Any, int]]
    encode_into: Callable[[Any, Callable[[bytes], None]], None]

    @property
    def same_as_latest(self) -> bool:
        return self.layout is self.latest


_entries: dict[tuple[str, int], _Entry] = {}


def _entry(type_name: str, version: int, error: type[DecodeError] | type[EncodeError]) -> _Entry:
    entry = _entries.get((type_name, version))
    if entry is None:
        layout = _lookup(type_name, version, error)
        compiled = compile_type(layout)
        latest = _lookup(type_name, LATEST, error)
        entry = _Entry(type_name, version, layout, latest, compiled.decode_at, compiled.encode_into)
        _entries[(type_name, version)] = entry
    return entry


def _explain_decode(t: BareType, type_name: str, data: bytes) -> DecodeError:
    stream = io.BytesIO(data)
    try:
        t._parse(stream, None, type_name)
    except BareParseError as exc:
        return DecodeError(exc.reason, str(exc.path), exc.offset)
    except Exception as exc:  # a bug in a primitive; still never escapes as anything else
        return DecodeError(f"internal decoder error: {exc!r}", type_name, stream.tell())
    end = stream.tell()
    if end != len(data):
        return DecodeError(f"{len(data) - end} trailing bytes after the message", type_name, end)
    return DecodeError("compiled decoder rejected a valid message (bug)", type_name, 0)


def _decode_entry(entry: _Entry, data: Any, max_size: int) -> Any:
    raw = data if data.__class__ is bytes else _as_bytes(data, entry.name)
    n = len(raw)
    if n > max_size:
        raise DecodeError(f"message of {n} bytes exceeds the maximum of {max_size}", entry.name, 0)
    try:
        value, end = entry.decode_at(raw, 0, n)
        if end == n:
            return value
    except Exception:
        pass
    raise _explain_decode(entry.layout, entry.name, raw)


def decode_raw(
    type_name: str, data: bytes, version: int, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> Any:
    """Decode one whole message in the types of ``version``'s own module."""
    return _decode_entry(_entry(type_name, version, DecodeError), data, max_size)


def _explain_encode(t: BareType, type_name: str, value: Any) -> EncodeError:
    try:
        t._build(value, io.BytesIO(), None, type_name)
    except BareBuildError as exc:
        return EncodeError(exc.reason, str(exc.path))
    except Exception as exc:
        return EncodeError(f"cannot encode: {exc!r}", type_name)
    return EncodeError("compiled encoder rejected a valid value (bug)", type_name)


def _encode_entry(entry: _Entry, value: Any, max_size: int) -> bytes:
    parts: list[bytes] = []
    try:
        entry.encode_into(value, parts.append)
        out = b"".join(parts)
    except Exception:
        raise _explain_encode(entry.layout, entry.name, value) from None
    if len(out) > max_size:
        raise EncodeError(
            f"encoding of {len(out)} bytes exceeds the maximum of {max_size}", entry.name
        )
    return out


def encode_raw(
    type_name: str, value: Any, version: int, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    """Encode a value given in the types of ``version``'s own module."""
    return _encode_entry(_entry(type_name, version, EncodeError), value, max_size)


def upgrade(type_name: str, value: Any, from_version: int) -> Any:
    """Convert a value of ``from_version``'s types to the latest types."""
    src = bare_type(type_name, from_version)
    return _convert.convert(value, src, bare_type(type_name, LATEST), type_name)


def downgrade(type_name: str, value: Any, to_version: int) -> Any:
    """Convert a value of the latest types to ``to_version``'s types (drops what it lacks)."""
    dst = bare_type(type_name, to_version)
    return _convert.convert(value, bare_type(type_name, LATEST), dst, type_name)


def _upgrade_entry(entry: _Entry, value: Any) -> Any:
    if entry.layout is entry.latest:
        return value
    try:
        return _convert.convert(value, entry.layout, entry.latest, entry.name)
    except Exception as exc:
        raise DecodeError(f"cannot upgrade to v{LATEST}: {exc}", entry.name) from None


def _downgrade_and_encode(entry: _Entry, value: Any, max_size: int) -> bytes:
    if entry.layout is entry.latest:
        return _encode_entry(entry, value, max_size)
    try:
        older = _convert.convert(value, entry.latest, entry.layout, entry.name)
    except Exception:
        raise _explain_encode(entry.latest, entry.name, value) from None
    return _encode_entry(entry, older, max_size)


def decode(
    type_name: str, data: bytes, version: int, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> Any:
    """Decode with ``version``'s layout and return the value in the latest (v8) types."""
    entry = _entry(type_name, version, DecodeError)
    return _upgrade_entry(entry, _decode_entry(entry, data, max_size))


def encode(
    type_name: str, value: Any, version: int, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    """Encode a latest-types value with ``version``'s layout (downgrading first)."""
    return _downgrade_and_encode(_entry(type_name, version, EncodeError), value, max_size)


def read_embedded_version(data: bytes) -> int:
    """The version of an embedded-version payload (its first two bytes, little-endian)."""
    raw = _as_bytes(data, "version")
    if len(raw) < 2:
        raise DecodeError("embedded payload shorter than its 2-byte version", "version", 0)
    version: int = _VERSION_PREFIX.unpack_from(raw)[0]
    return version


def decode_embedded_raw(
    type_name: str, data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> tuple[int, Any]:
    """Decode ``u16 version || body``; returns (version, value in that layout's own types)."""
    version = read_embedded_version(data)
    if layout_version(type_name, version) is None:
        raise DecodeError(f"unsupported embedded version {version}", "version", 0)
    body = _as_bytes(data, "version")[2:]
    try:
        return version, decode_raw(type_name, body, version, max_size=max_size)
    except DecodeError as exc:
        offset = None if exc.offset is None else exc.offset + 2
        raise DecodeError(exc.reason, exc.path, offset) from None


def decode_embedded(
    type_name: str, data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> Any:
    """Decode an embedded-version payload and upgrade it to the latest types."""
    version, value = decode_embedded_raw(type_name, data, max_size=max_size)
    return _upgrade_entry(_entry(type_name, version, DecodeError), value)


def encode_embedded(
    type_name: str,
    value: Any,
    version: int = LATEST,
    *,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> bytes:
    """Encode a latest-types value as ``u16 version || body`` in ``version``'s layout."""
    return _VERSION_PREFIX.pack(version) + encode(type_name, value, version, max_size=max_size)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Fast:
    """The hot path of one (type, version): whole-message compiled functions."""

    decode_all: Callable[[bytes], Any]
    encode_all: Callable[[Any], bytes]
    #: the layout is the latest's (no conversion needed)
    same: bool
    entry: _Entry
    #: classes of the union members this layout shares with the latest (the same definition,
    #: imported by the newer generated module): their values need no conversion either way
    shared: frozenset[type]


def _shared_members(layout: BareType, latest: BareType) -> frozenset[type]:
    if layout is latest or not (isinstance(layout, Union) and isinstance(latest, Union)):
        return frozenset()
    shared: set[type] = set()
    for member in layout.members:
        tag = latest.by_name.get(member.type_name)
        if tag is not None and latest.members[tag] is member:
            shared.add(member.cls)
    return frozenset(shared)


class TopLevel(Generic[T]):
    """Typed access to one top-level message type; values are the latest (v8) types.

    This is the runtime's hot path: per-version state is looked up once and cached here.
    """

    __slots__ = ("_fast_by_version", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._fast_by_version: dict[int, _Fast] = {}

    def _path(self, version: int, error: type[DecodeError] | type[EncodeError]) -> _Fast:
        fast = self._fast_by_version.get(version)
        if fast is None:
            entry = _entry(self.name, version, error)
            compiled = compile_type(entry.layout)
            fast = _Fast(
                compiled.decode_all,
                compiled.encode_all,
                entry.layout is entry.latest,
                entry,
                _shared_members(entry.layout, entry.latest),
            )
            self._fast_by_version[version] = fast
        return fast

    def decode(self, data: bytes, version: int, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> T:
        try:
            fast = self._fast_by_version[version]
        except KeyError:
            fast = self._path(version, DecodeError)
        if data.__class__ is bytes and len(data) <= max_size:
            try:
                value = fast.decode_all(data)
            except Exception:
                pass
            else:
                if fast.same or value.__class__ in fast.shared:
                    result: T = value
                    return result
                upgraded: T = _upgrade_entry(fast.entry, value)
                return upgraded
        slow: T = _upgrade_entry(fast.entry, _decode_entry(fast.entry, data, max_size))
        return slow

    def encode(self, value: T, version: int, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
        try:
            fast = self._fast_by_version[version]
        except KeyError:
            fast = self._path(version, EncodeError)
        if fast.same or value.__class__ in fast.shared:
            try:
                out = fast.encode_all(value)
            except Exception:
                pass
            else:
                if len(out) <= max_size:
                    return out
        return _downgrade_and_encode(fast.entry, value, max_size)

    def decode_embedded(self, data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> T:
        value: T = decode_embedded(self.name, data, max_size=max_size)
        return value

    def encode_embedded(
        self, value: T, version: int = LATEST, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> bytes:
        return encode_embedded(self.name, value, version, max_size=max_size)

    def __repr__(self) -> str:
        return f"TopLevel({self.name!r})"


TO_CLIENT: Final = TopLevel[v8.ToClient]("ToClient")
TO_SERVER: Final = TopLevel[v8.ToServer]("ToServer")
TO_RUNNER: Final = TopLevel[v8.ToRunner]("ToRunner")
TO_GATEWAY: Final = TopLevel[v8.ToGateway]("ToGateway")
TO_SERVERLESS_SERVER: Final = TopLevel[v8.ToServerlessServer]("ToServerlessServer")
ACTOR_COMMAND_KEY_DATA: Final = TopLevel[v8.ActorCommandKeyData]("ActorCommandKeyData")
