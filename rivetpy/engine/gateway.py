"""The actor gateway's tunnel side: HTTP requests and WebSockets to actors through runners.

Every request gets a fresh 4-byte request id under this engine's 4-byte gateway id; the runner's
``ToServerTunnelMessage`` replies are routed back by that pair. A request waits for the actor to
be ready (waking it if it sleeps). A runner answering ``503`` with
``x-rivet-error: runner.actor_not_found`` (or closing a WebSocket before opening it) means the
actor is not hosted (yet): the request is retried until the ready timeout. If the runner
connection goes away, its requests fail with :class:`TunnelClosedError`.

WebSockets (hibernatable or not) are served by :mod:`rivetpy.engine.gateway_ws`
(:meth:`Gateway.serve_websocket`); this module owns the routing both share: request ids, the
reply channels, and acks, which are applied as they arrive whatever the socket's phase.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from codec import v8
from rivetpy.engine.core import ApiError, Engine, now_ms
from rivetpy.engine.hibernation_keepalive import RequestWriter, Timers

if TYPE_CHECKING:
    import trio_websocket

    from rivetpy.engine.gateway_ws import GatewaySocket

log = logging.getLogger("rivetpy.engine.gateway")

ACTOR_NOT_FOUND_HEADER = "x-rivet-error"
RETRY_DELAY = 0.05


class TunnelClosedError(Exception):
    """The runner connection carrying the request went away."""


@dataclass
class _Pending:
    """One in-flight request: the runner it is bound to and the channel of its replies (None
    marks the runner connection going away)."""

    runner_id: str
    send: trio.MemorySendChannel[v8.ToServerTunnelMessageKind | None]
    receive: trio.MemoryReceiveChannel[v8.ToServerTunnelMessageKind | None]
    next_index: int = 0
    #: WebSocket acks go here directly (from any runner: acks are cumulative and idempotent,
    #: and one sent by a runner that has since gone must not be lost)
    on_ack: Callable[[int], None] | None = None
    #: called after a reply (or the None marker) is queued on ``send`` (a WebSocket's
    #: lifecycle task drains the channel when woken)
    notify: Callable[[], None] | None = None


@dataclass
class TunnelResponse:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)


class Gateway:
    """Routes tunnel traffic between gateway clients and runner connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.gateway_id = os.urandom(4)
        self._pending: dict[bytes, _Pending] = {}
        #: the hibernating-request store writer (keepalive upserts, deletes)
        self.writer = RequestWriter(engine.store, now_ms)
        #: the keepalive and ack-check timers of every WebSocket (one task, in the engine's
        #: nursery)
        self.timers = Timers(engine.start_background)
        #: open client WebSockets by request id (observability, tests, benchmarks)
        self.sockets: dict[bytes, GatewaySocket] = {}
        #: test knob: the message index of a WebSocket's open message (0 per the protocol; a
        #: value near 65535 exercises the wrap without sending 65536 messages)
        self.first_message_index = 0
        engine.on_runner_gone.append(self.runner_gone)
        engine.on_changed.append(self._actors_changed)
        engine.on_tunnel_message = self.deliver

    def _actors_changed(self) -> None:
        """Let each open socket check its actor (cheap, synchronous: only sockets whose actor
        became ready, went away or was detached are woken)."""
        for socket in list(self.sockets.values()):
            socket.on_actor_changed()

    # -- from runner connections ----------------------------------------------------------------
    def deliver(self, runner_id: str, message: v8.ToServerTunnelMessage) -> None:
        mid = message.message_id
        pending = self._pending.get(mid.request_id)
        if mid.gateway_id != self.gateway_id or pending is None:
            log.debug("tunnel message for an unknown request")
            return
        kind = message.message_kind
        if isinstance(kind, v8.ToServerWebSocketMessageAck) and pending.on_ack is not None:
            pending.on_ack(kind.index)
            return
        if pending.runner_id != runner_id:
            return
        pending.send.send_nowait(kind)
        if pending.notify is not None:
            pending.notify()

    def runner_gone(self, runner_id: str) -> None:
        for pending in self._pending.values():
            if pending.runner_id == runner_id:
                pending.send.send_nowait(None)
                if pending.notify is not None:
                    pending.notify()

    # -- helpers ----------------------------------------------------------------------------------
    def _open(self, runner_id: str) -> tuple[bytes, _Pending]:
        while True:
            request_id = os.urandom(4)
            if request_id not in self._pending:
                break
        send, receive = trio.open_memory_channel[v8.ToServerTunnelMessageKind | None](math.inf)
        pending = _Pending(runner_id, send, receive)
        self._pending[request_id] = pending
        return request_id, pending

    def _close(self, request_id: bytes) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            pending.send.close()

    def _send(
        self,
        request_id: bytes,
        pending: _Pending,
        kind: v8.ToClientTunnelMessageKind,
        index: int | None = None,
    ) -> None:
        """Publish to the request's runner with ``index`` (default: the request's own counter).
        Raises :class:`TunnelClosedError` if that runner is not connected."""
        from rivetpy.engine.runner_endpoint import RunnerSession  # noqa: PLC0415

        session = self.engine.session(pending.runner_id)
        if not isinstance(session, RunnerSession):
            raise TunnelClosedError("runner is not connected")
        if index is None:
            index = pending.next_index
            pending.next_index = (pending.next_index + 1) & 0xFFFF
        mid = v8.MessageId(self.gateway_id, request_id, index)
        session.send_tunnel(v8.ToClientTunnelMessage(mid, kind))

    @staticmethod
    async def _next(pending: _Pending) -> v8.ToServerTunnelMessageKind:
        kind = await pending.receive.receive()
        if kind is None:
            raise TunnelClosedError("runner connection closed")
        return kind

    # -- HTTP ---------------------------------------------------------------------------------
    async def http(
        self, actor_id: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> TunnelResponse:
        """Send one request to the actor; retried while the actor is not hosted yet.

        Raises :class:`ApiError` (not found, not ready in time, runner gone).
        """
        began = trio.current_time()
        deadline = began + self.engine.settings.ready_timeout
        while True:
            remaining = deadline - trio.current_time()
            runner_id, _ = await self.engine.wait_ready(
                actor_id, max(remaining, 0.001), since=began
            )
            try:
                response = await self._http_once(runner_id, actor_id, method, path, headers, body)
            except TunnelClosedError:
                response = None
            if response is not None and not (
                response.status == 503
                and response.headers.get(ACTOR_NOT_FOUND_HEADER) == "runner.actor_not_found"
            ):
                return response
            if trio.current_time() >= deadline:
                raise ApiError(503, "guard", "service_unavailable", "actor did not answer")
            await trio.sleep(RETRY_DELAY)

    async def _http_once(
        self,
        runner_id: str,
        actor_id: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> TunnelResponse:
        request_id, pending = self._open(runner_id)
        try:
            self._send(
                request_id,
                pending,
                v8.ToClientRequestStart(actor_id, method, path, headers, body or None, False),
            )
            start = await self._next(pending)
            if isinstance(start, v8.ToServerResponseAbort):
                raise TunnelClosedError("request aborted by the runner")
            if not isinstance(start, v8.ToServerResponseStart):
                raise TunnelClosedError(f"unexpected {type(start).__name__}")
            response = TunnelResponse(start.status, dict(start.headers), start.body or b"")
            if start.stream:
                parts = [response.body]
                while True:
                    chunk = await self._next(pending)
                    if isinstance(chunk, v8.ToServerResponseChunk):
                        parts.append(chunk.body)
                        if chunk.finish:
                            break
                    else:
                        raise TunnelClosedError("response aborted by the runner")
                response.body = b"".join(parts)
                response.headers.pop("content-length", None)
            return response
        finally:
            self._close(request_id)

    # -- WebSocket ----------------------------------------------------------------------------
    async def serve_websocket(
        self,
        ws_request: trio_websocket.WebSocketRequest,
        actor_id: str,
        path: str,
        headers: dict[str, str],
    ) -> None:
        """Open a WebSocket to the actor, accept the client and relay until either side ends it
        (through any number of sleeps and wakes if the actor lets it hibernate)."""
        from rivetpy.engine.gateway_ws import serve_websocket  # noqa: PLC0415

        await serve_websocket(self, ws_request, actor_id, path, headers)
