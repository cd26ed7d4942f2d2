"""Turns a tree of BARE types into index-based Python functions.

Every named type (struct, union, enum, wrapper) becomes one decode function
``_d_<Name>(b, p, e) -> (value, p)`` over an immutable ``bytes`` object and one encode function
``_e_<Name>(x, a)`` that appends encoded pieces with ``a`` (a list's ``append``; the caller joins
once). Anonymous types (optional, list, map, scalars) are emitted inline. The code is generated
from the Construct definitions, so those stay the single source of truth; the generated source
is kept on the result for inspection.

A list whose element type has a flat layout (data, str, fixed-width fields and structs of
them) also gets a uniform-stride decoder (:meth:`Gen.uniform_decoder`): when every element
repeats the first one's length prefixes, the whole run is unpacked with one ``struct`` format.

Emitted code signals failure by raising anything (the private ``_Fail``, ``IndexError`` from
``b[p]`` past the end, ``struct.error``, ``UnicodeDecodeError``...). It is never exposed: the
codec catches the failure and re-runs the interpreted path, which reports the precise path.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from codec.bare.core import BareParseError, BareType
from codec.bare.scalars import (
    MAX_U64,
    MAX_VARINT_BYTES,
    as_bytes,
    as_str,
    strict_int,
    uvarint_bytes,
)


class _Fail(Exception):  # noqa: N818 (a signal, not an error type)
    """Raised by emitted code; never escapes the codec."""


def _uv(b: bytes, p: int) -> tuple[int, int]:
    """Multi-byte varint at b[p] (b[p] >= 0x80 is known): canonical, <= 10 bytes, <= 64 bits."""
    result = 0
    shift = 0
    for i in range(MAX_VARINT_BYTES):
        c = b[p + i]
        if i == MAX_VARINT_BYTES - 1 and c > 1:
            raise _Fail
        result |= (c & 0x7F) << shift
        if c < 0x80:
            if c == 0:
                raise _Fail
            return result, p + i + 1
        shift += 7
    raise _Fail


def _uvenc(n: int) -> bytes:
    if not 0 <= n <= MAX_U64:
        raise _Fail
    return uvarint_bytes(n)


_UV1 = tuple(bytes((i,)) for i in range(128))

#: Uniform-stride lists are unpacked this many elements per ``struct`` call at most, so the
#: cached formats stay small whatever the list length.
UNIFORM_CHUNK = 256
_UNIFORM_CACHE_MAX = 512
_uniform_structs: dict[tuple[str, int], struct.Struct] = {}


def _uniform_struct(fmt: str, count: int) -> struct.Struct:
    key = (fmt, count)
    packer = _uniform_structs.get(key)
    if packer is None:
        if len(_uniform_structs) >= _UNIFORM_CACHE_MAX:
            _uniform_structs.clear()
        packer = _uniform_structs[key] = struct.Struct("<" + fmt * count)
    return packer


def _uvals(b: bytes, p: int, n: int, s: int, fmt: str) -> Sequence[Any]:
    """The scalars of ``n`` consecutive elements of ``s`` bytes each at ``b[p:]``, every element
    laid out as the ``struct`` format ``fmt`` (length prefixes skipped as pad bytes)."""
    if n <= UNIFORM_CHUNK:
        packer = _uniform_structs.get((fmt, n))
        if packer is None:
            packer = _uniform_struct(fmt, n)
        return packer.unpack_from(b, p)
    values: list[Any] = []
    chunk = _uniform_struct(fmt, UNIFORM_CHUNK)
    step = UNIFORM_CHUNK * s
    while n >= UNIFORM_CHUNK:
        values += chunk.unpack_from(b, p)
        p += step
        n -= UNIFORM_CHUNK
    if n:
        values += _uniform_struct(fmt, n).unpack_from(b, p)
    return values


_BASE_NAMESPACE: dict[str, Any] = {
    "_Fail": _Fail,
    "_uv": _uv,
    "_uvenc": _uvenc,
    "_UV1": _UV1,
    "_uvals": _uvals,
    "_BOOLS": (False, True),
    "_as_bytes": as_bytes,
    "_as_str": as_str,
    "_strict_int": strict_int,
    "_new": object.__new__,
    "_SEQ": (list, tuple),
}


class Gen:
    """Code generation state for one compiled root: helper names, constants, functions."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = dict(_BASE_NAMESPACE)
        self.functions: list[str] = []
        self._const_names: dict[Any, str] = {}
        self._decoders: dict[int, str] = {}
        self._encoders: dict[int, str] = {}
        self._counter = itertools.count()
        self._keep: list[Any] = []

    def tmp(self) -> str:
        return f"v{next(self._counter)}"

    def const(self, obj: Any, hint: str) -> str:
        key = id(obj)
        name = self._const_names.get(key)
        if name is None:
            safe = "".join(c if c.isalnum() else "_" for c in hint)
            name = f"_K_{safe}_{len(self._const_names)}"
            self._const_names[key] = name
            self.namespace[name] = obj
            self._keep.append(obj)
        return name

    def twin(self, cls: type[Any], attrs: list[str]) -> str | None:
        """Name of a mutable class with the same slot layout as the slotted class ``cls``, or
        None if there is none. Decoders fill an instance of it with plain attribute stores and
        then set ``__class__ = cls``: the result is an ordinary ``cls`` instance, built in about
        half the time of ``object.__new__`` plus one descriptor call per field (a frozen
        dataclass's own ``__init__`` costs about four times as much)."""
        key = ("twin", id(cls))
        name = self._const_names.get(key)
        if name is not None:
            return name
        slots = cls.__dict__.get("__slots__")
        if not isinstance(slots, tuple) or list(slots) != attrs:
            return None
        twin = type(f"_Twin_{cls.__name__}", (), {"__slots__": slots})
        try:
            probe = twin()
            for attr in attrs:
                setattr(probe, attr, None)
            probe.__class__ = cls
        except TypeError:
            return None
        if type(probe) is not cls:
            return None
        name = self.const(twin, f"twin_{cls.__name__}")
        self._const_names[key] = name
        return name

    def struct_packer(self, fmt: str) -> str:
        packer = struct.Struct(fmt)
        name = f"_S_{''.join(c if c.isalnum() else '_' for c in fmt)}"
        self.namespace.setdefault(name, packer)
        return name

    def emit_uvarint(self, out: list[str], ind: str, target: str) -> None:
        out.append(f"{ind}{target} = b[p]")
        out.append(f"{ind}if {target} < 128:")
        out.append(f"{ind}    p += 1")
        out.append(f"{ind}else:")
        out.append(f"{ind}    {target}, p = _uv(b, p)")

    def emit_length_prefixed(self, out: list[str], ind: str, target: str, suffix: str) -> None:
        """``data``/``str``: a length then that many bytes (``suffix`` applied to the slice).

        Lengths of one byte (< 128) and two bytes (< 16384) are read inline; longer ones call
        ``_uv``. There is no bounds check here: a slice never reads past ``e`` (the input is cut
        at ``e``), so a length that overruns leaves ``p > e``, and ``p`` only grows, so the
        decode fails at its final ``p`` check (see :meth:`decoder`)."""
        n, c, q = self.tmp(), self.tmp(), self.tmp()
        out.append(f"{ind}{n} = b[p]")
        out.append(f"{ind}if {n} < 128:")
        out.append(f"{ind}    {q} = p + 1 + {n}")
        out.append(f"{ind}    {target} = b[p + 1:{q}]{suffix}")
        out.append(f"{ind}else:")
        out.append(f"{ind}    {c} = b[p + 1]")
        out.append(f"{ind}    if 0 < {c} < 128:")
        out.append(f"{ind}        {q} = p - 126 + {n} + ({c} << 7)")
        out.append(f"{ind}        {target} = b[p + 2:{q}]{suffix}")
        out.append(f"{ind}    else:")
        out.append(f"{ind}        {n}, p = _uv(b, p)")
        out.append(f"{ind}        {q} = p + {n}")
        out.append(f"{ind}        {target} = b[p:{q}]{suffix}")
        out.append(f"{ind}p = {q}")

    def emit_uvarint_append(self, out: list[str], ind: str, expr: str) -> None:
        out.append(f"{ind}a(_UV1[{expr}] if {expr} < 128 else _uvenc({expr}))")

    def _name(self, t: BareType, kind: str) -> str:
        base = "".join(c if c.isalnum() else "_" for c in (t.type_name or type(t).__name__))
        return f"_{kind}_{base}_{len(self._decoders) + len(self._encoders)}"

    def uniform_decoder(self, t: BareType) -> str | None:
        """Name of a function ``(b, p, n, e) -> (list, end) | None`` decoding ``n`` elements of
        type ``t`` at once when they all have the same layout, or None if ``t`` has no flat
        layout (:meth:`BareType.stride_segments`).

        The function reads the first element's length prefixes (canonical, as everywhere),
        which fixes its size ``s``; if every later element repeats those prefix bytes at the
        same offsets (one strided slice per prefix byte, counted in C), every element has the
        first one's layout, and one ``struct`` format of the whole run returns all the values.
        Otherwise it returns None and the caller decodes element by element, so both paths
        accept exactly the same input. Typical hits: keys of one format, SQLite pages,
        metadata carrying one engine version."""
        segments = t.stride_segments()
        if segments is None:
            return None
        key = ("uniform", id(t))
        name = self._const_names.get(key)
        if name is not None:
            return name
        base = "".join(c if c.isalnum() else "_" for c in t.describe())
        name = f"_u_{base}_{next(self._counter)}"
        self._const_names[key] = name
        self._keep.append(t)
        body = [f"def {name}(b, p, n, e):", "    q = p"]
        fmt = ""
        variable: list[int] = []
        for j, seg in enumerate(segments):
            if seg in ("data", "str"):
                variable.append(j)
                body += [
                    f"    o{j} = q - p",
                    f"    c{j} = b[q]",
                    f"    if c{j} < 128:",
                    f"        l{j} = c{j}",
                    "        q += 1",
                    "    else:",
                    f"        l{j}, q = _uv(b, q)",
                    f"    k{j} = q - p - o{j}",
                    f"    q += l{j}",
                ]
                fmt += f"{{k{j}}}x{{l{j}}}s"
            else:
                body.append(f"    q += {struct.calcsize('<' + seg)}")
                fmt += seg
        # The lengths read above are unchecked until here: the whole run must fit in the input
        # before a struct format is built from them.
        body += ["    s = q - p", "    end = p + n * s", "    if end > e: return None"]
        for j in variable:
            body += [
                f"    if b[p + o{j}:end:s].count(c{j}) != n: return None",
                f"    for m in range(p + o{j} + 1, p + o{j} + k{j}):",
                "        if b[m:end:s].count(b[m]) != n: return None",
            ]
        body.append(f"    t = _uvals(b, p, n, s, f{fmt!r})")
        values = [f"x{j}" for j in range(len(segments))]
        build = getattr(t, "emit_from_segments", None)
        if build is None:
            # A scalar element: the values are the elements.
            body.append(
                "    r = [x.decode() for x in t]" if segments == ("str",) else "    r = list(t)"
            )
        else:
            body.append("    r = [None] * n")
            body.append("    i = 0")
            if len(values) == 1:
                body.append(f"    for {values[0]} in t:")
            else:
                its = ", ".join(["it"] * len(values))
                body.append("    it = iter(t)")
                body.append(f"    for {', '.join(values)} in zip({its}):")
            for j, seg in enumerate(segments):
                if seg == "str":
                    body.append(f"        {values[j]} = {values[j]}.decode()")
            build(self, body, "        ", "v", list(values))
            body.append("        r[i] = v")
            body.append("        i += 1")
        body.append("    return r, end")
        self.functions.append("\n".join(body))
        return name

    def call_decode(self, t: BareType, out: list[str], ind: str, target: str) -> None:
        out.append(f"{ind}{target}, p = {self.decoder(t)}(b, p, e)")

    def call_encode(self, t: BareType, out: list[str], ind: str, src: str) -> None:
        out.append(f"{ind}{self.encoder(t)}({src}, a)")

    def decoder(self, t: BareType, *, root: bool = False) -> str:
        """Name of the decode function for ``t``, emitting it on first use. The root function
        also bounds the input at ``e`` (inner functions run with ``e == len(b)``)."""
        name = self._decoders.get(id(t))
        if name is None:
            name = self._name(t, "d")
            self._decoders[id(t)] = name
            self._keep.append(t)
            body: list[str] = [f"def {name}(b, p, e):"]
            if root:
                body.append("    if e != len(b): b = b[:e]; e = len(b)")
            emit_body = getattr(t, "emit_decode_body", None)
            if emit_body is not None:
                emit_body(self, body, "    ", "r")
            else:
                t.emit_decode(self, body, "    ", "r")
            if root:
                body.append("    if p > e: raise _Fail")
            body.append("    return r, p")
            self.functions.append("\n".join(body))
        return name

    def encoder(self, t: BareType) -> str:
        """Name of the encode function for ``t``, emitting it on first use."""
        name = self._encoders.get(id(t))
        if name is None:
            name = self._name(t, "e")
            self._encoders[id(t)] = name
            self._keep.append(t)
            body: list[str] = [f"def {name}(x, a):"]
            emit_body = getattr(t, "emit_encode_body", None)
            if emit_body is not None:
                emit_body(self, body, "    ", "x")
            else:
                t.emit_encode(self, body, "    ", "x")
            self.functions.append("\n".join(body))
        return name


@dataclass(frozen=True)
class Compiled:
    """The compiled functions for one root type.

    ``decode_at(b, p, e)`` decodes one value from ``b[p:e]`` and returns ``(value, end)``;
    ``encode_into(x, append)`` appends the encoding's pieces. Both raise arbitrary exceptions on
    failure (see the module docstring); ``source`` is the generated code.
    """

    decode_at: Callable[[bytes, int, int], tuple[Any, int]]
    encode_into: Callable[[Any, Callable[[bytes], None]], None]
    #: ``decode_all(b)``: the value of exactly ``b`` (trailing bytes fail); the hot path
    decode_all: Callable[[bytes], Any]
    #: ``encode_all(x)``: the encoding as one bytes object; the hot path
    encode_all: Callable[[Any], bytes]
    source: str


_cache: dict[int, tuple[BareType, Compiled]] = {}


def compile_type(t: BareType) -> Compiled:
    """Compile (once, cached) the decode and encode functions for ``t``."""
    hit = _cache.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    g = Gen()
    dec = g.decoder(t, root=True)
    enc = g.encoder(t)
    # Whole-message forms with the root's code inlined: no (value, end) tuple, no append
    # passed in, one call from the codec's hot path.
    body: list[str] = ["def _decode_all(b):", "    e = len(b)", "    p = 0"]
    emit = getattr(t, "emit_decode_body", t.emit_decode)
    emit(g, body, "    ", "r")
    body += ["    if p != e: raise _Fail", "    return r"]
    g.functions.append("\n".join(body))
    body = ["def _encode_all(x):", "    parts = []", "    a = parts.append"]
    emit = getattr(t, "emit_encode_body", t.emit_encode)
    emit(g, body, "    ", "x")
    body.append("    return b''.join(parts)")
    g.functions.append("\n".join(body))
    source = "\n\n".join(g.functions) + "\n"
    code = compile(source, f"<bare codec for {t.describe()}>", "exec")
    exec(code, g.namespace)
    ns = g.namespace
    compiled = Compiled(ns[dec], ns[enc], ns["_decode_all"], ns["_encode_all"], source)
    _cache[id(t)] = (t, compiled)
    return compiled


def stream_adapters(
    t: BareType,
) -> tuple[Callable[[Any, Any, str], Any], Callable[[Any, Any, Any, str], Any]]:
    """Stream-based parse/build functions for Construct's ``.compile()`` that run the emitted
    code and fall back to the interpreted path (for its precise error) on failure."""
    compiled = compile_type(t)

    def parse(stream: Any, context: Any, path: str) -> Any:
        start = stream.tell()
        data = stream.read()
        try:
            value, end = compiled.decode_at(data, 0, len(data))
        except Exception:
            stream.seek(start)
            value = t._parse(stream, context, path)
            raise BareParseError("compiled decoder rejected input", path, start) from None
        stream.seek(start + end)
        return value

    def build(obj: Any, stream: Any, context: Any, path: str) -> Any:
        parts: list[bytes] = []
        try:
            compiled.encode_into(obj, parts.append)
        except Exception:
            return t._build(obj, stream, context, path)
        stream.write(b"".join(parts))
        return obj

    return parse, build
