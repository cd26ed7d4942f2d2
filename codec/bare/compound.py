"""Strict BARE compound types: optional, list, map, enum, struct, wrapper (named alias) and union.

Laxness closed here: optional tags other than 0/1, unknown union tags and enum values, duplicate
map keys, and list/map counts that could not possibly fit in the remaining input (checked before
a single element is read, using the element type's minimum encoded size).

Named types decode to Python classes: a struct to a frozen dataclass (a void union member is a
struct with no fields), an enum to an ``IntEnum``, a non-struct alias used as a union member
(``type ToServerEvents list<EventWrapper>``) to a one-field ``Wrapper`` class.
"""

from __future__ import annotations

import enum
import struct
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codec.bare.core import (
    BareBuildError,
    BareParseError,
    BareType,
    JsonValue,
    join_path,
    read_byte,
)
from codec.bare.scalars import (
    FixedData,
    FixedInt,
    check_length,
    read_uvarint,
    uvarint_bytes,
)

if TYPE_CHECKING:
    from codec.bare.compiler import Gen

#: Lists shorter than this are decoded element by element: below it, the uniform-stride
#: decoder's fixed cost (a call, a format lookup) outweighs what it saves.
UNIFORM_MIN = 8


class Optional(BareType):
    """``optional<T>``: a 00 byte (absent, None) or 01 then T."""

    def __init__(self, inner: BareType) -> None:
        super().__init__()
        self.inner = inner

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        start = stream.tell()
        tag = read_byte(stream, path)
        if tag == 0:
            return None
        if tag != 1:
            raise BareParseError(f"invalid optional tag 0x{tag:02x}", path, start)
        return self.inner._parsereport(stream, context, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if obj is None:
            stream.write(b"\x00")
        else:
            stream.write(b"\x01")
            self.inner._build(obj, stream, context, path)
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        t = g.tmp()
        out.append(f"{ind}{t} = b[p]")
        out.append(f"{ind}p += 1")
        out.append(f"{ind}if {t} == 0:")
        out.append(f"{ind}    {target} = None")
        out.append(f"{ind}elif {t} == 1:")
        self.inner.emit_decode(g, out, ind + "    ", target)
        out.append(f"{ind}else:")
        out.append(f"{ind}    raise _Fail")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        out.append(f"{ind}if {src} is None:")
        out.append(f"{ind}    a(b'\\x00')")
        out.append(f"{ind}else:")
        out.append(f"{ind}    a(b'\\x01')")
        self.inner.emit_encode(g, out, ind + "    ", src)

    def to_json(self, value: Any) -> JsonValue:
        return None if value is None else self.inner.to_json(value)

    def from_json(self, value: JsonValue, path: str) -> Any:
        return None if value is None else self.inner.from_json(value, path)

    def describe(self) -> str:
        return f"optional<{self.inner.describe()}>"


def _check_sequence(obj: Any, path: str) -> Sequence[Any]:
    if not isinstance(obj, list | tuple):
        raise BareBuildError(f"expected a list, got {type(obj).__name__}", path)
    return obj


class List(BareType):
    """``list<T>``: uint count, then the elements."""

    min_size = 1

    def __init__(self, inner: BareType) -> None:
        super().__init__()
        if inner.min_size < 1:
            raise ValueError("list elements must have a non-empty encoding (no void)")
        self.inner = inner

    def _parse(self, stream: Any, context: Any, path: Any) -> list[Any]:
        n = read_uvarint(stream, path)
        check_length(n, stream, path, self.inner.min_size)
        return [self.inner._parsereport(stream, context, f"{path}[{i}]") for i in range(n)]

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        items = _check_sequence(obj, path)
        stream.write(uvarint_bytes(len(items)))
        for i, item in enumerate(items):
            self.inner._build(item, stream, context, f"{path}[{i}]")
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        n, i, item = g.tmp(), g.tmp(), g.tmp()
        g.emit_uvarint(out, ind, n)
        # The count is bounded by the input before the list is allocated at its full size
        # (an indexed store is cheaper than an append call).
        out.append(f"{ind}if {n} * {self.inner.min_size} > e - p: raise _Fail")
        uniform = g.uniform_decoder(self.inner)
        if uniform is not None:
            # Elements that all encode to the same bytes layout are decoded at once (see
            # Gen.uniform_decoder); anything else, element by element below.
            u = g.tmp()
            out.append(f"{ind}{u} = {uniform}(b, p, {n}, e) if {n} >= {UNIFORM_MIN} else None")
            out.append(f"{ind}if {u} is not None:")
            out.append(f"{ind}    {target}, p = {u}")
            out.append(f"{ind}else:")
            ind += "    "
        out.append(f"{ind}{target} = [None] * {n}")
        out.append(f"{ind}for {i} in range({n}):")
        self.inner.emit_decode(g, out, ind + "    ", item)
        out.append(f"{ind}    {target}[{i}] = {item}")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        n, item = g.tmp(), g.tmp()
        out.append(
            f"{ind}if {src}.__class__ is not list and {src}.__class__ is not tuple"
            f" and not isinstance({src}, _SEQ):"
        )
        out.append(f"{ind}    raise _Fail")
        out.append(f"{ind}{n} = len({src})")
        g.emit_uvarint_append(out, ind, n)
        out.append(f"{ind}for {item} in {src}:")
        self.inner.emit_encode(g, out, ind + "    ", item)

    def to_json(self, value: Any) -> JsonValue:
        return [self.inner.to_json(v) for v in value]

    def from_json(self, value: JsonValue, path: str) -> Any:
        if not isinstance(value, list):
            raise BareBuildError("expected a JSON array", path)
        return [self.inner.from_json(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def describe(self) -> str:
        return f"list<{self.inner.describe()}>"


class Map(BareType):
    """``map<K><V>``: uint count, then key/value pairs; a repeated key is a decode error.
    Encoders write pairs in the dict's iteration order."""

    def __init__(self, key: BareType, value: BareType) -> None:
        super().__init__()
        self.key = key
        self.value = value
        self.pair_min = max(1, key.min_size + value.min_size)

    def _parse(self, stream: Any, context: Any, path: Any) -> dict[Any, Any]:
        n = read_uvarint(stream, path)
        check_length(n, stream, path, self.pair_min)
        result: dict[Any, Any] = {}
        for i in range(n):
            start = stream.tell()
            k = self.key._parsereport(stream, context, f"{path}{{key {i}}}")
            if k in result:
                raise BareParseError(f"duplicate map key {k!r}", path, start)
            result[k] = self.value._parsereport(stream, context, f"{path}[{k!r}]")
        return result

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if not isinstance(obj, dict):
            raise BareBuildError(f"expected a dict, got {type(obj).__name__}", path)
        stream.write(uvarint_bytes(len(obj)))
        for k, v in obj.items():
            self.key._build(k, stream, context, f"{path}{{key {k!r}}}")
            self.value._build(v, stream, context, f"{path}[{k!r}]")
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        n, k, v = g.tmp(), g.tmp(), g.tmp()
        g.emit_uvarint(out, ind, n)
        out.append(f"{ind}if {n} * {self.pair_min} > e - p: raise _Fail")
        out.append(f"{ind}{target} = {{}}")
        out.append(f"{ind}for _ in range({n}):")
        self.key.emit_decode(g, out, ind + "    ", k)
        out.append(f"{ind}    if {k} in {target}: raise _Fail")
        self.value.emit_decode(g, out, ind + "    ", v)
        out.append(f"{ind}    {target}[{k}] = {v}")

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        n, k, v = g.tmp(), g.tmp(), g.tmp()
        out.append(f"{ind}if {src}.__class__ is not dict and not isinstance({src}, dict):")
        out.append(f"{ind}    raise _Fail")
        out.append(f"{ind}{n} = len({src})")
        g.emit_uvarint_append(out, ind, n)
        out.append(f"{ind}for {k}, {v} in {src}.items():")
        self.key.emit_encode(g, out, ind + "    ", k)
        self.value.emit_encode(g, out, ind + "    ", v)

    def to_json(self, value: Any) -> JsonValue:
        return {str(self.key.to_json(k)): self.value.to_json(v) for k, v in value.items()}

    def from_json(self, value: JsonValue, path: str) -> Any:
        if not isinstance(value, dict):
            raise BareBuildError("expected a JSON object", path)
        return {
            self.key.from_json(k, f"{path}{{key {k!r}}}"): self.value.from_json(v, f"{path}[{k!r}]")
            for k, v in value.items()
        }

    def describe(self) -> str:
        return f"map<{self.key.describe()}><{self.value.describe()}>"


class Enum(BareType):
    """A BARE enum decoded to members of an ``IntEnum`` whose values are 0..n-1 in declaration
    order (the wire value is the uint position)."""

    def __init__(self, name: str, cls: type[enum.IntEnum]) -> None:
        super().__init__()
        self.type_name = name
        self.cls = cls
        self.members = tuple(cls)
        if [m.value for m in self.members] != list(range(len(self.members))):
            raise ValueError(f"enum {name} values must be 0..n-1 in order")

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        start = stream.tell()
        v = read_uvarint(stream, path)
        if v >= len(self.members):
            raise BareParseError(f"unknown {self.type_name} value {v}", path, start)
        return self.members[v]

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if not isinstance(obj, self.cls):
            raise BareBuildError(f"expected a {self.type_name} member, got {obj!r}", path)
        stream.write(uvarint_bytes(obj.value))
        return obj

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        g.call_decode(self, out, ind, target)

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        g.call_encode(self, out, ind, src)

    def emit_decode_body(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        members = g.const(self.members, f"members_{self.type_name}")
        if len(self.members) <= 128:
            # Valid values are one byte; anything else indexes past the members and fails.
            out.append(f"{ind}{target} = {members}[b[p]]")
            out.append(f"{ind}p += 1")
        else:
            g.emit_uvarint(out, ind, target)
            out.append(f"{ind}{target} = {members}[{target}]")

    def emit_encode_body(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        cls = g.const(self.cls, self.type_name or "enum")
        out.append(f"{ind}if {src}.__class__ is not {cls}: raise _Fail")
        g.emit_uvarint_append(out, ind, f"{src}.value")

    def to_json(self, value: Any) -> JsonValue:
        return value.name

    def from_json(self, value: JsonValue, path: str) -> Any:
        if not isinstance(value, str) or value not in self.cls.__members__:
            names = ", ".join(self.cls.__members__)
            raise BareBuildError(f"expected one of {names}", path)
        return self.cls[value]

    def describe(self) -> str:
        return self.type_name or "enum"


def _fixed_format(t: BareType) -> str:
    """The ``struct`` format code of a fixed-width type: its one stride segment."""
    segments = t.stride_segments()
    assert segments is not None and len(segments) == 1
    return segments[0]


class _Inline(BareType):
    """A named type whose code is emitted inline into its users (no call per value)."""

    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        self.emit_decode_body(g, out, ind, target)

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        self.emit_encode_body(g, out, ind, src)

    def emit_decode_body(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        raise NotImplementedError

    def emit_encode_body(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        raise NotImplementedError


class Field:
    """One struct field: ``wire_name`` as in the schema (and the JSON mapping), ``attr`` the
    Python attribute name."""

    __slots__ = ("attr", "type", "wire_name")

    def __init__(self, wire_name: str, attr: str, type_: BareType) -> None:
        self.wire_name = wire_name
        self.attr = attr
        self.type = type_


class Struct(_Inline):
    """A BARE struct decoded to ``cls(*fields)``. With no fields it is a void union member
    (zero bytes; JSON ``null``)."""

    def __init__(self, name: str, cls: type[Any], fields: list[Field]) -> None:
        super().__init__()
        self.type_name = name
        self.cls = cls
        self.fields = fields
        self.min_size = sum(f.type.min_size for f in fields)

    @property
    def is_void(self) -> bool:
        return not self.fields

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        return self.cls(
            *[
                f.type._parsereport(stream, context, join_path(path, f.wire_name))
                for f in self.fields
            ]
        )

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if type(obj) is not self.cls:
            raise BareBuildError(f"expected {self.type_name}, got {type(obj).__name__}", path)
        for f in self.fields:
            f.type._build(getattr(obj, f.attr), stream, context, join_path(path, f.wire_name))
        return obj

    def _field_groups(self) -> list[tuple[list[Field], str | None]]:
        """The fields in order, grouped: each run of two or more fixed-width fields as one group
        with its ``struct`` format (read or written with one call), every other field alone
        with None."""
        groups: list[tuple[list[Field], str | None]] = []
        i = 0
        while i < len(self.fields):
            j = i
            while j < len(self.fields) and isinstance(self.fields[j].type, FixedInt | FixedData):
                j += 1
            if j - i >= 2:
                run = self.fields[i:j]
                groups.append((run, "<" + "".join(_fixed_format(f.type) for f in run)))
                i = j
            else:
                groups.append(([self.fields[i]], None))
                i += 1
        return groups

    def emit_decode_body(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        names: list[str] = []
        for fields, fmt in self._field_groups():
            if fmt is not None:
                # A run of fixed-width fields is one struct.unpack_from (bytes via "Ns").
                run = [g.tmp() for _ in fields]
                out.append(f"{ind}{', '.join(run)}, = {g.struct_packer(fmt)}.unpack_from(b, p)")
                out.append(f"{ind}p += {struct.calcsize(fmt)}")
                names += run
            else:
                name = g.tmp()
                fields[0].type.emit_decode(g, out, ind, name)
                names.append(name)
        self.emit_construct(g, out, ind, target, names)

    def emit_construct(
        self, g: Gen, out: list[str], ind: str, target: str, names: list[str]
    ) -> None:
        """Build the value in ``target`` from its fields' decoded values in locals ``names``."""
        cls = g.const(self.cls, self.type_name or "struct")
        twin = g.twin(self.cls, [f.attr for f in self.fields]) if self.fields else None
        slots = [self.cls.__dict__.get(f.attr) for f in self.fields]
        if twin is not None:
            out.append(f"{ind}{target} = {twin}()")
            for f, name in zip(self.fields, names, strict=True):
                out.append(f"{ind}{target}.{f.attr} = {name}")
            out.append(f"{ind}{target}.__class__ = {cls}")
        elif self.fields and all(isinstance(d, types.MemberDescriptorType) for d in slots):
            # Frozen dataclasses pay ~0.6 us in __init__ (object.__setattr__ per field); writing
            # the slots directly builds the identical object in about half the time.
            out.append(f"{ind}{target} = _new({cls})")
            for f, desc, name in zip(self.fields, slots, names, strict=True):
                setter = g.const(desc.__set__, f"set_{self.type_name}_{f.attr}")  # type: ignore[union-attr]
                out.append(f"{ind}{setter}({target}, {name})")
        else:
            out.append(f"{ind}{target} = {cls}({', '.join(names)})")

    def stride_segments(self) -> tuple[str, ...] | None:
        if not self.fields:
            return None
        segments: list[str] = []
        for f in self.fields:
            inner = f.type.stride_segments()
            if inner is None:
                return None
            segments += inner
        return tuple(segments)

    def emit_from_segments(
        self, g: Gen, out: list[str], ind: str, target: str, values: list[str]
    ) -> None:
        """Build the value in ``target`` from the decoded scalars of :meth:`stride_segments`,
        taken in order from the front of ``values`` (locals; ``str`` ones already decoded)."""
        names: list[str] = []
        for f in self.fields:
            if isinstance(f.type, Struct):
                name = g.tmp()
                f.type.emit_from_segments(g, out, ind, name, values)
                names.append(name)
            else:
                names.append(values.pop(0))
        self.emit_construct(g, out, ind, target, names)

    def emit_encode_body(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        cls = g.const(self.cls, self.type_name or "struct")
        out.append(f"{ind}if {src}.__class__ is not {cls}: raise _Fail")
        self.emit_encode_fields(g, out, ind, src)

    def emit_encode_fields(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        """The fields of ``src``, whose class the caller has checked (a union's dispatch)."""
        for fields, fmt in self._field_groups():
            if fmt is not None:
                # A run of fixed-width fields is validated one by one, then packed at once.
                run = [g.tmp() for _ in fields]
                for f, name in zip(fields, run, strict=True):
                    out.append(f"{ind}{name} = {src}.{f.attr}")
                    f.type.emit_encode_check(g, out, ind, name)  # type: ignore[attr-defined]
                out.append(f"{ind}a({g.struct_packer(fmt)}.pack({', '.join(run)}))")
            else:
                name = g.tmp()
                out.append(f"{ind}{name} = {src}.{fields[0].attr}")
                fields[0].type.emit_encode(g, out, ind, name)

    def to_json(self, value: Any) -> JsonValue:
        if self.is_void:
            return None
        return {f.wire_name: f.type.to_json(getattr(value, f.attr)) for f in self.fields}

    def from_json(self, value: JsonValue, path: str) -> Any:
        if self.is_void:
            if value is not None:
                raise BareBuildError(f"{self.type_name} is void: expected null", path)
            return self.cls()
        if not isinstance(value, dict):
            raise BareBuildError(f"expected a JSON object for {self.type_name}", path)
        wanted = [f.wire_name for f in self.fields]
        unknown = [k for k in value if k not in wanted]
        if unknown:
            raise BareBuildError(f"unknown field {unknown[0]!r} in {self.type_name}", path)
        missing = [k for k in wanted if k not in value]
        if missing:
            raise BareBuildError(f"missing field {missing[0]!r}", join_path(path, missing[0]))
        return self.cls(
            *[
                f.type.from_json(value[f.wire_name], join_path(path, f.wire_name))
                for f in self.fields
            ]
        )

    def describe(self) -> str:
        return self.type_name or "struct"


class Wrapper(_Inline):
    """A named alias of a non-struct type used as a union member, decoded to ``cls(value)``.
    Its JSON form is the inner value's (the wrapper is invisible on the wire and in JSON)."""

    def __init__(self, name: str, cls: type[Any], inner: BareType) -> None:
        super().__init__()
        self.type_name = name
        self.cls = cls
        self.inner = inner
        self.min_size = inner.min_size

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        return self.cls(self.inner._parsereport(stream, context, path))

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        if type(obj) is not self.cls:
            raise BareBuildError(f"expected {self.type_name}, got {type(obj).__name__}", path)
        self.inner._build(obj.value, stream, context, path)
        return obj

    def emit_decode_body(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        cls = g.const(self.cls, self.type_name or "wrapper")
        inner = g.tmp()
        self.inner.emit_decode(g, out, ind, inner)
        out.append(f"{ind}{target} = {cls}({inner})")

    def emit_encode_body(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        cls = g.const(self.cls, self.type_name or "wrapper")
        inner = g.tmp()
        out.append(f"{ind}if {src}.__class__ is not {cls}: raise _Fail")
        out.append(f"{ind}{inner} = {src}.value")
        self.inner.emit_encode(g, out, ind, inner)

    def to_json(self, value: Any) -> JsonValue:
        return self.inner.to_json(value.value)

    def from_json(self, value: JsonValue, path: str) -> Any:
        return self.cls(self.inner.from_json(value, path))

    def describe(self) -> str:
        return self.type_name or "wrapper"


class Union(_Inline):
    """A BARE union: uint tag (the member's 0-based position), then the member. Members are
    named types bound to distinct Python classes; the class of a value selects its tag."""

    def __init__(self, name: str, members: list[Struct | Wrapper | Enum]) -> None:
        super().__init__()
        self.type_name = name
        self.members = members
        self.by_class: dict[type[Any], int] = {}
        for tag, m in enumerate(members):
            cls = m.cls
            if cls in self.by_class:
                raise ValueError(f"union {name}: class {cls.__name__} appears twice")
            self.by_class[cls] = tag
        self.by_name = {m.type_name: tag for tag, m in enumerate(members)}

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        start = stream.tell()
        tag = read_uvarint(stream, path)
        if tag >= len(self.members):
            raise BareParseError(f"unknown {self.type_name} tag {tag}", path, start)
        member = self.members[tag]
        return member._parsereport(stream, context, join_path(path, member.type_name or ""))

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        tag = self.by_class.get(type(obj))
        if tag is None:
            raise BareBuildError(
                f"{type(obj).__name__} is not a member of union {self.type_name}", path
            )
        member = self.members[tag]
        stream.write(uvarint_bytes(tag))
        member._build(obj, stream, context, join_path(path, member.type_name or ""))
        return obj

    def emit_decode_body(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        tag = g.tmp()
        if len(self.members) <= 128:
            # Every valid tag is below 128, so one byte; a longer varint is an unknown tag.
            out.append(f"{ind}{tag} = b[p]")
            out.append(f"{ind}if {tag} >= {len(self.members)}: raise _Fail")
            out.append(f"{ind}p += 1")
        else:
            g.emit_uvarint(out, ind, tag)
            out.append(f"{ind}if {tag} >= {len(self.members)}: raise _Fail")
        self._emit_branch(g, out, ind, target, tag, 0, len(self.members))

    def _emit_branch(
        self, g: Gen, out: list[str], ind: str, target: str, tag: str, lo: int, hi: int
    ) -> None:
        """Dispatch on ``lo <= tag < hi`` by halving (log2(n) comparisons, not n)."""
        if hi - lo == 1:
            self._emit_member(g, out, ind, target, lo)
            return
        if hi - lo == 2:
            out.append(f"{ind}if {tag} == {lo}:")
            self._emit_member(g, out, ind + "    ", target, lo)
            out.append(f"{ind}else:")
            self._emit_member(g, out, ind + "    ", target, lo + 1)
            return
        mid = (lo + hi) // 2
        out.append(f"{ind}if {tag} < {mid}:")
        self._emit_branch(g, out, ind + "    ", target, tag, lo, mid)
        out.append(f"{ind}else:")
        self._emit_branch(g, out, ind + "    ", target, tag, mid, hi)

    def _emit_member(self, g: Gen, out: list[str], ind: str, target: str, i: int) -> None:
        member = self.members[i]
        if isinstance(member, Struct) and member.is_void:
            inst = g.const(member.cls(), f"void_{member.type_name}")
            out.append(f"{ind}{target} = {inst}")
        else:
            member.emit_decode(g, out, ind, target)

    def emit_encode_body(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        cls = g.tmp()
        out.append(f"{ind}{cls} = {src}.__class__")
        for i, member in enumerate(self.members):
            mcls = g.const(member.cls, member.type_name or "member")
            out.append(f"{ind}{'if' if i == 0 else 'elif'} {cls} is {mcls}:")
            out.append(f"{ind}    a({bytes(uvarint_bytes(i))!r})")
            if isinstance(member, Struct):
                member.emit_encode_fields(g, out, ind + "    ", src)
            else:
                member.emit_encode(g, out, ind + "    ", src)
        out.append(f"{ind}else:")
        out.append(f"{ind}    raise _Fail")

    def to_json(self, value: Any) -> JsonValue:
        member = self.members[self.by_class[type(value)]]
        return {"tag": member.type_name, "val": member.to_json(value)}

    def from_json(self, value: JsonValue, path: str) -> Any:
        if not isinstance(value, dict) or set(value) != {"tag", "val"}:
            raise BareBuildError(
                f'expected {{"tag": ..., "val": ...}} for union {self.type_name}', path
            )
        tag = self.by_name.get(value["tag"])
        if tag is None:
            raise BareBuildError(f"unknown {self.type_name} member {value['tag']!r}", path)
        member = self.members[tag]
        return member.from_json(value["val"], join_path(path, member.type_name or ""))

    def describe(self) -> str:
        return self.type_name or "union"
