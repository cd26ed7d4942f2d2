"""The runner side of the runner protocol as a sans-IO state machine (no I/O, no clock, no trio).

The driver feeds it what happens (``connection_made``, ``receive_message``/``receive_frame``,
``connection_lost``, local calls such as ``start_completed`` or ``kv_request``) and collects what
it must do: ``messages_to_send()`` (``ToServer`` values, in order) and ``next_events()`` (the
events of :mod:`rivetpy.protocol.events`). Times are passed in as plain floats (seconds).

Owned here, per runner-lifecycle.md: the init handshake and flush order after it; command dedup
by (actor id, generation, index) and command acks; per-instance event indexes, history, resend
after reconnect and pruning on ``ToClientAckEvents`` matched by (actor id, generation); KV
request ids, queueing and timeouts; ping/pong; the actor lifecycle with the right stop code; and
tunnel routing by (gateway id, request id), with tunnel traffic for a starting actor held until
its start callback finished, and index validation of hibernatable WebSockets.

Errors: :class:`LocalProtocolError` for an illegal local call (state unchanged),
:class:`RemoteProtocolError` for a protocol violation by the engine. Nothing else escapes.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import codec
from codec import v8
from rivetpy.protocol import events as ev
from rivetpy.protocol.commands import CommandTracker, Decision
from rivetpy.protocol.errors import LocalProtocolError, RemoteProtocolError
from rivetpy.protocol.kv import DEFAULT_KV_TIMEOUT, KvTable, PendingKv
from rivetpy.protocol.tunnel import MAX_TUNNEL_PAYLOAD, Kind, TunnelRequest, WsState
from rivetpy.protocol.wrapping import le, next_index

log = logging.getLogger("rivetpy.protocol")

EVENT_BACKLOG_WARNING = 10_000


class ConnState(Enum):
    DISCONNECTED = "disconnected"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"


class Lifecycle(Enum):
    ACTIVE = "active"
    DRAINING = "draining"
    SHUTDOWN = "shutdown"


class InstanceState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(frozen=True)
class RunnerConfig:
    """What the runner announces in ``ToServerInit``.

    ``actor_names`` maps each actor type name to its metadata object (sent as JSON text in
    ``prepopulateActorNames``); ``metadata`` is the runner metadata object.
    """

    name: str
    total_slots: int
    version: int = 1
    actor_names: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    protocol_version: int = 8
    kv_timeout: float = DEFAULT_KV_TIMEOUT

    def init_message(self) -> v8.ToServerInit:
        names = {
            name: v8.ActorName(json.dumps(meta, separators=(",", ":"), sort_keys=True))
            for name, meta in self.actor_names.items()
        }
        meta = None if self.metadata is None else json.dumps(self.metadata, separators=(",", ":"))
        return v8.ToServerInit(self.name, self.version, self.total_slots, names, meta)


@dataclass(slots=True)
class Instance:
    """One hosted actor instance (actor id + generation)."""

    actor_id: str
    generation: int
    config: v8.ActorConfig
    state: InstanceState = InstanceState.STARTING
    next_event_index: int = 0
    history: list[v8.EventWrapper] = field(default_factory=list)
    destroy_requested: bool = False
    #: the start callback's error, reported in ``ActorStateStopped``
    failure: str | None = None
    #: hibernating requests from the start command not restored yet
    awaiting_restore: set[ev.TunnelKey] = field(default_factory=set)
    #: tunnel events held while the start callback runs
    held: list[ev.Event] = field(default_factory=list)
    requests: set[ev.TunnelKey] = field(default_factory=set)


class RunnerCore:
    """The runner-side protocol state machine. See the module docstring for the contract."""

    def __init__(self, config: RunnerConfig) -> None:
        if config.protocol_version not in (7, 8):
            raise LocalProtocolError("protocol_version must be 7 or 8")
        self.config = config
        self.conn = ConnState.DISCONNECTED
        self.lifecycle = Lifecycle.ACTIVE
        self.runner_id: str | None = None
        self.metadata: v8.ProtocolMetadata | None = None
        self._outbox: list[v8.ToServer] = []
        self._events: deque[ev.Event] = deque()
        self._instances: dict[tuple[str, int], Instance] = {}
        self._current: dict[str, int] = {}  # actor id -> generation receiving new traffic
        self._commands = CommandTracker()
        self._kv = KvTable(config.kv_timeout)
        self._requests: dict[ev.TunnelKey, TunnelRequest] = {}
        self._tunnel_buffer: list[tuple[TunnelRequest, v8.ToServerTunnelMessageKind]] = []
        #: unacked history of removed instances, kept until handed out while connected
        self._retired: dict[tuple[str, int], list[v8.EventWrapper]] = {}
        self._stopping_unsent = False
        self._backlog_warned = False

    # -- outputs -------------------------------------------------------------------------------
    def messages_to_send(self) -> list[v8.ToServer]:
        """Take the messages to write, in order."""
        out, self._outbox = self._outbox, []
        if self.connected:
            # Whatever is retired is in ``out`` (sent when it stopped, or in the init flush).
            self._retired.clear()
        return out

    def next_events(self) -> list[ev.Event]:
        """Take the events for the driver, in order."""
        out = list(self._events)
        self._events.clear()
        return out

    # -- queries -------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.conn is ConnState.CONNECTED

    def hosted(self) -> list[tuple[str, int]]:
        return list(self._instances)

    def instance(self, actor_id: str, generation: int) -> Instance | None:
        return self._instances.get((actor_id, generation))

    def kv_next_deadline(self) -> float | None:
        return self._kv.next_deadline()

    def pending_kv(self) -> int:
        return len(self._kv)

    # -- connection ----------------------------------------------------------------------------
    def connection_made(self) -> None:
        """The socket is open: send ``ToServerInit`` as the very first frame."""
        if self.conn is not ConnState.DISCONNECTED:
            raise LocalProtocolError(f"connection_made while {self.conn.value}")
        if self.lifecycle is Lifecycle.SHUTDOWN:
            raise LocalProtocolError("runner is shut down")
        self.conn = ConnState.HANDSHAKING
        self._outbox.append(self.config.init_message())

    def connection_lost(self) -> None:
        """The socket closed or failed. Output not taken yet is dropped: events are resent
        from history and KV requests are resent after the next handshake; pongs, command acks
        and tunnel messages are lost (as if written to the dead socket)."""
        if self.conn is ConnState.DISCONNECTED:
            return
        self.conn = ConnState.DISCONNECTED
        self._outbox.clear()  # pongs, acks, events: events are resent from history
        self._kv.connection_lost()

    def receive_frame(self, data: bytes) -> None:
        """Decode one binary frame with the announced version and process it."""
        if self.conn is ConnState.DISCONNECTED:
            raise LocalProtocolError("receive_frame while disconnected")
        try:
            msg = codec.TO_CLIENT.decode(data, self.config.protocol_version)
        except codec.DecodeError as exc:
            raise RemoteProtocolError(f"undecodable frame: {exc}") from None
        self.receive_message(msg)

    def receive_message(self, msg: v8.ToClient) -> None:
        """Process one decoded ``ToClient`` message."""
        if self.conn is ConnState.DISCONNECTED:
            raise LocalProtocolError("receive_message while disconnected")
        if self.conn is ConnState.HANDSHAKING:
            if not isinstance(msg, v8.ToClientInit):
                raise RemoteProtocolError(f"{type(msg).__name__} before ToClientInit")
            self._on_init(msg)
            return
        if isinstance(msg, v8.ToClientPing):
            self._outbox.append(v8.ToServerPong(msg.ts))
        elif isinstance(msg, v8.ToClientCommands):
            self._on_commands(msg.value)
        elif isinstance(msg, v8.ToClientKvResponse):
            self._on_kv_response(msg)
        elif isinstance(msg, v8.ToClientTunnelMessage):
            self._on_tunnel(msg)
        elif isinstance(msg, v8.ToClientAckEvents):
            self._on_ack_events(msg.last_event_checkpoints)
        else:
            raise RemoteProtocolError("a second ToClientInit on an established connection")

    def _on_init(self, msg: v8.ToClientInit) -> None:
        changed = msg.runner_id != self.runner_id
        if changed and self.runner_id is not None:
            log.info("runner id changed", extra={"old": self.runner_id, "new": msg.runner_id})
            for actor_id, generation in list(self._instances):
                self._request_stop(actor_id, generation, ev.StopReason.RUNNER_ID_CHANGED)
        self.runner_id = msg.runner_id
        self.metadata = msg.metadata
        self.conn = ConnState.CONNECTED
        self._events.append(ev.Connected(msg.runner_id, msg.metadata, changed))
        # Flush order (§4.3): KV requests, then all unacked events in one frame, then tunnel.
        # Pending KV requests are (re)sent; their timeout keeps counting from the last send.
        for req in self._kv.to_resend():
            self._send_kv(req, now=req.since)
        history = [w for old in self._retired.values() for w in old]
        history += [w for inst in self._instances.values() for w in inst.history]
        if history:
            self._outbox.append(v8.ToServerEvents(history))
        buffered, self._tunnel_buffer = self._tunnel_buffer, []
        for request, kind in buffered:
            self._send_tunnel_now(request, kind)
        if self._stopping_unsent or self.lifecycle is Lifecycle.DRAINING:
            self._stopping_unsent = False
            self._outbox.append(v8.ToServerStopping())

    # -- commands ------------------------------------------------------------------------------
    def _on_commands(self, wrappers: list[v8.CommandWrapper]) -> None:
        replayed = False
        for w in wrappers:
            cp, cmd = w.checkpoint, w.inner
            is_start = isinstance(cmd, v8.CommandStartActor)
            hosted = self._current.get(cp.actor_id)
            decision = self._commands.decide(cp.actor_id, cp.generation, cp.index, is_start, hosted)
            if decision is not Decision.HANDLE:
                replayed = True
                log.debug(
                    "dropped command",
                    extra={
                        "actor_id": cp.actor_id,
                        "generation": cp.generation,
                        "index": cp.index,
                        "why": decision.value,
                    },
                )
                continue
            if isinstance(cmd, v8.CommandStartActor):
                self._start(cp, cmd)
            else:
                self._request_stop(cp.actor_id, cp.generation, ev.StopReason.COMMAND)
            if (cp.actor_id, cp.generation) not in self._instances:
                # A stop for a generation not hosted (or a start refused after shutdown):
                # ack it like a stopped generation, then forget it.
                self._commands.generation_gone(cp.actor_id, cp.generation)
        if replayed:
            self.ack_commands()

    def _start(self, cp: v8.ActorCheckpoint, cmd: v8.CommandStartActor) -> None:
        if self.lifecycle is Lifecycle.SHUTDOWN:
            return
        old = self._current.get(cp.actor_id)
        if old is not None and old != cp.generation:
            self._request_stop(cp.actor_id, old, ev.StopReason.REPLACED)
        keys = tuple((h.gateway_id, h.request_id) for h in cmd.hibernating_requests)
        inst = Instance(cp.actor_id, cp.generation, cmd.config, awaiting_restore=set(keys))
        self._instances[(cp.actor_id, cp.generation)] = inst
        self._current[cp.actor_id] = cp.generation
        self._actor_event(inst, v8.EventActorStateUpdate(v8.ActorStateRunning()))
        self._events.append(
            ev.ActorStartRequested(cp.actor_id, cp.generation, cmd.config, cmd.preloaded_kv, keys)
        )

    def _request_stop(self, actor_id: str, generation: int, reason: ev.StopReason) -> None:
        inst = self._instances.get((actor_id, generation))
        if inst is None:
            log.debug("stop for an actor that is not hosted", extra={"actor_id": actor_id})
            return
        if inst.state is InstanceState.STOPPING:
            return
        inst.state = InstanceState.STOPPING
        if self._current.get(actor_id) == generation:
            del self._current[actor_id]
        self._drop_held(inst)
        self._events.append(ev.ActorStopRequested(actor_id, generation, reason))

    def ack_commands(self) -> bool:
        """Acknowledge every handled command (periodically, and after a replay). Returns
        whether an ack was queued (only while connected)."""
        if not self.connected:
            return False
        checkpoints = self._commands.checkpoints()
        self._outbox.append(v8.ToServerAckCommands(checkpoints))
        self._commands.acked(checkpoints)
        return True

    # -- actor lifecycle (local) ---------------------------------------------------------------
    def _inst(self, actor_id: str, generation: int) -> Instance:
        inst = self._instances.get((actor_id, generation))
        if inst is None:
            raise LocalProtocolError(f"actor {actor_id} generation {generation} is not hosted")
        return inst

    def start_completed(self, actor_id: str, generation: int) -> None:
        """The start callback finished: held tunnel traffic is released in arrival order;
        hibernating requests that were not restored are closed."""
        inst = self._inst(actor_id, generation)
        if inst.state is not InstanceState.STARTING:
            raise LocalProtocolError(f"start_completed while {inst.state.value}")
        inst.state = InstanceState.RUNNING
        for key in sorted(inst.awaiting_restore):
            self._send_close_for(
                actor_id, generation, key, 1000, "ws.meta_not_found_during_restore"
            )
        inst.awaiting_restore.clear()
        held, inst.held = inst.held, []
        for event in held:
            self._deliver(inst, event)

    def start_failed(self, actor_id: str, generation: int, message: str) -> None:
        """The start callback failed: the instance is stopped (code ERROR with ``message``)."""
        inst = self._inst(actor_id, generation)
        if inst.state is not InstanceState.STARTING:
            raise LocalProtocolError(f"start_failed while {inst.state.value}")
        inst.failure = message
        self._request_stop(actor_id, generation, ev.StopReason.START_FAILED)

    def stop_completed(self, actor_id: str, generation: int, error: str | None = None) -> None:
        """The instance's stop path finished: report ``ActorStateStopped`` and forget it.

        Non-hibernatable sockets are closed locally without telling the engine; hibernatable
        ones are left to the gateway; in-flight HTTP requests are aborted (no response). The
        code is ERROR with ``error`` (or the ``start_failed`` message) if either is set. The
        instance's unacked history is resent after the next handshake unless it was handed out
        by ``messages_to_send()`` while connected."""
        inst = self._inst(actor_id, generation)
        if error is None:
            error = inst.failure
        for key in sorted(inst.requests):
            request = self._requests.pop(key, None)
            if request is None:
                continue
            if request.kind is Kind.HTTP:
                self._events.append(ev.HttpRequestAborted(key))
            elif not request.hibernatable:
                self._events.append(ev.WebSocketClosed(key, 1000, "actor.stopped", False, False))
        graceful = inst.destroy_requested or self.lifecycle is not Lifecycle.ACTIVE
        code = v8.StopCode.OK if graceful and error is None else v8.StopCode.ERROR
        self._actor_event(inst, v8.EventActorStateUpdate(v8.ActorStateStopped(code, error)))
        del self._instances[(actor_id, generation)]
        if inst.history:
            self._retired[(actor_id, generation)] = inst.history
        if self._current.get(actor_id) == generation:
            del self._current[actor_id]
        self._commands.generation_gone(actor_id, generation)

    def sleep(self, actor_id: str, generation: int) -> None:
        """Ask the engine to put the actor to sleep (it answers with ``CommandStopActor``)."""
        self._intent(actor_id, generation, v8.ActorIntentSleep())

    def stop(self, actor_id: str, generation: int, *, destroy: bool = False) -> None:
        """Ask the engine to stop the actor; with ``destroy`` the stop reports OK, which makes
        the engine destroy it instead of applying its crash policy."""
        inst = self._inst(actor_id, generation)
        inst.destroy_requested = inst.destroy_requested or destroy
        self._intent(actor_id, generation, v8.ActorIntentStop())

    def _intent(self, actor_id: str, generation: int, intent: v8.ActorIntent) -> None:
        self._actor_event(self._inst(actor_id, generation), v8.EventActorIntent(intent))

    def set_alarm(self, actor_id: str, generation: int, alarm_ts: int | None) -> None:
        """Set (ms since epoch) or clear (None) the actor's alarm."""
        self._actor_event(self._inst(actor_id, generation), v8.EventActorSetAlarm(alarm_ts))

    def _actor_event(self, inst: Instance, event: v8.Event) -> None:
        cp = v8.ActorCheckpoint(inst.actor_id, inst.generation, inst.next_event_index)
        inst.next_event_index += 1
        wrapper = v8.EventWrapper(cp, event)
        inst.history.append(wrapper)
        if self.connected:
            self._outbox.append(v8.ToServerEvents([wrapper]))
        backlog = sum(len(i.history) for i in self._instances.values())
        if backlog > EVENT_BACKLOG_WARNING and not self._backlog_warned:
            self._backlog_warned = True
            log.warning("unacknowledged event backlog", extra={"events": backlog})

    def _on_ack_events(self, checkpoints: list[v8.ActorCheckpoint]) -> None:
        for cp in checkpoints:
            inst = self._instances.get((cp.actor_id, cp.generation))
            if inst is None:
                continue
            before = len(inst.history)
            inst.history = [w for w in inst.history if w.checkpoint.index > cp.index]
            log.debug(
                "pruned events",
                extra={"actor_id": cp.actor_id, "pruned": before - len(inst.history)},
            )
        backlog = sum(len(i.history) for i in self._instances.values())
        if backlog <= EVENT_BACKLOG_WARNING:
            self._backlog_warned = False

    # -- KV ------------------------------------------------------------------------------------
    def kv_request(self, actor_id: str, generation: int, data: v8.KvRequestData, now: float) -> int:
        """Queue a KV request for a hosted instance; returns its request id. It is sent now if
        connected, otherwise after the next handshake."""
        if self.lifecycle is Lifecycle.SHUTDOWN:
            raise LocalProtocolError("runner is shut down")
        self._inst(actor_id, generation)
        req = self._kv.create(actor_id, generation, data, now)
        if self.connected:
            self._send_kv(req, now)
        return req.request_id

    def _send_kv(self, req: PendingKv, now: float) -> None:
        self._kv.mark_sent(req, now)
        self._outbox.append(v8.ToServerKvRequest(req.actor_id, req.request_id, req.data))

    def _on_kv_response(self, msg: v8.ToClientKvResponse) -> None:
        req = self._kv.pop(msg.request_id)
        if req is None:
            log.debug("KV response for an unknown request", extra={"request_id": msg.request_id})
            return
        if isinstance(msg.data, v8.KvErrorResponse):
            self._events.append(
                ev.KvFailed(req.request_id, req.actor_id, msg.data.message or "Unknown KV error")
            )
        else:
            self._events.append(ev.KvResponded(req.request_id, req.actor_id, msg.data))

    def expire_kv(self, now: float) -> None:
        """Fail every KV request that waited longer than the timeout since it was last sent."""
        for req in self._kv.expired(now):
            self._events.append(
                ev.KvFailed(req.request_id, req.actor_id, "KV request timed out", timed_out=True)
            )

    def _fail_all_kv(self, message: str) -> None:
        for req in self._kv.drain():
            self._events.append(ev.KvFailed(req.request_id, req.actor_id, message))

    # -- tunnel (incoming) ---------------------------------------------------------------------
    def _on_tunnel(self, msg: v8.ToClientTunnelMessage) -> None:
        mid, kind = msg.message_id, msg.message_kind
        key = (mid.gateway_id, mid.request_id)
        if isinstance(kind, v8.ToClientRequestStart):
            self._on_http_start(key, kind)
        elif isinstance(kind, v8.ToClientWebSocketOpen):
            self._on_ws_open(key, kind, mid.message_index)
        else:
            self._on_request_traffic(key, kind, mid.message_index)

    def _running_or_starting(self, actor_id: str) -> Instance | None:
        generation = self._current.get(actor_id)
        return None if generation is None else self._instances.get((actor_id, generation))

    def _on_http_start(self, key: ev.TunnelKey, kind: v8.ToClientRequestStart) -> None:
        inst = self._running_or_starting(kind.actor_id)
        if inst is None:
            request = TunnelRequest(key, Kind.HTTP, kind.actor_id, -1)
            self._send_tunnel(
                request,
                v8.ToServerResponseStart(
                    503, {"x-rivet-error": "runner.actor_not_found"}, None, False
                ),
            )
            return
        request = TunnelRequest(key, Kind.HTTP, inst.actor_id, inst.generation)
        self._requests[key] = request
        inst.requests.add(key)
        self._deliver(
            inst,
            ev.HttpRequestReceived(
                key, inst.actor_id, kind.method, kind.path, kind.headers, kind.body, kind.stream
            ),
        )

    def _on_ws_open(self, key: ev.TunnelKey, kind: v8.ToClientWebSocketOpen, index: int) -> None:
        existing = self._requests.get(key)
        if existing is not None and existing.kind is Kind.WEBSOCKET:
            # A retried open from the gateway: confirm instead of replacing the socket.
            if existing.ws_state is WsState.OPEN:
                self._send_tunnel(existing, v8.ToServerWebSocketOpen(existing.hibernatable))
                if existing.hibernatable and index == 0 and existing.in_index != 0:
                    existing.in_index = 0
                    existing.out_index = 0
                elif existing.hibernatable and not le(index, existing.in_index):
                    existing.in_index = index
            return
        inst = self._running_or_starting(kind.actor_id)
        if inst is None:
            request = TunnelRequest(key, Kind.WEBSOCKET, kind.actor_id, -1)
            self._send_tunnel(request, v8.ToServerWebSocketClose(1011, "Actor not found", False))
            return
        request = TunnelRequest(key, Kind.WEBSOCKET, inst.actor_id, inst.generation)
        request.in_index = index
        self._requests[key] = request
        inst.requests.add(key)
        self._deliver(inst, ev.WebSocketOpenRequested(key, inst.actor_id, kind.path, kind.headers))

    def _on_request_traffic(
        self, key: ev.TunnelKey, kind: v8.ToClientTunnelMessageKind, index: int
    ) -> None:
        request = self._requests.get(key)
        owner = self._awaiting_owner(key) if request is None else None
        if request is None and owner is None:
            log.debug("tunnel message for an unknown request", extra={"kind": type(kind).__name__})
            return
        if owner is not None:
            # A hibernated socket's traffic before the actor restored it: hold it, in order.
            owner.held.append(self._ws_traffic_event(key, kind, index))
            return
        assert request is not None
        inst = self._instances.get((request.actor_id, request.generation))
        if inst is None:
            return
        if isinstance(kind, v8.ToClientRequestChunk):
            self._deliver(inst, ev.HttpRequestChunkReceived(key, kind.body, kind.finish))
        elif isinstance(kind, v8.ToClientRequestAbort):
            self._forget(request)
            self._deliver(inst, ev.HttpRequestAborted(key))
        else:
            self._deliver(inst, self._ws_traffic_event(key, kind, index))

    def _awaiting_owner(self, key: ev.TunnelKey) -> Instance | None:
        for inst in self._instances.values():
            if key in inst.awaiting_restore:
                return inst
        return None

    @staticmethod
    def _ws_traffic_event(
        key: ev.TunnelKey, kind: v8.ToClientTunnelMessageKind, index: int
    ) -> ev.Event:
        if isinstance(kind, v8.ToClientWebSocketMessage):
            return ev.WebSocketMessageReceived(key, kind.data, kind.binary, index)
        if isinstance(kind, v8.ToClientWebSocketClose):
            return ev.WebSocketClosed(key, kind.code, kind.reason, True, False)
        raise RemoteProtocolError(f"{type(kind).__name__} for a WebSocket")

    def _deliver(self, inst: Instance, event: ev.Event) -> None:
        """Hand a tunnel event to the driver, or hold it while the instance is starting.
        WebSocket messages pass the hibernation index check on delivery."""
        if inst.state is InstanceState.STARTING:
            inst.held.append(event)
            return
        if isinstance(event, ev.WebSocketMessageReceived):
            request = self._requests.get(event.key)
            if request is None or request.ws_state is not WsState.OPEN:
                log.warning("WebSocket message for a socket that is not open")
                return
            if request.hibernatable:
                if inst.state is InstanceState.STOPPING:
                    # Neither processed nor acked: the gateway replays it after the wake
                    # (hibernation.md §8.4).
                    return
                if le(event.index, request.in_index):
                    # A replayed message already processed. If it was acknowledged, the ack may
                    # have been lost with a connection (else the gateway would not replay it):
                    # acknowledge again (acks are cumulative and idempotent).
                    acked = request.acked_index
                    if acked is not None and le(event.index, acked):
                        self._send_tunnel(request, v8.ToServerWebSocketMessageAck(acked))
                    return
                if event.index != next_index(request.in_index):
                    self._send_close(request, 1008, "ws.message_index_skip")
                    self._events.append(
                        ev.WebSocketClosed(event.key, 1008, "ws.message_index_skip", False, True)
                    )
                    return
                request.in_index = event.index
        elif isinstance(event, ev.WebSocketClosed) and event.by_engine:
            request = self._requests.get(event.key)
            if request is None:
                return
            self._forget(request)
        self._events.append(event)

    def _drop_held(self, inst: Instance) -> None:
        """An instance stops before it started: answer what it was holding."""
        held, inst.held = inst.held, []
        for event in held:
            if isinstance(event, ev.HttpRequestReceived):
                request = self._requests.get(event.key)
                if request is not None:
                    self._send_tunnel(
                        request,
                        v8.ToServerResponseStart(
                            503, {"x-rivet-error": "runner.actor_not_found"}, None, False
                        ),
                    )
                    self._forget(request)
            elif isinstance(event, ev.WebSocketOpenRequested):
                request = self._requests.get(event.key)
                if request is not None:
                    self._send_close(request, 1011, "Actor not found")

    # -- tunnel (outgoing) ---------------------------------------------------------------------
    def _forget(self, request: TunnelRequest) -> None:
        self._requests.pop(request.key, None)
        inst = self._instances.get((request.actor_id, request.generation))
        if inst is not None:
            inst.requests.discard(request.key)

    def _send_tunnel(self, request: TunnelRequest, kind: v8.ToServerTunnelMessageKind) -> None:
        if self.connected:
            self._send_tunnel_now(request, kind)
        else:
            self._tunnel_buffer.append((request, kind))

    def _send_tunnel_now(self, request: TunnelRequest, kind: v8.ToServerTunnelMessageKind) -> None:
        mid = v8.MessageId(request.key[0], request.key[1], request.take_out_index())
        self._outbox.append(v8.ToServerTunnelMessage(mid, kind))

    def _send_close(self, request: TunnelRequest, code: int, reason: str) -> None:
        self._send_tunnel(request, v8.ToServerWebSocketClose(code, reason, False))
        request.ws_state = WsState.CLOSED
        self._forget(request)

    def _send_close_for(
        self, actor_id: str, generation: int, key: ev.TunnelKey, code: int, reason: str
    ) -> None:
        self._send_close(TunnelRequest(key, Kind.WEBSOCKET, actor_id, generation), code, reason)

    def _request(self, key: ev.TunnelKey, kind: Kind) -> TunnelRequest | None:
        request = self._requests.get(key)
        if request is None or request.kind is not kind:
            return None
        return request

    @staticmethod
    def _check_payload(body: bytes | None) -> None:
        if body is not None and len(body) > MAX_TUNNEL_PAYLOAD:
            raise LocalProtocolError(
                f"payload of {len(body)} bytes exceeds the engine's {MAX_TUNNEL_PAYLOAD}-byte limit"
            )

    def send_http_response(
        self, key: ev.TunnelKey, status: int, headers: dict[str, str], body: bytes | None
    ) -> bool:
        """Answer an HTTP request with one buffered response (what the gateway consumes).
        Returns False if the request is gone (aborted, actor stopped)."""
        self._check_payload(body)
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"invalid HTTP status {status}")
        request = self._request(key, Kind.HTTP)
        if request is None or request.response_started:
            return False
        out = dict(headers)
        if body and not any(k.lower() == "content-length" for k in out):
            out["content-length"] = str(len(body))
        self._send_tunnel(request, v8.ToServerResponseStart(status, out, body, False))
        self._forget(request)
        return True

    def start_http_response(self, key: ev.TunnelKey, status: int, headers: dict[str, str]) -> bool:
        """Begin a streamed response (``stream = true``); continue with chunks. Only for
        engines whose gateway consumes response chunks."""
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"invalid HTTP status {status}")
        request = self._request(key, Kind.HTTP)
        if request is None or request.response_started:
            return False
        request.response_started = True
        self._send_tunnel(request, v8.ToServerResponseStart(status, dict(headers), None, True))
        return True

    def send_http_chunk(self, key: ev.TunnelKey, body: bytes, finish: bool) -> bool:
        self._check_payload(body)
        request = self._request(key, Kind.HTTP)
        if request is None or not request.response_started:
            return False
        self._send_tunnel(request, v8.ToServerResponseChunk(body, finish))
        if finish:
            self._forget(request)
        return True

    def abort_http_response(self, key: ev.TunnelKey) -> bool:
        request = self._request(key, Kind.HTTP)
        if request is None:
            return False
        self._send_tunnel(request, v8.ToServerResponseAbort())
        self._forget(request)
        return True

    def accept_websocket(self, key: ev.TunnelKey, can_hibernate: bool) -> bool:
        request = self._request(key, Kind.WEBSOCKET)
        if request is None:
            return False
        if request.ws_state is not WsState.OPENING:
            raise LocalProtocolError("accept_websocket on a socket that is not opening")
        request.ws_state = WsState.OPEN
        request.hibernatable = can_hibernate
        self._send_tunnel(request, v8.ToServerWebSocketOpen(can_hibernate))
        return True

    def send_websocket_message(self, key: ev.TunnelKey, data: bytes, binary: bool) -> bool:
        self._check_payload(data)
        request = self._request(key, Kind.WEBSOCKET)
        if request is None or request.ws_state is not WsState.OPEN:
            return False
        self._send_tunnel(request, v8.ToServerWebSocketMessage(data, binary))
        return True

    def ack_websocket(self, key: ev.TunnelKey, index: int) -> bool:
        """Acknowledge gateway messages up to ``index`` (cumulative) on a hibernatable socket.
        Only ack what is durably persisted."""
        request = self._request(key, Kind.WEBSOCKET)
        if request is None or request.ws_state is not WsState.OPEN:
            return False
        if not request.hibernatable:
            raise LocalProtocolError("acks are only for hibernatable WebSockets")
        if not 0 <= index < 1 << 16:
            raise LocalProtocolError(f"message index {index} is not a u16")
        if request.acked_index is None or not le(index, request.acked_index):
            request.acked_index = index
        self._send_tunnel(request, v8.ToServerWebSocketMessageAck(index))
        return True

    def close_websocket(self, key: ev.TunnelKey, code: int | None, reason: str | None) -> bool:
        request = self._request(key, Kind.WEBSOCKET)
        if request is None:
            return False
        self._send_tunnel(request, v8.ToServerWebSocketClose(code, reason, False))
        request.ws_state = WsState.CLOSED
        self._forget(request)
        return True

    def restore_websocket(
        self,
        actor_id: str,
        generation: int,
        key: ev.TunnelKey,
        server_index: int,
        client_index: int,
    ) -> None:
        """Re-attach a hibernated socket listed in the start command, already open, with its
        persisted indexes. Only while the instance is starting."""
        inst = self._inst(actor_id, generation)
        if inst.state is not InstanceState.STARTING or key not in inst.awaiting_restore:
            raise LocalProtocolError("restore_websocket for a request the start did not list")
        if not (0 <= server_index < 1 << 16 and 0 <= client_index < 1 << 16):
            raise LocalProtocolError("message indexes are u16")
        inst.awaiting_restore.discard(key)
        request = TunnelRequest(key, Kind.WEBSOCKET, actor_id, generation)
        request.ws_state = WsState.OPEN
        request.hibernatable = True
        request.in_index = server_index
        request.out_index = client_index
        request.acked_index = server_index  # persisted, hence acknowledgeable
        self._requests[key] = request
        inst.requests.add(key)

    # -- drain and shutdown --------------------------------------------------------------------
    def begin_drain(self) -> None:
        """Graceful shutdown: tell the engine we are stopping; it stops our actors."""
        if self.lifecycle is not Lifecycle.ACTIVE:
            return
        self.lifecycle = Lifecycle.DRAINING
        if self.connected:
            self._outbox.append(v8.ToServerStopping())
        else:
            self._stopping_unsent = True

    def runner_lost(self) -> None:
        """Disconnected longer than ``runnerLostThreshold``: fail KV, stop every instance."""
        self._fail_all_kv("runner lost its connection to the engine")
        for actor_id, generation in list(self._instances):
            self._request_stop(actor_id, generation, ev.StopReason.RUNNER_LOST)

    def shutdown(self, reason: ev.StopReason = ev.StopReason.SHUTDOWN) -> None:
        """Immediate shutdown (also used on eviction): fail KV, stop every instance locally."""
        if self.lifecycle is Lifecycle.SHUTDOWN:
            return
        self.lifecycle = Lifecycle.SHUTDOWN
        self._fail_all_kv("runner shut down")
        for actor_id, generation in list(self._instances):
            self._request_stop(actor_id, generation, reason)
        self._tunnel_buffer.clear()
