"""Durable hibernating-request store (hibernation.md §5).

Two keys per hibernating request, in the pegboard subspace ``(RIVET, PEGBOARD)``:

* the *index* ``(ACTOR, HIBERNATING_REQUEST, actor_id, last_ping_ts, gateway_id, request_id)``
  (empty value), sorted by keepalive time within one actor;
* the *reverse pointer* ``(HIBERNATING_REQUEST, DATA, gateway_id, request_id, LAST_PING_TS)``
  holding ``last_ping_ts`` as an 8-byte big-endian signed integer, so that upsert and delete
  can find the current index key of a socket.

Every function works inside one caller-provided store transaction; ``now_ms`` is passed in
so the caller decides the clock (and a send reads the list exactly once, with one ``now``).
Expired index entries are never garbage-collected here (only a later upsert/delete of the
same socket removes them); :func:`list_eligible` just skips them.
"""

from __future__ import annotations

from rivetpy.engine.keys import (
    ACTOR,
    DATA,
    HIBERNATING_REQUEST,
    LAST_PING_TS,
    PEGBOARD,
    RIVET,
    pack,
    pack_id,
    unpack,
)
from rivetpy.engine.store.api import ReadTransaction, Transaction

#: hibernation.md §2: ``hibernating_request_eligible_threshold``
ELIGIBLE_THRESHOLD_MS = 90_000


def actor_index_prefix(actor_id: str) -> bytes:
    """``(RIVET, PEGBOARD, ACTOR, HIBERNATING_REQUEST, actor_id)``: one actor's index."""
    return pack((RIVET, PEGBOARD, ACTOR, HIBERNATING_REQUEST)) + pack_id(actor_id)


def index_key(actor_id: str, last_ping_ts: int, gateway_id: bytes, request_id: bytes) -> bytes:
    """``HibernatingRequestKey``: the ts-ordered index entry of one request."""
    return actor_index_prefix(actor_id) + pack((last_ping_ts, gateway_id, request_id))


def last_ping_key(gateway_id: bytes, request_id: bytes) -> bytes:
    """``LastPingTsKey``: the reverse pointer of one request (keyed by socket, not actor)."""
    return pack((RIVET, PEGBOARD, HIBERNATING_REQUEST, DATA, gateway_id, request_id, LAST_PING_TS))


def _encode_ts(ts: int) -> bytes:
    return ts.to_bytes(8, "big", signed=True)


def _decode_ts(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True)


async def _clear_index_entry(
    tr: Transaction, actor_id: str, gateway_id: bytes, request_id: bytes
) -> bytes:
    """Delete the current index entry of the request (if any); return the pointer key."""
    pointer = last_ping_key(gateway_id, request_id)
    old = await tr.get(pointer)
    if old is not None:
        tr.clear(index_key(actor_id, _decode_ts(old), gateway_id, request_id))
    return pointer


async def upsert(
    tr: Transaction, actor_id: str, gateway_id: bytes, request_id: bytes, now_ms: int
) -> None:
    """Record a keepalive of ``(gateway_id, request_id)`` at ``now_ms`` (§5.2): the old index
    entry of the same request is removed, the pointer and a new index entry are written."""
    pointer = await _clear_index_entry(tr, actor_id, gateway_id, request_id)
    tr.set(pointer, _encode_ts(now_ms))
    tr.set(index_key(actor_id, now_ms, gateway_id, request_id), b"")


def upsert_known(
    tr: Transaction,
    actor_id: str,
    gateway_id: bytes,
    request_id: bytes,
    now_ms: int,
    previous_ts: int | None,
) -> None:
    """:func:`upsert` without the pointer read, for a writer that knows the request's current
    timestamp (``previous_ts``; None: no entry exists), e.g. the gateway that owns the socket:
    only the gateway holding a socket writes its entries."""
    if previous_ts is not None:
        tr.clear(index_key(actor_id, previous_ts, gateway_id, request_id))
    tr.set(last_ping_key(gateway_id, request_id), _encode_ts(now_ms))
    tr.set(index_key(actor_id, now_ms, gateway_id, request_id), b"")


def delete_known(
    tr: Transaction, actor_id: str, gateway_id: bytes, request_id: bytes, previous_ts: int | None
) -> None:
    """:func:`delete` without the pointer read (see :func:`upsert_known`)."""
    if previous_ts is not None:
        tr.clear(index_key(actor_id, previous_ts, gateway_id, request_id))
    tr.clear(last_ping_key(gateway_id, request_id))


async def delete(tr: Transaction, actor_id: str, gateway_id: bytes, request_id: bytes) -> None:
    """Forget the request (§5.3): its index entry and its pointer."""
    pointer = await _clear_index_entry(tr, actor_id, gateway_id, request_id)
    tr.clear(pointer)


async def list_eligible(
    tr: ReadTransaction,
    actor_id: str,
    now_ms: int,
    threshold_ms: int = ELIGIBLE_THRESHOLD_MS,
) -> list[tuple[bytes, bytes]]:
    """``[(gateway_id, request_id)]`` of the actor's requests pinged at or after
    ``now_ms - threshold_ms``, by last keepalive time ascending (§5.4)."""
    prefix = actor_index_prefix(actor_id)
    begin = prefix + pack((now_ms - threshold_ms,))
    rows = await tr.get_range(begin, prefix + b"\xff")
    out: list[tuple[bytes, bytes]] = []
    for row in rows:
        _ts, gateway_id, request_id = unpack(row.key, len(prefix))
        assert isinstance(gateway_id, bytes) and isinstance(request_id, bytes)
        out.append((gateway_id, request_id))
    return out
