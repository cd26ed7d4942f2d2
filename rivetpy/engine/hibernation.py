"""One gateway WebSocket's hibernation state: a sans-IO state machine (no I/O, clock or trio).

The gateway driver (:mod:`rivetpy.engine.gateway_ws`) owns one :class:`SocketState` per client
WebSocket and calls verbs for what happens (the open, the runner's open reply, a client message,
a runner ack, the actor going away, the resume on a runner). The machine decides message indexes,
what is buffered, what is published now and what is replayed (hibernation.md §1, §3, §6, §9):

* the *server message index* is a ``u16`` that starts at the open message's index, is never reset
  while the socket lives (it survives hibernation) and wraps at 65 536;
* for a hibernatable socket every gateway→runner message is appended to the *pending* buffer
  **before** it is published, and stays there until the runner acknowledges it (acks are
  cumulative and compared with wrapping arithmetic); messages the client sends while the actor
  sleeps are buffered the same way, with their indexes, and published on resume;
* the buffer is bounded (total bytes and message count); exceeding a bound raises
  :class:`PendingLimitError` and the socket must be closed; released bytes are subtracted on
  ack (the upstream counter is never decremented, §9 "Required");
* on resume every pending message is re-published unchanged (same index, same bytes).

Phases (:class:`Phase`)::

    OPENING --opened--> ACTIVE --hibernate--> HIBERNATING --resume--> ACTIVE
       any --close--> CLOSED

Errors: :class:`HibernationStateError` (the caller asked for something illegal in this phase;
state unchanged), :class:`PendingLimitError` (the buffer bound was exceeded; state unchanged).
Nothing else escapes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from rivetpy.protocol.wrapping import U16, gt, next_index

#: hibernation.md §2 ``gateway_hws_max_pending_size``
DEFAULT_MAX_PENDING_SIZE = 128 * 1024 * 1024
#: hibernation.md §9: ``pending`` holding this many messages refuses more
DEFAULT_MAX_PENDING_MESSAGES = 65_535
#: hibernation.md §2 ``gateway_hws_message_ack_timeout_ms``
DEFAULT_ACK_TIMEOUT_MS = 30_000
#: the close reason of a socket whose buffer is full (hibernation.md §9, §12 #10)
PENDING_LIMIT_REASON = "guard.websocket_pending_limit_reached"
#: the close reason of a socket whose oldest pending message was not acked in time
ACK_TIMEOUT_REASON = "guard.websocket_message_not_acked"


def keepalive_interval_ms(threshold_ms: int) -> int:
    """``max(threshold / 2, 1)`` ms (hibernation.md §2, §12 #1: never a zero-length timer)."""
    return max(threshold_ms // 2, 1)


class Phase(Enum):
    OPENING = "opening"
    ACTIVE = "active"
    HIBERNATING = "hibernating"
    CLOSED = "closed"


class HibernationStateError(Exception):
    """A verb was called in a phase that does not allow it (a driver bug); nothing changed."""


class PendingLimitError(Exception):
    """The pending buffer would exceed its byte or message bound; nothing was buffered. The
    socket must be closed with :data:`PENDING_LIMIT_REASON`."""


@dataclass(slots=True)
class PendingMessage:
    """A gateway→runner WebSocket message kept until the runner acknowledges it."""

    index: int
    data: bytes
    binary: bool
    #: when it was first published to a runner (driver clock, seconds); None while buffered
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_pending_size: int = DEFAULT_MAX_PENDING_SIZE
    max_pending_messages: int = DEFAULT_MAX_PENDING_MESSAGES


class SocketState:
    """The gateway's state of one client WebSocket to an actor (see the module docstring)."""

    def __init__(self, limits: Limits | None = None, *, first_index: int = 0) -> None:
        if not 0 <= first_index < U16:
            raise HibernationStateError(f"message index {first_index} is not a u16")
        self.limits = limits or Limits()
        self.phase = Phase.OPENING
        self.hibernatable = False
        #: the index the next gateway→runner message gets
        self.next_index = first_index
        self._pending: deque[PendingMessage] = deque()
        self.pending_size = 0
        self._opened_index: int | None = None
        #: the highest index the runner acknowledged (None before the first ack)
        self.last_ack: int | None = None

    # -- queries ---------------------------------------------------------------------------------
    @property
    def pending(self) -> tuple[PendingMessage, ...]:
        return tuple(self._pending)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def oldest_sent_at(self) -> float | None:
        """Send time of the oldest published, unacknowledged message (ack timeout, §9)."""
        for message in self._pending:
            if message.sent_at is not None:
                return message.sent_at
        return None

    def ack_overdue(self, now: float, timeout: float) -> bool:
        """Whether the oldest published pending message waited longer than ``timeout``."""
        oldest = self.oldest_sent_at()
        return oldest is not None and now - oldest > timeout

    # -- verbs -----------------------------------------------------------------------------------
    def _take_index(self) -> int:
        index = self.next_index
        self.next_index = next_index(index)
        return index

    def _require(self, *phases: Phase) -> None:
        if self.phase not in phases:
            names = "/".join(p.value for p in phases)
            raise HibernationStateError(f"socket is {self.phase.value}, not {names}")

    def open(self) -> int:
        """The index of the ``ToClientWebSocketOpen`` to send (once, while opening)."""
        self._require(Phase.OPENING)
        if self._opened_index is not None:
            raise HibernationStateError("the open message was already sent")
        self._opened_index = self._take_index()
        return self._opened_index

    def reopen(self) -> int:
        """A new open attempt (the previous one was refused before the socket opened): the
        request starts over with a fresh index sequence (a fresh adapter on the runner starts at
        the open message's index)."""
        self._require(Phase.OPENING)
        self._opened_index = None
        return self.open()

    def opened(self, can_hibernate: bool) -> None:
        """The runner accepted the socket (``ToServerWebSocketOpen{canHibernate}``)."""
        self._require(Phase.OPENING)
        if self._opened_index is None:
            raise HibernationStateError("opened before the open message was sent")
        self.hibernatable = can_hibernate
        self.phase = Phase.ACTIVE

    def client_message(self, data: bytes, binary: bool, now: float) -> PendingMessage | None:
        """The client sent a message. Returns the message to publish to the runner now (active),
        or None when it was buffered for the resume (hibernating). Raises
        :class:`PendingLimitError` when a hibernatable socket's buffer is full."""
        self._require(Phase.ACTIVE, Phase.HIBERNATING)
        if self.phase is Phase.HIBERNATING and not self.hibernatable:
            raise HibernationStateError("a socket that cannot hibernate is not hibernating")
        if self.hibernatable:
            limits = self.limits
            if (
                len(self._pending) >= limits.max_pending_messages
                or self.pending_size + len(data) > limits.max_pending_size
            ):
                raise PendingLimitError(
                    f"{len(self._pending)} messages / {self.pending_size} bytes pending"
                )
        message = PendingMessage(self._take_index(), data, binary)
        if self.hibernatable:
            self._pending.append(message)
            self.pending_size += len(data)
        if self.phase is Phase.ACTIVE:
            message.sent_at = now
            return message
        return None

    def ack(self, index: int) -> int:
        """``ToServerWebSocketMessageAck{index}``: forget pending messages up to ``index``
        (wrapping comparison). Returns how many were released. Ignored unless hibernatable."""
        if not self.hibernatable or not 0 <= index < U16:
            return 0
        released = 0
        while self._pending and not gt(self._pending[0].index, index):
            self.pending_size -= len(self._pending.popleft().data)
            released += 1
        if self.last_ack is None or gt(index, self.last_ack):
            self.last_ack = index
        return released

    def hibernate(self) -> bool:
        """The actor went away (stopped, or its runner connection closed) while the socket is
        active. Returns True when the socket must resume at once (pending messages the runner
        did not acknowledge: the actor is woken to consume them, §6.2 step 1)."""
        self._require(Phase.ACTIVE)
        if not self.hibernatable:
            raise HibernationStateError("the socket cannot hibernate")
        self.phase = Phase.HIBERNATING
        return bool(self._pending)

    def resume(self, now: float) -> list[PendingMessage]:
        """The actor is ready again: the socket is active and every pending message is to be
        re-published, in order, unchanged (§6.3)."""
        self._require(Phase.HIBERNATING)
        self.phase = Phase.ACTIVE
        for message in self._pending:
            if message.sent_at is None:
                message.sent_at = now
        return list(self._pending)

    def close(self) -> int | None:
        """The socket ends. Returns the index of the ``ToClientWebSocketClose`` to send to the
        runner if it was open (None if it never opened or is already closed)."""
        if self.phase is Phase.CLOSED:
            return None
        was_open = self.phase is not Phase.OPENING
        self.phase = Phase.CLOSED
        self._pending.clear()
        self.pending_size = 0
        return self._take_index() if was_open else None


__all__ = [
    "ACK_TIMEOUT_REASON",
    "DEFAULT_ACK_TIMEOUT_MS",
    "DEFAULT_MAX_PENDING_MESSAGES",
    "DEFAULT_MAX_PENDING_SIZE",
    "PENDING_LIMIT_REASON",
    "HibernationStateError",
    "Limits",
    "PendingLimitError",
    "PendingMessage",
    "Phase",
    "SocketState",
    "keepalive_interval_ms",
]
