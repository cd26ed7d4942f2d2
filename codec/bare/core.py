"""The base of every strict BARE type, and the stream helpers of the interpreted path.

Each BARE type is a Construct subclass with two implementations of the same grammar:

* the interpreted path, ``_parse``/``_build`` over a stream, which Construct's ``parse``/``build``
  call and which reports the exact field path and byte offset of any failure;
* emitted code (``emit_decode``/``emit_encode``), index-based Python source that
  :mod:`codec.bare.compiler` assembles into one function per named type. The versioned codec
  runs the emitted code first and re-runs the interpreted path only to explain a failure.

Both paths must accept and reject exactly the same inputs; the tests check this on every
invalid-input table and the fuzzers check it on arbitrary bytes.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from construct import Construct, ConstructError, SizeofError

if TYPE_CHECKING:
    from codec.bare.compiler import Gen

JsonValue = Any
"""A value of the JSON mapping (None, bool, int, str, list, dict)."""


class BareParseError(ConstructError):
    """Interpreted decoding failed at ``path`` and byte ``offset``."""

    def __init__(self, reason: str, path: str, offset: int) -> None:
        super().__init__(reason, path)
        self.reason = reason
        self.offset = offset


class BareBuildError(ConstructError):
    """Interpreted encoding (or JSON conversion) failed at ``path``."""

    def __init__(self, reason: str, path: str) -> None:
        super().__init__(reason, path)
        self.reason = reason


def remaining(stream: io.BufferedIOBase | io.BytesIO | Any) -> int:
    """Bytes left in a seekable stream; lengths are checked against this before any read."""
    here: int = stream.tell()
    end: int = stream.seek(0, io.SEEK_END)
    stream.seek(here)
    return end - here


def read_exact(stream: Any, n: int, path: str) -> bytes:
    """Read exactly ``n`` bytes or fail with "unexpected end of input"."""
    start = stream.tell()
    if n > remaining(stream):
        raise BareParseError(f"unexpected end of input: need {n} bytes", path, start)
    data: bytes = stream.read(n)
    return data


def read_byte(stream: Any, path: str) -> int:
    return read_exact(stream, 1, path)[0]


def join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class BareType(Construct):  # type: ignore[type-arg]
    """A strict BARE type. Subclasses define both paths, the JSON mapping and ``min_size``."""

    #: Smallest possible encoding in bytes; lists of a type with min_size 0 are not allowed
    #: (BARE forbids void outside unions), so every list count is bounded by the input size.
    min_size: int = 1
    #: Schema name for named types (struct, union, enum, wrapper); None for anonymous ones.
    type_name: str | None = None

    # -- interpreted path -------------------------------------------------------------------
    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        raise NotImplementedError

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        raise NotImplementedError

    def _sizeof(self, context: Any, path: Any) -> int:
        raise SizeofError("BARE types have no static size", path=path)

    # -- emitted code -------------------------------------------------------------------------
    def emit_decode(self, g: Gen, out: list[str], ind: str, target: str) -> None:
        """Append statements that decode one value at ``b[p:]`` into ``target`` and advance
        ``p``. Available locals: ``b`` (bytes), ``p`` (offset), ``e`` (len(b)). Failure raises
        any exception; the caller converts it. A read that overruns ``e`` may, instead of
        failing at once, leave ``p > e``: ``p`` never decreases and every root decoder fails
        unless it ends with ``p <= e`` (``decode_at``) or ``p == e`` (``decode_all``)."""
        raise NotImplementedError

    def emit_encode(self, g: Gen, out: list[str], ind: str, src: str) -> None:
        """Append statements that validate the value in local ``src`` and append its encoding
        with ``a(...)``."""
        raise NotImplementedError

    def stride_segments(self) -> tuple[str, ...] | None:
        """The value's wire layout as segments, one per decoded scalar: ``"data"`` or ``"str"``
        for a length-prefixed field, a ``struct`` format code (``"q"``, ``"16s"``) for a
        fixed-width one. Lists of a type with such a layout get a uniform-stride decoder (see
        :meth:`codec.bare.compiler.Gen.uniform_decoder`). None: no flat layout (varints, bools,
        optionals, unions, nested lists...)."""
        return None

    # -- Construct's own .compile() ---------------------------------------------------------
    def _emitparse(self, code: Any) -> str:
        """Link the emitted index-based decoder into Construct's compiled code (stream form)."""
        from codec.bare.compiler import stream_adapters  # noqa: PLC0415 (import cycle)

        parse, _ = stream_adapters(self)
        code.linkedparsers[id(self)] = parse
        return f"linkedparsers[{id(self)}](io, this, '')"

    def _emitbuild(self, code: Any) -> str:
        from codec.bare.compiler import stream_adapters  # noqa: PLC0415 (import cycle)

        _, build = stream_adapters(self)
        code.linkedbuilders[id(self)] = build
        return f"linkedbuilders[{id(self)}](obj, io, this, '')"

    # -- JSON mapping -------------------------------------------------------------------------
    def to_json(self, value: Any) -> JsonValue:
        raise NotImplementedError

    def from_json(self, value: JsonValue, path: str) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """The schema spelling of this type (``list<KvKey>``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
