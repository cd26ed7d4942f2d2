"""The gateway's sans-IO socket state: indexes, the pending buffer, limits and phases
(hibernation.md §1, §6, §9)."""

from __future__ import annotations

import pytest

from rivetpy.engine.hibernation import (
    HibernationStateError,
    Limits,
    PendingLimitError,
    Phase,
    SocketState,
)


def opened(first_index: int = 0, limits: Limits | None = None) -> SocketState:
    state = SocketState(limits, first_index=first_index)
    assert state.open() == first_index
    state.opened(True)
    return state


def test_messages_are_buffered_published_acked_and_replayed() -> None:
    state = opened()
    first = state.client_message(b"aa", False, 1.0)
    second = state.client_message(b"bbb", True, 2.0)
    assert first is not None and second is not None
    assert (first.index, second.index) == (1, 2)
    assert state.pending_size == 5 and state.oldest_sent_at() == 1.0
    assert state.ack(1) == 1
    assert state.pending_size == 3  # released bytes are subtracted (§9 "Required")
    assert state.hibernate() is True  # unacked: resume at once
    assert [m.index for m in state.resume(3.0)] == [2]
    assert state.ack(2) == 1 and not state.has_pending and state.pending_size == 0
    assert state.hibernate() is False
    assert state.client_message(b"c", False, 4.0) is None  # buffered while hibernating
    assert state.oldest_sent_at() is None  # not published yet: no ack deadline
    [replayed] = state.resume(5.0)
    assert (replayed.index, replayed.data, replayed.sent_at) == (3, b"c", 5.0)
    assert state.ack_overdue(36.0, 30.0) and not state.ack_overdue(35.0, 30.0)


def test_indexes_and_acks_wrap_at_16_bits() -> None:
    state = opened(65_534)
    indexes = []
    for _ in range(4):
        message = state.client_message(b"x", True, 0.0)
        assert message is not None
        indexes.append(message.index)
    assert indexes == [65_535, 0, 1, 2]
    assert state.ack(0) == 2  # 65535 and 0 are at or before 0 on the circle
    assert [m.index for m in state.pending] == [1, 2]
    assert state.ack(65_535) == 0  # an older ack releases nothing
    assert state.last_ack == 0
    assert state.ack(2) == 2


def test_limits_refuse_without_buffering() -> None:
    state = opened(limits=Limits(max_pending_size=10, max_pending_messages=3))
    state.client_message(b"12345", True, 0.0)
    with pytest.raises(PendingLimitError):
        state.client_message(b"123456", True, 0.0)  # 11 bytes > 10
    state.client_message(b"1", True, 0.0)
    state.client_message(b"2", True, 0.0)
    with pytest.raises(PendingLimitError):
        state.client_message(b"3", True, 0.0)  # a 4th message
    assert len(state.pending) == 3 and state.next_index == 4
    state.ack(1)
    assert state.client_message(b"4", True, 0.0) is not None


def test_non_hibernatable_socket_keeps_nothing_and_cannot_hibernate() -> None:
    state = SocketState()
    state.open()
    state.opened(False)
    assert state.client_message(b"x", False, 0.0) is not None
    assert not state.has_pending and state.ack(1) == 0
    with pytest.raises(HibernationStateError):
        state.hibernate()


def test_phase_errors_and_close() -> None:
    state = SocketState()
    with pytest.raises(HibernationStateError):
        state.client_message(b"x", False, 0.0)
    with pytest.raises(HibernationStateError):
        state.opened(True)
    assert state.close() is None  # never opened: nothing to tell the runner
    state = opened(7)
    state.client_message(b"x", True, 0.0)
    assert state.close() == 9  # the close message takes the next index
    assert state.phase is Phase.CLOSED and not state.has_pending
    assert state.close() is None
    with pytest.raises(HibernationStateError):
        SocketState(first_index=65_536)
