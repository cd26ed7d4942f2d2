"""Strict BARE scalar types: uint, int, fixed-width integers, bool, str, data, data[N], void.

Laxness closed here (all of it present in stock Construct 2.10.70): non-canonical or over-long
varints, varints above 2**64-1, bool bytes other than 0/1, invalid UTF-8, and any length that is
not first checked against the bytes actually remaining.
"""

from __future__ import annotations

import operator
import struct
from typing import TYPE_CHECKING, Any

from codec.bare.core import (
    BareBuildError,
    BareParseError,
    BareType,
    JsonValue,
    read_byte,
    read_exact,
    remaining,
)

if TYPE_CHECKING:
    from codec.bare.compiler import Gen

MAX_U64 = (1 << 64) - 1
MAX_VARINT_BYTES = 10


# -- varint helpers shared by both paths ------------------------------------------------------


def read_uvarint(stream: Any, path: str) -> int:
    """Interpreted unsigned LEB128 read: minimal form only, at most 10 bytes, at most 2**64-1."""
    start = stream.tell()
    result = 0
    for i in range(MAX_VARINT_BYTES):
        c = read_byte(stream, path)
        if i == MAX_VARINT_BYTES - 1 and c > 1:
            raise BareParseError("varint exceeds 64 bits", path, start)
        result |= (c & 0x7F) << (7 * i)
        if c < 0x80:
            if c == 0 and i > 0:
                raise BareParseError("non-canonical varint (trailing zero byte)", path, start)
            return result
    raise BareParseError("varint longer than 10 bytes", path, start)


def uvarint_bytes(value: int) -> bytes:
    """Minimal unsigned LEB128 encoding of ``0 <= value <= 2**64-1`` (caller checks range)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def check_uint(value: Any, path: str, maximum: int = MAX_U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BareBuildError(f"expected an integer, got {type(value).__name__}", path)
    if not 0 <= value <= maximum:
        raise BareBuildError(f"integer {value} out of range 0..{maximum}", path)
    return value


def check_length(n: int, stream: Any, path: str, per_item: int = 1) -> None:
    """A length or count read from the wire must fit in what is left of the input."""
    left = remaining(stream)
    if n * per_item > left:
        what = f"length {n}" if per_item == 1 else f"count {n} (at least {n * per_item} bytes)"
        raise BareParseError(f"{what} exceeds the {left} bytes remaining", path, stream.tell())


def as_bytes(value: Any, path: str = "") -> bytes:
    """Accept bytes, bytearray and memoryview (raw bytes); reject everything else."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise BareBuildError(f"expected bytes, got {type(value).__name__}", path)


def as_str(value: Any, path: str = "") -> str:
    if not isinstance(value, str):
        raise BareBuildError(f"expected str, got {type(value).__name__}", path)
    return value


def utf8(value: str, path: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BareBuildError(f"string is not encodable as UTF-8: {exc.reason}", path) from None


def hex_to_bytes(value: JsonValue, path: str) -> bytes:
    if not isinstance(value, str):
        raise BareBuildError("expected a lowercase hex string", path)
    if value != value.lower():
        raise BareBuildError("hex must be lowercase", path)
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BareBuildError("invalid hex string", path) from None


def json_int(value: JsonValue, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BareBuildError("expected a JSON integer", path)
    return value


# -- types ------------------------------------------------------------------------------------


class Uint(BareType):
    """BARE ``uint``: unsigned LEB128, canonical, at most 64 bits."""

    def _parse(self, stream: Any, context: Any, path: Any) -> int:
        return read_uvarint(stream, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        stream.write(uvarint_bytes(check_uint(obj, path)))
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        g.emit_uvarint(out, ind, target)

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        out.append(f"{ind}if {src}.__class__ is not int: {src} = _strict_int({src})")
        out.append(f"{ind}if not 0 <= {src} <= {MAX_U64}: raise _Fail")
        g.emit_uvarint_append(out, ind, src)

    def to_json(self, value: Any) -> JsonValue:
        return value

    def from_json(self, value: JsonValue, path: str) -> Any:
        return check_uint(json_int(value, path), path)

    def describe(self) -> str:
        return "uint"


class Int(BareType):
    """BARE ``int``: zig-zag then LEB128, in the i64 range."""

    def _parse(self, stream: Any, context: Any, path: Any) -> int:
        u = read_uvarint(stream, path)
        return (u >> 1) ^ -(u & 1)

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise BareBuildError(f"expected an integer, got {type(obj).__name__}", path)
        if not -(1 << 63) <= obj < (1 << 63):
            raise BareBuildError(f"integer {obj} out of the int (i64) range", path)
        stream.write(uvarint_bytes(((obj << 1) ^ (obj >> 63)) & MAX_U64))
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        g.emit_uvarint(out, ind, target)
        out.append(f"{ind}{target} = ({target} >> 1) ^ -({target} & 1)")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        z = g.tmp()
        out.append(f"{ind}if {src}.__class__ is not int: {src} = _strict_int({src})")
        out.append(f"{ind}if not {-(1 << 63)} <= {src} < {1 << 63}: raise _Fail")
        out.append(f"{ind}{z} = (({src} << 1) ^ ({src} >> 63)) & {MAX_U64}")
        g.emit_uvarint_append(out, ind, z)

    def to_json(self, value: Any) -> JsonValue:
        return value

    def from_json(self, value: JsonValue, path: str) -> Any:
        return json_int(value, path)

    def describe(self) -> str:
        return "int"


class FixedInt(BareType):
    """``u8``..``u64``, ``i8``..``i64``: fixed width, little-endian."""

    def __init__(self, bare_name: str, fmt: str) -> None:
        super().__init__()
        self.bare_name = bare_name
        self.packer = struct.Struct("<" + fmt)
        self.min_size = self.packer.size
        bits = 8 * self.packer.size
        signed = fmt.islower()
        self.lo = -(1 << (bits - 1)) if signed else 0
        self.hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def _parse(self, stream: Any, context: Any, path: Any) -> int:
        value: int = self.packer.unpack(read_exact(stream, self.packer.size, path))[0]
        return value

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise BareBuildError(f"expected an integer, got {type(obj).__name__}", path)
        if not self.lo <= obj <= self.hi:
            raise BareBuildError(
                f"integer {obj} out of range {self.lo}..{self.hi} for {self.bare_name}", path
            )
        stream.write(self.packer.pack(obj))
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        s = g.struct_packer(self.packer.format)
        out.append(f"{ind}{target}, = {s}.unpack_from(b, p)")
        out.append(f"{ind}p += {self.packer.size}")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        self.emit_encode_check(g, out, ind, src)
        out.append(f"{ind}a({g.struct_packer(self.packer.format)}.pack({src}))")

    def emit_encode_check(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        """Validate ``src`` for packing (the range is checked by ``struct.pack``)."""
        out.append(f"{ind}if {src}.__class__ is not int: {src} = _strict_int({src})")

    def to_json(self, value: Any) -> JsonValue:
        return value

    def from_json(self, value: JsonValue, path: str) -> Any:
        v = json_int(value, path)
        if not self.lo <= v <= self.hi:
            raise BareBuildError(f"integer {v} out of range for {self.bare_name}", path)
        return v

    def describe(self) -> str:
        return self.bare_name

    def stride_segments(self) -> tuple[str, ...] | None:
        return (self.packer.format[1:],)


class Bool(BareType):
    """``bool``: exactly one byte, 00 or 01."""

    def _parse(self, stream: Any, context: Any, path: Any) -> bool:
        start = stream.tell()
        c = read_byte(stream, path)
        if c > 1:
            raise BareParseError(f"invalid bool byte 0x{c:02x}", path, start)
        return c == 1

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if not isinstance(obj, bool):
            raise BareBuildError(f"expected bool, got {type(obj).__name__}", path)
        stream.write(b"\x01" if obj else b"\x00")
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        out.append(f"{ind}{target} = _BOOLS[b[p]]")
        out.append(f"{ind}p += 1")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        out.append(f"{ind}if {src} is True: a(b'\\x01')")
        out.append(f"{ind}elif {src} is False: a(b'\\x00')")
        out.append(f"{ind}else: raise _Fail")

    def to_json(self, value: Any) -> JsonValue:
        return value

    def from_json(self, value: JsonValue, path: str) -> Any:
        if not isinstance(value, bool):
            raise BareBuildError("expected true or false", path)
        return value

    def describe(self) -> str:
        return "bool"


class Data(BareType):
    """``data``: uint length, then raw bytes."""

    def _parse(self, stream: Any, context: Any, path: Any) -> bytes:
        n = read_uvarint(stream, path)
        check_length(n, stream, path)
        return read_exact(stream, n, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        raw = as_bytes(obj, path)
        stream.write(uvarint_bytes(len(raw)))
        stream.write(raw)
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        g.emit_length_prefixed(out, ind, target, "")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        out.append(f"{ind}if {src}.__class__ is not bytes: {src} = _as_bytes({src})")
        n = g.tmp()
        out.append(f"{ind}{n} = len({src})")
        g.emit_uvarint_append(out, ind, n)
        out.append(f"{ind}a({src})")

    def to_json(self, value: Any) -> JsonValue:
        return bytes(value).hex()

    def from_json(self, value: JsonValue, path: str) -> Any:
        return hex_to_bytes(value, path)

    def describe(self) -> str:
        return "data"

    def stride_segments(self) -> tuple[str, ...] | None:
        return ("data",)


class Str(BareType):
    """``str``: uint byte length, then strict UTF-8."""

    def _parse(self, stream: Any, context: Any, path: Any) -> str:
        start = stream.tell()
        n = read_uvarint(stream, path)
        check_length(n, stream, path)
        raw = read_exact(stream, n, path)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BareParseError(f"invalid UTF-8: {exc.reason}", path, start) from None

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        raw = utf8(as_str(obj, path), path)
        stream.write(uvarint_bytes(len(raw)))
        stream.write(raw)
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        g.emit_length_prefixed(out, ind, target, ".decode()")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        raw, n = g.tmp(), g.tmp()
        out.append(f"{ind}if {src}.__class__ is not str: {src} = _as_str({src})")
        out.append(f"{ind}{raw} = {src}.encode()")
        out.append(f"{ind}{n} = len({raw})")
        g.emit_uvarint_append(out, ind, n)
        out.append(f"{ind}a({raw})")

    def to_json(self, value: Any) -> JsonValue:
        return value

    def from_json(self, value: JsonValue, path: str) -> Any:
        if not isinstance(value, str):
            raise BareBuildError("expected a string", path)
        utf8(value, path)
        return value

    def describe(self) -> str:
        return "str"

    def stride_segments(self) -> tuple[str, ...] | None:
        return ("str",)


class FixedData(BareType):
    """``data[N]``: exactly N raw bytes, no length prefix."""

    def __init__(self, length: int) -> None:
        super().__init__()
        if length < 1:
            raise ValueError("data[N] needs N >= 1")
        self.length = length
        self.min_size = length

    def _parse(self, stream: Any, context: Any, path: Any) -> bytes:
        return read_exact(stream, self.length, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        raw = as_bytes(obj, path)
        if len(raw) != self.length:
            raise BareBuildError(f"expected exactly {self.length} bytes, got {len(raw)}", path)
        stream.write(raw)
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        q = g.tmp()
        out.append(f"{ind}{q} = p + {self.length}")
        out.append(f"{ind}{target} = b[p:{q}]")
        out.append(f"{ind}p = {q}")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        self.emit_encode_check(g, out, ind, src)
        out.append(f"{ind}a({src})")

    def emit_encode_check(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        """Make ``src`` bytes of exactly the right length (``struct``'s ``Ns`` would pad or
        truncate)."""
        out.append(f"{ind}if {src}.__class__ is not bytes: {src} = _as_bytes({src})")
        out.append(f"{ind}if len({src}) != {self.length}: raise _Fail")

    def to_json(self, value: Any) -> JsonValue:
        return bytes(value).hex()

    def from_json(self, value: JsonValue, path: str) -> Any:
        raw = hex_to_bytes(value, path)
        if len(raw) != self.length:
            raise BareBuildError(f"expected exactly {self.length} bytes, got {len(raw)}", path)
        return raw

    def describe(self) -> str:
        return f"data[{self.length}]"

    def stride_segments(self) -> tuple[str, ...] | None:
        return (f"{self.length}s",)


class Void(BareType):
    """``void``: zero bytes; the value is None. Only meaningful as a union member."""

    min_size = 0

    def _parse(self, stream: Any, context: Any, path: Any) -> None:
        return None

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if obj is not None:
            raise BareBuildError("void takes None", path)
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        out.append(f"{ind}{target} = None")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        out.append(f"{ind}if {src} is not None: raise _Fail")

    def to_json(self, value: Any) -> JsonValue:
        return None

    def from_json(self, value: JsonValue, path: str) -> Any:
        if value is not None:
            raise BareBuildError("void takes null", path)
        return None

    def describe(self) -> str:
        return "void"


def strict_int(value: Any) -> int:
    """Used by emitted code: ints only (bool and other int subclasses are normalised)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return operator.index(value)


UINT = Uint()
INT = Int()
U8 = FixedInt("u8", "B")
U16 = FixedInt("u16", "H")
U32 = FixedInt("u32", "I")
U64 = FixedInt("u64", "Q")
I8 = FixedInt("i8", "b")
I16 = FixedInt("i16", "h")
I32 = FixedInt("i32", "i")
I64 = FixedInt("i64", "q")
BOOL = Bool()
STR = Str()
DATA = Data()
VOID = Void()
