"""The engine side of one runner connection as a sans-IO state machine (no I/O, no clock, no trio).

The driver (:mod:`rivetpy.engine.runner_endpoint`) feeds it the frames the runner sent
(:meth:`EngineConnection.receive_frame`) and calls verbs for what the engine wants to say
(:meth:`~EngineConnection.send_init`, :meth:`~EngineConnection.send_commands`,
:meth:`~EngineConnection.send_kv_response`, :meth:`~EngineConnection.send_ping`, ...). Every verb
appends encoded frames to an outbox the driver drains with :meth:`~EngineConnection.data_to_send`
and writes in order. Times are plain integers (milliseconds) passed in by the driver.

Owned here, per runner-lifecycle.md: the handshake (§4.2: the first frame must be a binary
``ToServerInit``; failures map to close reasons), encoding in the connection's protocol version,
**send-time hydration** of start commands (kv-preload.md §5: a stored start command never
carries preloaded KV or hibernating requests; the caller supplies both, freshly fetched, for
every send; preloaded KV only reaches v8 connections), event intake with dedup (an event is
new only if its index is exactly ``last + 1`` for its (actor, generation)) and batched event
acks (§6.2), command acks (§5.4, surfaced to the engine core), ping/pong (§4.4).

Errors: :class:`HandshakeError` (the runner's first frame or URL is unacceptable; close with
its :attr:`~HandshakeError.close`), :class:`LocalProtocolError` (the caller asked for something
illegal, e.g. an already-hydrated stored command; state unchanged). Nothing else escapes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import codec
from codec import v8
from rivetpy.protocol.errors import LocalProtocolError, RemoteProtocolError

log = logging.getLogger("rivetpy.protocol.engine")

SUPPORTED_VERSIONS = (7, 8)
#: The engine acks events only once this many new ones arrived for an (actor, generation).
EVENT_ACK_BATCH = 250
INIT_TIMEOUT_MS = 5_000
PING_INTERVAL_MS = 3_000
PING_TIMEOUT_MS = 15_000
MAX_REASON_BYTES = 123
U32_MAX = 0xFFFF_FFFF

# -- close reasons (runner-lifecycle.md §11) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloseReason:
    """An engine close: WebSocket ``code`` and ``{group}.{code}`` (ray id appended on the wire)."""

    code: int
    group: str
    name: str

    def reason(self, ray_id: str = "") -> str:
        """``group.code#ray`` truncated to 123 bytes (the WebSocket limit)."""
        text = f"{self.group}.{self.name}" + (f"#{ray_id}" if ray_id else "")
        return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def _error(group: str, name: str) -> CloseReason:
    return CloseReason(1011, group, name)


CLOSED = CloseReason(1000, "ws", "closed")
EVICTION = CloseReason(1000, "ws", "eviction")
CONNECTION_CLOSED = CloseReason(1000, "ws", "connection_closed")
GOING_AWAY = _error("ws", "going_away")
TIMED_OUT_WAITING_FOR_INIT = _error("ws", "timed_out_waiting_for_init")
INVALID_INITIAL_PACKET = _error("ws", "invalid_initial_packet")
INVALID_PACKET = _error("ws", "invalid_packet")
INVALID_URL = _error("ws", "invalid_url")
NAMESPACE_NOT_FOUND = _error("namespace", "not_found")
INTERNAL_ERROR = _error("core", "internal_error")
MISSING_HEADER = _error("guard", "missing_header")
FORBIDDEN = _error("api", "forbidden")


class HandshakeError(RemoteProtocolError):
    """The connection cannot be established; close it with :attr:`close`."""

    def __init__(self, close: CloseReason, message: str) -> None:
        super().__init__(f"{close.group}.{close.name}: {message}")
        self.close = close


# -- URL --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectParams:
    protocol_version: int
    namespace: str
    runner_key: str


def parse_connect_query(query: Mapping[str, Sequence[str]]) -> ConnectParams:
    """The query of ``/runners/connect`` (as from ``urllib.parse.parse_qs``).

    Missing or malformed parameters raise :class:`HandshakeError` ``ws.invalid_url``; a version
    other than 7 or 8 raises ``ws.invalid_packet`` (what the real engine answers).
    """

    def one(name: str) -> str:
        values = query.get(name)
        if not values or not values[0]:
            raise HandshakeError(INVALID_URL, f"missing query parameter {name!r}")
        return values[0]

    raw_version = one("protocol_version")
    try:
        version = int(raw_version)
    except ValueError:
        raise HandshakeError(INVALID_URL, f"invalid protocol_version {raw_version!r}") from None
    namespace = one("namespace")
    runner_key = one("runner_key")
    if version not in SUPPORTED_VERSIONS:
        raise HandshakeError(INVALID_PACKET, f"unsupported protocol version {version}")
    return ConnectParams(version, namespace, runner_key)


# -- commands and hydration ---------------------------------------------------------------------

CommandKey = tuple[str, int, int]
"""(actor id, generation, command index): one queued command."""


@dataclass(frozen=True, slots=True)
class QueuedCommand:
    """A command as stored in the runner's durable queue: start commands are *never* hydrated
    (empty ``hibernating_requests``, absent ``preloaded_kv``)."""

    checkpoint: v8.ActorCheckpoint
    command: v8.Command

    @property
    def key(self) -> CommandKey:
        c = self.checkpoint
        return (c.actor_id, c.generation, c.index)

    @property
    def is_start(self) -> bool:
        return isinstance(self.command, v8.CommandStartActor)


@dataclass(frozen=True, slots=True)
class Hydration:
    """What a start command gets at send time, fetched fresh for this one send."""

    hibernating_requests: list[v8.HibernatingRequest] = field(default_factory=list)
    preloaded_kv: v8.PreloadedKv | None = None


def check_stored(command: v8.Command) -> None:
    """Raise :class:`LocalProtocolError` if a command about to be stored is hydrated."""
    if isinstance(command, v8.CommandStartActor) and (
        command.hibernating_requests or command.preloaded_kv is not None
    ):
        raise LocalProtocolError("a stored start command must not carry send-time data")


# -- events handed to the driver --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitReceived:
    init: v8.ToServerInit


@dataclass(frozen=True, slots=True)
class ActorEventsReceived:
    """New events (duplicates and out-of-order ones removed), in arrival order."""

    events: list[v8.EventWrapper]


@dataclass(frozen=True, slots=True)
class CommandsAcked:
    checkpoints: list[v8.ActorCheckpoint]


@dataclass(frozen=True, slots=True)
class KvRequestReceived:
    actor_id: str
    request_id: int
    data: v8.KvRequestData


@dataclass(frozen=True, slots=True)
class TunnelMessageReceived:
    message: v8.ToServerTunnelMessage


@dataclass(frozen=True, slots=True)
class StoppingReceived:
    pass


@dataclass(frozen=True, slots=True)
class PongReceived:
    rtt_ms: int


Event = (
    InitReceived
    | ActorEventsReceived
    | CommandsAcked
    | KvRequestReceived
    | TunnelMessageReceived
    | StoppingReceived
    | PongReceived
)


class ConnState(Enum):
    AWAITING_INIT = "awaiting_init"
    OPEN = "open"
    CLOSED = "closed"


class EngineConnection:
    """One runner connection, engine side. See the module docstring for the contract."""

    def __init__(
        self, protocol_version: int, now_ms: int, *, event_ack_batch: int = EVENT_ACK_BATCH
    ) -> None:
        if protocol_version not in SUPPORTED_VERSIONS:
            raise LocalProtocolError(f"unsupported protocol version {protocol_version}")
        self.protocol_version = protocol_version
        self.state = ConnState.AWAITING_INIT
        self.init: v8.ToServerInit | None = None
        self.last_pong_ms = now_ms
        self.rtt_ms: int | None = None
        self._event_ack_batch = event_ack_batch
        self._last_event: dict[tuple[str, int], int] = {}
        self._last_acked: dict[tuple[str, int], int] = {}
        self._outbox: list[bytes] = []
        #: start commands sent with send-time data, for observability
        self.hydrated_sends = 0

    @property
    def wants_preload(self) -> bool:
        """Whether start commands on this connection can carry preloaded KV (v8 only): the
        driver should not fetch it otherwise."""
        return self.protocol_version >= 8

    # -- output ----------------------------------------------------------------------------------
    def data_to_send(self) -> list[bytes]:
        """Take the frames to write, in order."""
        out, self._outbox = self._outbox, []
        return out

    def _send(self, msg: v8.ToClient) -> None:
        if self.state is ConnState.CLOSED:
            raise LocalProtocolError("connection is closed")
        self._outbox.append(codec.TO_CLIENT.encode(msg, self.protocol_version))

    # -- input -----------------------------------------------------------------------------------
    def receive_frame(self, frame: bytes | str, now_ms: int = 0) -> list[Event]:
        """Process one WebSocket message from the runner.

        Before the handshake: a text frame or a frame that is not ``ToServerInit`` raises
        :class:`HandshakeError` ``ws.invalid_initial_packet``, an undecodable one
        ``ws.invalid_packet``. After it: undecodable frames are logged and ignored, as are
        further ``ToServerInit`` frames.
        """
        if self.state is ConnState.CLOSED:
            return []
        if self.state is ConnState.AWAITING_INIT:
            return [self._receive_init(frame)]
        if isinstance(frame, str):
            log.warning("ignoring a text frame from the runner")
            return []
        try:
            msg = codec.TO_SERVER.decode(frame, self.protocol_version)
        except codec.DecodeError as exc:
            log.warning("ignoring an undecodable frame from the runner", extra={"error": str(exc)})
            return []
        return self._dispatch(msg, now_ms)

    def _receive_init(self, frame: bytes | str) -> InitReceived:
        if isinstance(frame, str):
            raise HandshakeError(INVALID_INITIAL_PACKET, "the first frame is not binary")
        try:
            msg = codec.TO_SERVER.decode(frame, self.protocol_version)
        except codec.DecodeError as exc:
            raise HandshakeError(INVALID_PACKET, f"undecodable init: {exc}") from None
        if not isinstance(msg, v8.ToServerInit):
            raise HandshakeError(
                INVALID_INITIAL_PACKET, f"first frame is {type(msg).__name__}, not ToServerInit"
            )
        self.state = ConnState.OPEN
        self.init = msg
        return InitReceived(msg)

    def _dispatch(self, msg: v8.ToServer, now_ms: int) -> list[Event]:
        if isinstance(msg, v8.ToServerEvents):
            fresh = self._intake_events(msg.value)
            return [ActorEventsReceived(fresh)] if fresh else []
        if isinstance(msg, v8.ToServerKvRequest):
            return [KvRequestReceived(msg.actor_id, msg.request_id, msg.data)]
        if isinstance(msg, v8.ToServerTunnelMessage):
            return [TunnelMessageReceived(msg)]
        if isinstance(msg, v8.ToServerPong):
            rtt = now_ms - msg.ts
            self.rtt_ms = rtt if 0 <= rtt <= U32_MAX else U32_MAX
            self.last_pong_ms = now_ms
            return [PongReceived(self.rtt_ms)]
        if isinstance(msg, v8.ToServerAckCommands):
            return [CommandsAcked(list(msg.last_command_checkpoints))]
        if isinstance(msg, v8.ToServerStopping):
            return [StoppingReceived()]
        # ToServerInit on an established connection
        log.debug("ignoring a repeated ToServerInit")
        return []

    # -- events: dedup and acks -------------------------------------------------------------------
    def seed_event_index(self, actor_id: str, generation: int, last_index: int) -> None:
        """The engine's durable ``last_event_idx`` for an allocation (``-1``: none yet)."""
        key = (actor_id, generation)
        self._last_event[key] = last_index
        self._last_acked.setdefault(key, last_index)

    def forget_actor(self, actor_id: str, generation: int) -> None:
        """Drop the dedup state of a finished allocation."""
        self._last_event.pop((actor_id, generation), None)
        self._last_acked.pop((actor_id, generation), None)

    def last_event_index(self, actor_id: str, generation: int) -> int:
        return self._last_event.get((actor_id, generation), -1)

    def _intake_events(self, wrappers: Sequence[v8.EventWrapper]) -> list[v8.EventWrapper]:
        fresh: list[v8.EventWrapper] = []
        dropped = 0
        touched: set[tuple[str, int]] = set()
        for wrapper in wrappers:
            cp = wrapper.checkpoint
            key = (cp.actor_id, cp.generation)
            last = self._last_event.get(key, -1)
            if cp.index != last + 1:
                dropped += 1
                continue
            self._last_event[key] = cp.index
            touched.add(key)
            fresh.append(wrapper)
        if dropped:
            log.debug("dropped duplicate or out-of-order events", extra={"count": dropped})
        due = [
            v8.ActorCheckpoint(actor_id, generation, self._last_event[(actor_id, generation)])
            for actor_id, generation in sorted(touched)
            if self._last_event[(actor_id, generation)]
            > self._last_acked.get((actor_id, generation), -1) + self._event_ack_batch - 1
        ]
        if due:
            for cp in due:
                self._last_acked[(cp.actor_id, cp.generation)] = cp.index
            self._send(v8.ToClientAckEvents(due))
        return fresh

    # -- verbs -------------------------------------------------------------------------------------
    def send_init(self, runner_id: str, metadata: v8.ProtocolMetadata) -> None:
        if self.state is not ConnState.OPEN:
            raise LocalProtocolError("ToClientInit before the runner's ToServerInit")
        self._send(v8.ToClientInit(runner_id, metadata))

    def send_commands(
        self, commands: Sequence[QueuedCommand], hydration: Mapping[CommandKey, Hydration]
    ) -> None:
        """Send ``commands`` (stored form) in one ``ToClientCommands`` frame.

        Every start command is filled from ``hydration[command.key]`` for this send only (the
        stored values are never modified); preloaded KV is left out on a v7 connection. Raises
        :class:`LocalProtocolError` if a stored start command is already hydrated or a start
        command has no hydration entry (nothing is sent then).
        """
        if self.state is not ConnState.OPEN:
            raise LocalProtocolError("commands before the handshake")
        wrappers: list[v8.CommandWrapper] = []
        for queued in commands:
            inner = queued.command
            if isinstance(inner, v8.CommandStartActor):
                check_stored(inner)
                h = hydration.get(queued.key)
                if h is None:
                    raise LocalProtocolError(f"start command {queued.key} is not hydrated")
                inner = v8.CommandStartActor(
                    inner.config,
                    list(h.hibernating_requests),
                    h.preloaded_kv if self.wants_preload else None,
                )
            wrappers.append(v8.CommandWrapper(queued.checkpoint, inner))
        if not wrappers:
            return
        self._send(v8.ToClientCommands(wrappers))
        self.hydrated_sends += sum(1 for q in commands if q.is_start)

    def send_kv_response(self, request_id: int, data: v8.KvResponseData) -> None:
        self._send(v8.ToClientKvResponse(request_id, data))

    def send_tunnel(self, message: v8.ToClientTunnelMessage) -> None:
        self._send(message)

    def send_ping(self, now_ms: int) -> None:
        self._send(v8.ToClientPing(now_ms))

    def ping_timed_out(self, now_ms: int, timeout_ms: int = PING_TIMEOUT_MS) -> bool:
        return now_ms - self.last_pong_ms > timeout_ms

    def close(self) -> None:
        """No more frames are produced (pending ones stay in the outbox)."""
        self.state = ConnState.CLOSED
