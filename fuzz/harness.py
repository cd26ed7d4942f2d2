"""The invariant every fuzz target checks, as one plain function usable without atheris.

For one (top-level type, protocol version, input) :func:`check_one` requires:

* the compiled decoder (``compile_type(t).decode_at``, consuming the whole input) and the
  interpreted decoder (``t._parse`` over a stream, consuming the whole input) agree on
  accept/reject; the compiled path signals rejection with any exception, the interpreted path
  only with ``BareParseError``;
* ``codec.decode_raw`` agrees with them: it returns a value on accept and raises
  :class:`codec.DecodeError` on reject, and that error's text never carries the codec's own
  disagreement markers (``internal decoder error``, ``(bug)``);
* on accept, both decoders give equal values and both encoders (``codec.encode_raw`` and the
  interpreted ``t._build``) give back exactly the input bytes; the versioned API does too:
  ``codec.encode(codec.decode(data, version), version) == data`` (upgrade to v8, then back).

A violated invariant raises :class:`AssertionError`; an exception the contract does not allow
(anything but ``BareParseError`` from the interpreted path, anything but ``DecodeError`` from
``decode_raw``, anything at all from encoding an accepted value) escapes unchanged. Either way
atheris reports a crash.
"""

from __future__ import annotations

import io
from typing import Any, Final

import codec
from codec.bare import BareParseError, BareType, compile_type

#: Markers the codec puts in a DecodeError when its two paths disagree internally.
BUG_MARKERS: Final = ("internal decoder error", "(bug)")

#: The protocol versions the fuzz targets cover.
VERSIONS: Final = (7, 8)

#: Every fuzz target: each top-level type at each version.
TARGETS: Final = tuple((name, version) for name in codec.TOP_LEVEL for version in VERSIONS)


def target_name(type_name: str, version: int) -> str:
    """The target's name, also its seed corpus directory under ``fuzz/corpus``: ``ToClient-v7``."""
    return f"{type_name}-v{version}"


def _compiled(t: BareType, data: bytes) -> tuple[bool, Any]:
    """(accepted, value) of the compiled decoder; any exception or short consumption rejects.
    Both compiled entry points (``decode_at`` and the hot path's ``decode_all``) must agree."""
    compiled = compile_type(t)
    try:
        value, end = compiled.decode_at(data, 0, len(data))
        ok = end == len(data)
    except Exception:
        ok, value = False, None
    try:
        whole = compiled.decode_all(data)
        whole_ok = True
    except Exception:
        whole, whole_ok = None, False
    if whole_ok != ok or (ok and whole != value):
        raise AssertionError(f"decode_all and decode_at disagree on {data.hex() or '<empty>'}")
    return ok, value if ok else None


def _interpreted(t: BareType, type_name: str, data: bytes) -> tuple[bool, Any]:
    """(accepted, value) of the interpreted decoder; only ``BareParseError`` may signal reject."""
    stream = io.BytesIO(data)
    try:
        value = t._parse(stream, None, type_name)
    except BareParseError:
        return False, None
    return stream.tell() == len(data), value


def _describe(type_name: str, version: int, data: bytes) -> str:
    return f"{type_name} v{version} input {data.hex() or '<empty>'}"


def check_one(type_name: str, version: int, data: bytes) -> None:
    """Check the codec's invariant on one input; see the module docstring.

    Raises AssertionError when the invariant is broken; lets any disallowed exception escape.
    """
    t = codec.bare_type(type_name, version)
    what = _describe(type_name, version, data)

    c_ok, c_value = _compiled(t, data)
    i_ok, i_value = _interpreted(t, type_name, data)
    if c_ok != i_ok:
        raise AssertionError(
            f"compiled path {'accepts' if c_ok else 'rejects'} but interpreted path "
            f"{'accepts' if i_ok else 'rejects'}: {what}"
        )

    try:
        value = codec.decode_raw(type_name, data, version)
    except codec.DecodeError as exc:
        message = str(exc)
        for marker in BUG_MARKERS:
            if marker in message:
                raise AssertionError(f"codec reports an internal bug ({message}): {what}") from exc
        if c_ok:
            raise AssertionError(
                f"decode_raw rejects ({message}) what both paths accept: {what}"
            ) from exc
        return

    if not c_ok:
        raise AssertionError(f"decode_raw accepts what both paths reject: {what}")
    if value != c_value:
        raise AssertionError(f"decode_raw value {value!r} != compiled {c_value!r}: {what}")
    if i_value != value:
        raise AssertionError(f"interpreted value {i_value!r} != compiled {value!r}: {what}")

    encoded = codec.encode_raw(type_name, value, version)
    if encoded != data:
        raise AssertionError(f"encode_raw gives {encoded.hex()} instead of the input: {what}")
    stream = io.BytesIO()
    t._build(value, stream, None, type_name)
    built = stream.getvalue()
    if built != data:
        raise AssertionError(f"interpreted build gives {built.hex()} instead of the input: {what}")

    latest = codec.decode(type_name, data, version)
    again = codec.encode(type_name, latest, version)
    if again != data:
        raise AssertionError(f"decode/encode via v{codec.LATEST} gives {again.hex()}: {what}")
