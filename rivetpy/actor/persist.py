"""Persisted records of an actor, CBOR-encoded behind a u16 little-endian format version.

* :class:`PersistedActor` at ``PERSIST_DATA``: whether ``create_state`` completed, the input,
  the user state and the scheduled alarms;
* :class:`PersistedConn` at ``CONNECTIONS + id``: a hibernatable connection's params, state,
  subscriptions and WebSocket message indexes;
* :class:`QueueMetadata` at ``QUEUE_METADATA``.

Decoding raises :class:`PersistError` (never anything else) for bytes that are not a valid
record of a known version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2

FORMAT_VERSION = 1


class PersistError(ValueError):
    """A stored record is corrupt or of an unknown version."""


class StateEncodingError(TypeError):
    """A value cannot be persisted (not CBOR-serializable)."""


def dumps(value: Any) -> bytes:
    """CBOR bytes of ``value``; raises :class:`StateEncodingError`."""
    try:
        return cbor2.dumps(value, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise StateEncodingError(f"value cannot be stored as CBOR: {exc}") from None


def loads(raw: bytes) -> Any:
    try:
        return cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
        raise PersistError(f"invalid CBOR: {exc}") from None


def _frame(body: dict[str, Any]) -> bytes:
    return FORMAT_VERSION.to_bytes(2, "little") + dumps(body)


def _unframe(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) < 3:
        raise PersistError(f"{what}: record too short")
    version = int.from_bytes(raw[:2], "little")
    if version != FORMAT_VERSION:
        raise PersistError(f"{what}: unknown format version {version}")
    body = loads(raw[2:])
    if not isinstance(body, dict):
        raise PersistError(f"{what}: record is not a map")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise PersistError(f"{what}: field {name!r} missing or of the wrong type")
    return value


@dataclass(frozen=True, slots=True)
class ScheduledAlarm:
    """Run action ``action`` with ``args`` at ``ts_ms`` (ms since the epoch)."""

    id: str
    ts_ms: int
    action: str
    args: list[Any]


@dataclass(slots=True)
class PersistedActor:
    initialized: bool
    input: Any = None
    state: Any = None
    alarms: list[ScheduledAlarm] = field(default_factory=list)

    def encode(self) -> bytes:
        return _frame(
            {
                "initialized": self.initialized,
                "input": self.input,
                "state": self.state,
                "alarms": [[a.id, a.ts_ms, a.action, a.args] for a in self.alarms],
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> PersistedActor:
        what = "actor record"
        body = _unframe(raw, what)
        alarms = []
        for item in _field(body, "alarms", list, what):
            if not (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], str)
                and isinstance(item[1], int)
                and isinstance(item[2], str)
                and isinstance(item[3], list)
            ):
                raise PersistError(f"{what}: malformed alarm")
            alarms.append(ScheduledAlarm(item[0], item[1], item[2], item[3]))
        return cls(
            initialized=_field(body, "initialized", bool, what),
            input=body.get("input"),
            state=body.get("state"),
            alarms=alarms,
        )


@dataclass(slots=True)
class HibernatableSocket:
    """Where a hibernatable connection's WebSocket is, and how far it got.

    ``server_index``: the index of the last client message the actor processed (acked);
    ``client_index``: the index of the last message the actor sent."""

    gateway_id: bytes
    request_id: bytes
    server_index: int
    client_index: int
    path: str
    headers: dict[str, str]


@dataclass(slots=True)
class PersistedConn:
    id: str
    params: Any
    state: Any
    subscriptions: list[str]
    socket: HibernatableSocket | None

    def encode(self) -> bytes:
        sock = self.socket
        return _frame(
            {
                "id": self.id,
                "params": self.params,
                "state": self.state,
                "subscriptions": sorted(self.subscriptions),
                "socket": None
                if sock is None
                else [
                    sock.gateway_id,
                    sock.request_id,
                    sock.server_index,
                    sock.client_index,
                    sock.path,
                    sock.headers,
                ],
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> PersistedConn:
        what = "connection record"
        body = _unframe(raw, what)
        subs = _field(body, "subscriptions", list, what)
        if not all(isinstance(s, str) for s in subs):
            raise PersistError(f"{what}: malformed subscriptions")
        raw_sock = body.get("socket")
        sock: HibernatableSocket | None = None
        if raw_sock is not None:
            if not (
                isinstance(raw_sock, list)
                and len(raw_sock) == 6
                and isinstance(raw_sock[0], bytes)
                and isinstance(raw_sock[1], bytes)
                and isinstance(raw_sock[2], int)
                and isinstance(raw_sock[3], int)
                and isinstance(raw_sock[4], str)
                and isinstance(raw_sock[5], dict)
            ):
                raise PersistError(f"{what}: malformed socket")
            sock = HibernatableSocket(*raw_sock)
        return cls(
            id=_field(body, "id", str, what),
            params=body.get("params"),
            state=body.get("state"),
            subscriptions=subs,
            socket=sock,
        )


@dataclass(slots=True)
class QueueMetadata:
    next_id: int = 1
    size: int = 0

    def encode(self) -> bytes:
        return _frame({"next_id": self.next_id, "size": self.size})

    @classmethod
    def decode(cls, raw: bytes) -> QueueMetadata:
        what = "queue metadata"
        body = _unframe(raw, what)
        return cls(_field(body, "next_id", int, what), _field(body, "size", int, what))
