"""Client connections of one actor instance: params, state, event subscriptions, and for
hibernatable WebSocket connections the persisted record that lets them survive sleep.

A hibernatable connection is persisted at ``CONNECTIONS + id`` with its params, state,
subscriptions and socket indexes. Message indexes follow hibernation.md §8.4: after a message is
processed its index is recorded, the record is written with the next save, and only then is the
index acknowledged to the gateway (cumulatively, with the wrapping u16 comparison).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import trio

from rivetpy.actor.keys import connection_key
from rivetpy.actor.persist import HibernatableSocket, PersistedConn, dumps
from rivetpy.protocol.events import TunnelKey
from rivetpy.runner.api import WebSocket, WebSocketClosedError

log = logging.getLogger("rivetpy.actor.connections")

#: events queued for one connection beyond this close it (a client that does not read)
MAX_OUTBOX = 4096


def u16_newer(a: int, b: int | None) -> bool:
    """Whether index ``a`` is after ``b`` in wrapping u16 order (hibernation.md §1)."""
    if b is None:
        return True
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class Conn:
    """One client connection. ``state`` is the connection's own data (persisted for
    hibernatable connections); :meth:`send` queues an event to this client only."""

    def __init__(
        self,
        conn_id: str,
        params: Any,
        state: Any,
        *,
        subscriptions: Iterable[str] = (),
        socket: HibernatableSocket | None = None,
    ) -> None:
        self.id = conn_id
        self.params = params
        self.state = state
        self.subscriptions: set[str] = set(subscriptions)
        #: persisted socket info (hibernatable connections only)
        self.socket_info = socket
        self.ws: WebSocket | None = None
        self._outbox_send, self._outbox = trio.open_memory_channel[bytes](MAX_OUTBOX)
        self.restored = False
        #: last processed gateway message index, and the last one acknowledged
        self.processed_index: int | None = None if socket is None else socket.server_index
        self.acked_index: int | None = None if socket is None else socket.server_index
        self._saved: bytes | None = None

    @property
    def hibernatable(self) -> bool:
        return self.socket_info is not None

    @property
    def tunnel_key(self) -> TunnelKey | None:
        info = self.socket_info
        return None if info is None else (info.gateway_id, info.request_id)

    def send(self, event: str, *args: Any) -> None:
        self.send_raw({"type": "event", "name": event, "args": list(args)})

    def send_raw(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            self._outbox_send.send_nowait(data)
        except trio.WouldBlock:
            log.warning("connection outbox full; closing it", extra={"conn_id": self.id})
            self._outbox_send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def pump_outbox(self) -> None:
        """Write queued messages to the socket until it closes."""
        assert self.ws is not None
        ws = self.ws
        async for data in self._outbox:
            try:
                await ws.send(data.decode())
            except WebSocketClosedError:
                return
        if not ws.closed:
            await ws.close(1011, "outbox overflow")

    def close_outbox(self) -> None:
        self._outbox_send.close()

    def record(self) -> PersistedConn:
        info = self.socket_info
        if info is not None and self.processed_index is not None:
            info.server_index = self.processed_index
        return PersistedConn(self.id, self.params, self.state, sorted(self.subscriptions), info)

    def encoded_if_changed(self) -> bytes | None:
        """The record's bytes when they differ from the last written ones."""
        raw = self.record().encode()
        return None if raw == self._saved else raw

    def mark_saved(self, raw: bytes) -> None:
        self._saved = raw

    def ack_due(self) -> int | None:
        """The persisted index to acknowledge, if newer than the last ack."""
        info = self.socket_info
        if info is None or self.ws is None or self._saved is None:
            return None
        return info.server_index if u16_newer(info.server_index, self.acked_index) else None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "params": jsonable(self.params),
            "state": jsonable(self.state),
            "subscriptions": sorted(self.subscriptions),
            "hibernatable": self.hibernatable,
        }


def jsonable(value: Any) -> Any:
    """``value`` if JSON can carry it, else its repr (for views such as the inspector)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class ConnectionManager:
    """All connections of the instance, and which records must be written or deleted."""

    def __init__(self) -> None:
        self._conns: dict[str, Conn] = {}
        #: hibernatable connections by their socket's tunnel key (restores look them up)
        self._by_key: dict[TunnelKey, Conn] = {}
        self._deleted: set[str] = set()

    def all(self) -> list[Conn]:
        return list(self._conns.values())

    def get(self, conn_id: str) -> Conn | None:
        return self._conns.get(conn_id)

    def by_tunnel_key(self, key: TunnelKey) -> Conn | None:
        return self._by_key.get(key)

    def _add(self, conn: Conn) -> None:
        self._conns[conn.id] = conn
        key = conn.tunnel_key
        if key is not None:
            self._by_key[key] = conn

    def new(self, params: Any, state: Any, socket: HibernatableSocket | None) -> Conn:
        dumps(state)  # refuse a state that cannot be persisted, before anything is kept
        conn = Conn(str(uuid.uuid4()), params, state, socket=socket)
        self._add(conn)
        self._deleted.discard(conn.id)
        return conn

    def adopt(self, record: PersistedConn) -> Conn:
        conn = Conn(
            record.id,
            record.params,
            record.state,
            subscriptions=record.subscriptions,
            socket=record.socket,
        )
        conn.mark_saved(record.encode())
        self._add(conn)
        return conn

    def remove(self, conn: Conn) -> None:
        if self._conns.pop(conn.id, None) is not None and conn.hibernatable:
            self._deleted.add(conn.id)
            key = conn.tunnel_key
            if key is not None:
                self._by_key.pop(key, None)
        conn.close_outbox()

    def broadcast(self, event: str, args: list[Any]) -> None:
        for conn in list(self._conns.values()):
            if event in conn.subscriptions and conn.ws is not None:
                conn.send_raw({"type": "event", "name": event, "args": args})

    def pending_writes(self) -> tuple[list[tuple[Conn, bytes, bytes]], list[bytes]]:
        """``(conn, key, record)`` to write and keys to delete for the next save."""
        puts = []
        for conn in self._conns.values():
            if not conn.hibernatable:
                continue
            raw = conn.encoded_if_changed()
            if raw is not None:
                puts.append((conn, connection_key(conn.id), raw))
        deletes = [connection_key(cid) for cid in sorted(self._deleted)]
        return puts, deletes

    def deleted_written(self, keys: Iterable[bytes]) -> None:
        written = set(keys)
        self._deleted = {cid for cid in self._deleted if connection_key(cid) not in written}
