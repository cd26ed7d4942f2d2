"""Rivet ids: 19 bytes (version ``1``, a 16-byte UUID, a 2-byte big-endian label).

The string form is 30 lowercase base-36 digits of the 19 bytes read as a little-endian integer,
least significant digit first (the engine's ``Id`` display), e.g.
``5jxlv5boumuljx2d2nvyat0o2edl00``.
In keys an id is packed with the tuple user type code ``0x40`` followed by its 19 raw bytes.
"""

from __future__ import annotations

import uuid

ID_VERSION = 1
ID_BYTES = 19
ID_CHARS = 30
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_DIGITS = {c: i for i, c in enumerate(_ALPHABET)}


class InvalidIdError(ValueError):
    """The text or bytes are not a version-1 Rivet id."""


def id_to_bytes(text: str) -> bytes:
    """The 19 bytes of an id in string form. Raises :class:`InvalidIdError`."""
    if len(text) != ID_CHARS:
        raise InvalidIdError(f"invalid id length: expected {ID_CHARS}, got {len(text)}")
    n = 0
    for c in reversed(text):
        digit = _DIGITS.get(c)
        if digit is None:
            raise InvalidIdError(f"invalid base36 character: {c!r}")
        n = n * 36 + digit
    if n >= 1 << (8 * ID_BYTES):
        raise InvalidIdError("id overflows 19 bytes")
    raw = n.to_bytes(ID_BYTES, "little")
    if raw[0] != ID_VERSION:
        raise InvalidIdError(f"unsupported id version: {raw[0]}")
    return raw


def id_from_bytes(raw: bytes) -> str:
    """The string form of 19 id bytes. Raises :class:`InvalidIdError`."""
    if len(raw) != ID_BYTES:
        raise InvalidIdError(f"invalid id length: expected {ID_BYTES} bytes, got {len(raw)}")
    if raw[0] != ID_VERSION:
        raise InvalidIdError(f"unsupported id version: {raw[0]}")
    n = int.from_bytes(raw, "little")
    out = []
    for _ in range(ID_CHARS):
        n, rem = divmod(n, 36)
        out.append(_ALPHABET[rem])
    return "".join(out)


def new_id(label: int = 0) -> str:
    """A fresh random id with the given 16-bit label (the engine's datacenter label)."""
    if not 0 <= label <= 0xFFFF:
        raise ValueError("label must fit in 16 bits")
    return id_from_bytes(bytes([ID_VERSION]) + uuid.uuid4().bytes + label.to_bytes(2, "big"))
