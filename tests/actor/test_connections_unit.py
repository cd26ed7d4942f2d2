"""Connection bookkeeping: wrapping u16 comparison, ack-after-persist across the 65535 wrap,
records written only when they change."""

from __future__ import annotations

from typing import Any

from rivetpy.actor.connections import ConnectionManager, u16_newer
from rivetpy.actor.persist import HibernatableSocket, PersistedConn


def test_u16_newer_wraps() -> None:
    assert u16_newer(1, None)
    assert u16_newer(5, 4) and not u16_newer(4, 5) and not u16_newer(4, 4)
    assert u16_newer(0, 65535) and u16_newer(3, 65530)
    assert not u16_newer(65535, 0)


class _FakeWs:
    closed = False

    def __init__(self) -> None:
        self.acks: list[int] = []

    def ack(self, index: int) -> None:
        self.acks.append(index)


def test_acks_follow_persisted_indexes_across_the_wrap() -> None:
    manager = ConnectionManager()
    socket = HibernatableSocket(b"gw01", b"rq01", 65533, 0, "/connect", {})
    conn = manager.new({"user": "a"}, {"n": 0}, socket)
    ws: Any = _FakeWs()
    conn.ws = ws
    acked: list[int] = []
    for index in [65534, 65535, 0, 1, 2]:
        conn.processed_index = index
        assert conn.ack_due() is None  # processed but not persisted: no ack yet
        puts, deletes = manager.pending_writes()
        assert [c.id for c, _, _ in puts] == [conn.id] and deletes == []
        for c, _, raw in puts:
            c.mark_saved(raw)
            assert PersistedConn.decode(raw).socket.server_index == index  # type: ignore[union-attr]
        due = conn.ack_due()
        assert due == index  # newer than the last ack, also after 65535 -> 0
        conn.acked_index = due
        acked.append(due)
    assert acked == [65534, 65535, 0, 1, 2]
    # unchanged: nothing to write, nothing to ack
    assert manager.pending_writes() == ([], [])
    assert conn.ack_due() is None


def test_removed_hibernatable_connections_are_deleted_once() -> None:
    manager = ConnectionManager()
    socket = HibernatableSocket(b"gw01", b"rq02", 0, 0, "/connect", {})
    conn = manager.new(None, None, socket)
    manager.remove(conn)
    _, deletes = manager.pending_writes()
    assert len(deletes) == 1
    manager.deleted_written(deletes)
    assert manager.pending_writes() == ([], [])
    ephemeral = manager.new(None, None, None)  # not hibernatable: never persisted
    manager.remove(ephemeral)
    assert manager.pending_writes() == ([], [])
