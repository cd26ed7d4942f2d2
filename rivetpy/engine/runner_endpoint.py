"""``/runners/connect``: the Trio driver around :class:`rivetpy.protocol.engine.EngineConnection`.

One :class:`RunnerSession` per accepted WebSocket. After the handshake it runs three tasks
(runner-lifecycle.md §4.2 step 9): the *reader* (events, acks, KV, tunnel replies), the
*sender* (commands and tunnel messages queued by the engine core and the gateway; start commands
are hydrated here, at the hop that writes to the socket, once per send) and the *pinger*. When
one ends the others are cancelled, the runner is unregistered and the socket is closed with the
session's close reason (``ws.closed``, ``ws.eviction``, ``core.internal_error``...).

Writes are serialized by a FIFO lock; the core's outbox keeps frames in the order they were
produced.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Mapping, Sequence

import trio
import trio_websocket

from codec import v8
from rivetpy.engine.core import Engine, now_ms
from rivetpy.engine.hibernation_store import list_eligible
from rivetpy.engine.preload import fetch_preloaded_kv
from rivetpy.engine.store.api import ReadTransaction
from rivetpy.protocol import engine as proto
from rivetpy.protocol.engine import (
    CommandKey,
    ConnectParams,
    EngineConnection,
    HandshakeError,
    Hydration,
    QueuedCommand,
)

log = logging.getLogger("rivetpy.engine.runner_endpoint")

TOKEN_PREFIX = "rivet_token."
_Item = tuple[str, object]


def ray_id() -> str:
    return uuid.uuid4().hex[:16]


async def close_ws(ws: trio_websocket.WebSocketConnection, reason: proto.CloseReason) -> None:
    with trio.move_on_after(2) as scope:
        scope.shield = True
        await ws.aclose(reason.code, reason.reason(ray_id()))


def check_token(protocols: Sequence[str], token: str | None) -> None:
    """Raise :class:`HandshakeError` unless the subprotocols carry the admin token."""
    if token is None:
        return
    offered = [p[len(TOKEN_PREFIX) :] for p in protocols if p.startswith(TOKEN_PREFIX)]
    if not offered:
        raise HandshakeError(proto.MISSING_HEADER, "missing rivet_token subprotocol")
    if offered[0] != token:
        raise HandshakeError(proto.FORBIDDEN, "invalid token")


async def serve_runner(
    engine: Engine,
    request: trio_websocket.WebSocketRequest,
    query: Mapping[str, Sequence[str]],
) -> None:
    """Accept a runner WebSocket and serve it until it closes."""
    protocols = list(request.proposed_subprotocols)
    ws = await request.accept(subprotocol="rivet" if "rivet" in protocols else None)
    try:
        check_token(protocols, engine.settings.admin_token)
        params = proto.parse_connect_query(query)
        namespace_id = engine.namespace_id(params.namespace)
        if namespace_id is None:
            raise HandshakeError(proto.NAMESPACE_NOT_FOUND, f"unknown namespace {params.namespace}")
        core = EngineConnection(params.protocol_version, now_ms())
        frame: bytes | str | None = None
        with trio.move_on_after(engine.settings.init_timeout_ms / 1000):
            frame = await ws.get_message()
        if frame is None:
            raise HandshakeError(proto.TIMED_OUT_WAITING_FOR_INIT, "no init frame")
        events = core.receive_frame(frame)
    except HandshakeError as exc:
        log.info("runner handshake failed", extra={"error": str(exc)})
        await close_ws(ws, exc.close)
        return
    except trio_websocket.ConnectionClosed:
        return
    init = events[0]
    assert isinstance(init, proto.InitReceived)
    session = RunnerSession(engine, ws, core, params, namespace_id)
    await session.run(init.init)


class RunnerSession:
    """One established runner connection (implements :class:`rivetpy.engine.core.Session`)."""

    def __init__(
        self,
        engine: Engine,
        ws: trio_websocket.WebSocketConnection,
        core: EngineConnection,
        params: ConnectParams,
        namespace_id: str,
    ) -> None:
        self.engine = engine
        self.ws = ws
        self.core = core
        self.params = params
        self.namespace_id = namespace_id
        self.runner_id = ""
        self.close_reason = proto.CLOSED
        self._scope = trio.CancelScope()
        self._write_lock = trio.StrictFIFOLock()
        self._queue_in, self._queue = trio.open_memory_channel[_Item](math.inf)
        #: preload fetches done by this session (observability and tests)
        self.preload_fetches = 0

    # -- Session protocol ---------------------------------------------------------------------
    def deliver(self, commands: list[QueuedCommand]) -> None:
        self._queue_in.send_nowait(("commands", commands))

    def send_tunnel(self, message: v8.ToClientTunnelMessage) -> None:
        self._queue_in.send_nowait(("tunnel", message))

    def evict(self) -> None:
        self.close_reason = proto.EVICTION
        self._scope.cancel()

    def going_away(self) -> None:
        """The engine is shutting down: close with 1011 ``ws.going_away`` (runners reconnect)."""
        self.close_reason = proto.GOING_AWAY
        self._scope.cancel()

    # -- driver -----------------------------------------------------------------------------------
    async def _flush(self) -> None:
        async with self._write_lock:
            for frame in self.core.data_to_send():
                await self.ws.send_message(frame)

    async def hydrate(self, commands: Sequence[QueuedCommand]) -> dict[CommandKey, Hydration]:
        """Fresh send-time data for every start command: preloaded KV (v8 connections only)
        and the eligible hibernating requests (hibernation.md §7), both read once for this send
        (live delivery and replay alike) and never stored in the queue."""
        hibernating = await self._list_hibernating(commands)
        out: dict[CommandKey, Hydration] = {}
        for queued in commands:
            command = queued.command
            if not isinstance(command, v8.CommandStartActor):
                continue
            preloaded = None
            if self.core.wants_preload:
                self.preload_fetches += 1
                preloaded = await fetch_preloaded_kv(
                    self.engine.store,
                    self.engine.settings.pegboard,
                    queued.checkpoint.actor_id,
                    self.namespace_id,
                    command.config.name,
                )
            out[queued.key] = Hydration(hibernating[queued.key], preloaded)
        return out

    async def _list_hibernating(
        self, commands: Sequence[QueuedCommand]
    ) -> dict[CommandKey, list[v8.HibernatingRequest]]:
        """One read-only snapshot and one ``now`` for every start command of this send."""
        starts = [q for q in commands if q.is_start]
        if not starts:
            return {}
        now = now_ms()
        threshold = self.engine.settings.hibernating_request_eligible_threshold_ms

        async def body(tr: ReadTransaction) -> dict[CommandKey, list[v8.HibernatingRequest]]:
            found: dict[CommandKey, list[v8.HibernatingRequest]] = {}
            for queued in starts:
                listed = await list_eligible(tr, queued.checkpoint.actor_id, now, threshold)
                found[queued.key] = [
                    v8.HibernatingRequest(gateway_id=gw, request_id=req) for gw, req in listed
                ]
            return found

        return await self.engine.store.read(body)

    async def _send_commands(self, commands: Sequence[QueuedCommand]) -> None:
        hydration = await self.hydrate(commands)
        self.core.send_commands(commands, hydration)
        await self._flush()

    async def run(self, init: v8.ToServerInit) -> None:
        try:
            with self._scope:
                rid, missed, seeds = await self.engine.connect_runner(
                    self, self.params, self.namespace_id, init
                )
                self.runner_id = rid
                try:
                    self.core.send_init(rid, self.engine.protocol_metadata())
                    for actor_id, generation, last in seeds:
                        self.core.seed_event_index(actor_id, generation, last)
                    await self._flush()
                    await self._send_commands(missed)
                    await self.engine.runner_ready(rid)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._reader, nursery.cancel_scope)
                        nursery.start_soon(self._sender)
                        nursery.start_soon(self._pinger)
                finally:
                    with trio.CancelScope(shield=True):
                        await self.engine.disconnect_runner(self)
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self.core.close()
            if not self.ws.closed:
                await close_ws(self.ws, self.close_reason)
        log.info(
            "runner disconnected",
            extra={"runner_id": self.runner_id, "reason": self.close_reason.name},
        )

    async def _reader(self, scope: trio.CancelScope) -> None:
        try:
            while True:
                frame = await self.ws.get_message()
                for event in self.core.receive_frame(frame, now_ms()):
                    await self._handle(event)
                await self._flush()
        except trio_websocket.ConnectionClosed:
            pass
        scope.cancel()

    async def _handle(self, event: proto.Event) -> None:
        rid = self.runner_id
        if isinstance(event, proto.ActorEventsReceived):
            await self.engine.handle_events(rid, event.events)
        elif isinstance(event, proto.KvRequestReceived):
            response = await self.engine.handle_kv(rid, event.actor_id, event.data)
            self.core.send_kv_response(event.request_id, response)
        elif isinstance(event, proto.TunnelMessageReceived):
            if self.engine.on_tunnel_message is not None:
                self.engine.on_tunnel_message(rid, event.message)
        elif isinstance(event, proto.CommandsAcked):
            await self.engine.ack_commands(rid, event.checkpoints)
        elif isinstance(event, proto.StoppingReceived):
            await self.engine.runner_stopping(rid)

    async def _sender(self) -> None:
        async for kind, payload in self._queue:
            if kind == "commands":
                assert isinstance(payload, list)
                await self._send_commands(payload)
            else:
                assert isinstance(payload, v8.ToClientTunnelMessage)
                self.core.send_tunnel(payload)
                await self._flush()

    async def _pinger(self) -> None:
        settings = self.engine.settings
        while True:
            await trio.sleep((settings.ping_interval_ms + random.randrange(128)) / 1000)
            now = now_ms()
            if self.core.ping_timed_out(now, settings.ping_timeout_ms):
                log.warning("runner ws ping timed out", extra={"runner_id": self.runner_id})
                self.close_reason = proto.INTERNAL_ERROR
                self._scope.cancel()
                return
            await self.engine.touch_runner(self.runner_id)
            self.core.send_ping(now)
            await self._flush()
