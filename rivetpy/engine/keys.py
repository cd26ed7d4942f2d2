"""The FoundationDB tuple layer, typed, and the engine's shared key constants.

Keys are built with ``fdb.tuple`` (pure Python, usable without the FoundationDB C library).
Rivet ids are a tuple *user type* (code ``0x40`` + 19 raw bytes) that ``fdb.tuple`` does not
know; top-level tuple encoding is concatenative, so a key holding an id is packed in parts:
``pack(before) + pack_id(id) + pack(after)`` is exactly the engine's encoding.
"""

from __future__ import annotations

from typing import Union, cast

import fdb.tuple as _fdb_tuple  # type: ignore[import-untyped]

from rivetpy.engine.ids import id_to_bytes

#: A value the tuple layer can encode (the subset the engine uses).
TupleItem = Union[None, bool, int, float, bytes, str, "tuple[TupleItem, ...]"]

#: Tuple type code of a Rivet id (a user type in the FoundationDB tuple spec).
ID_CODE = 0x40

# Shared key table of the engine (universaldb ``utils/keys.rs``), the subset rivetpy uses.
RIVET = 0
PEGBOARD = 3
DATA = 4
NAME = 19
LAST_PING_TS = 24
ACTOR = 32
NAMESPACE = 39
HIBERNATING_REQUEST = 40
METADATA = 44
RUNNER = 46
ACTOR_KV = 72


def pack(items: tuple[TupleItem, ...], prefix: bytes = b"") -> bytes:
    """Tuple-encode ``items`` after ``prefix`` (order-preserving)."""
    return cast(bytes, _fdb_tuple.pack(items, prefix=prefix))


def unpack(key: bytes, prefix_len: int = 0) -> tuple[TupleItem, ...]:
    """Decode a tuple-encoded key, skipping ``prefix_len`` bytes. Raises ``ValueError``."""
    return cast("tuple[TupleItem, ...]", _fdb_tuple.unpack(key, prefix_len))


def compare(a: tuple[TupleItem, ...], b: tuple[TupleItem, ...]) -> int:
    """The tuple layer's semantic order: negative, 0 or positive like ``cmp``."""
    return cast(int, _fdb_tuple.compare(a, b))


def pack_id(id_text: str) -> bytes:
    """The tuple encoding of a Rivet id (``40`` + 19 bytes). Raises ``InvalidIdError``."""
    return bytes([ID_CODE]) + id_to_bytes(id_text)


def subspace_range(prefix: bytes) -> tuple[bytes, bytes]:
    """The range of keys strictly inside a tuple subspace: ``[prefix 00, prefix ff)``."""
    return prefix + b"\x00", prefix + b"\xff"


def strinc(key: bytes) -> bytes:
    """The first key that does not start with ``key`` (``ValueError`` if all bytes are ff)."""
    stripped = key.rstrip(b"\xff")
    if not stripped:
        raise ValueError("key must contain a byte other than 0xff")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def pegboard_subspace() -> bytes:
    return pack((RIVET, PEGBOARD))


def actor_name_key(namespace_id: str, name: str) -> bytes:
    """``(RIVET, PEGBOARD, NAMESPACE, namespace_id, ACTOR, NAME, name)``: the actor-name record."""
    return pack((RIVET, PEGBOARD, NAMESPACE)) + pack_id(namespace_id) + pack((ACTOR, NAME, name))
