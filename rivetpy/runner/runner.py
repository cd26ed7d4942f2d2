"""The Trio driver around :class:`rivetpy.protocol.RunnerCore`.

Task tree (every task lives in a nursery; nothing is fire-and-forget)::

    Runner.run                       runner nursery
      connection loop                reconnects with backoff, keeps the runner key
        per connection:              connection nursery
          reader                     the only task that reads the socket
          writer                     the only task that writes it (serialized, in core order)
          command-ack loop
      KV sweeper                     fails KV calls past their timeout
      runner-lost timer              while disconnected
      one task per actor instance    actor nursery (cancelled when the actor stops)
        HTTP handlers, WebSocket handlers, app tasks

Everything the protocol decides is decided by the core; this module only moves bytes, keeps
time and runs the application's callbacks.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio_websocket

import codec
from codec import v8
from rivetpy.protocol import events as ev
from rivetpy.protocol.errors import LocalProtocolError, RemoteProtocolError
from rivetpy.protocol.runner import InstanceState, Lifecycle, RunnerConfig, RunnerCore
from rivetpy.runner.api import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    KvError,
    KvTimeoutError,
    RunnerApp,
    WebSocket,
    WebSocketClosedError,
    WebSocketMessage,
    WebSocketOpen,
)
from rivetpy.runner.transport import (
    CloseInfo,
    connect_url,
    parse_close_reason,
    reconnect_delay,
    subprotocols,
)

log = logging.getLogger("rivetpy.runner")

SHUTDOWN_REASON = "pegboard.runner_shutdown"


@dataclass(frozen=True)
class RunnerOptions:
    """How to reach the engine and what to announce.

    ``actor_names`` maps actor type names to their metadata objects (rivetkit-style display
    info and per-actor preload budgets); it is sent in ``prepopulateActorNames`` on every
    connect. ``protocol_version`` 8 receives preloaded KV with start commands; 7 does not.
    """

    endpoint: str
    runner_name: str
    namespace: str = "default"
    token: str | None = None
    total_slots: int = 100
    runner_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: int = 1
    protocol_version: int = 8
    actor_names: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    kv_timeout: float = 30.0
    #: the engine pings every ~3 s; with no frame for this long the connection is presumed
    #: dead (half-open TCP) and re-established
    ping_timeout: float = 20.0
    command_ack_interval: float = 60.0
    connect_timeout: float = 10.0
    drain_timeout: float = 120.0
    #: send streamed HTTP responses as chunks; the engine's gateway only consumes a single
    #: buffered response, so the default buffers them
    stream_http_responses: bool = False
    max_message_size: int = codec.DEFAULT_MAX_MESSAGE_SIZE

    @property
    def url(self) -> str:
        return connect_url(self.endpoint, self.protocol_version, self.namespace, self.runner_key)


Connector = Callable[
    [trio.Nursery, str, list[str], int], Awaitable[trio_websocket.WebSocketConnection]
]
"""``(nursery, url, subprotocols, max_message_size) -> open client WebSocket``."""


async def connect_tcp(
    nursery: trio.Nursery, url: str, protocols: list[str], max_message_size: int
) -> trio_websocket.WebSocketConnection:
    """The default connector: a real WebSocket (trio-websocket) to ``url``."""
    return await trio_websocket.connect_websocket_url(
        nursery,
        url,
        subprotocols=protocols,
        max_message_size=max_message_size,
        message_queue_size=64,
    )


class RunnerClosedError(Exception):
    """The runner shut down (or was evicted) and cannot be used any more."""


@dataclass
class _KvWaiter:
    event: trio.Event = field(default_factory=trio.Event)
    response: v8.KvResponseData | None = None
    error: str | None = None
    timed_out: bool = False


class Runner:
    """A runner process's connection to the engine; create it with :func:`open_runner`."""

    def __init__(
        self, options: RunnerOptions, app: RunnerApp, *, connect: Connector = connect_tcp
    ) -> None:
        self.options = options
        self.app = app
        self._connect = connect
        self.core = RunnerCore(
            RunnerConfig(
                name=options.runner_name,
                total_slots=options.total_slots,
                version=options.version,
                actor_names=options.actor_names,
                metadata=options.metadata,
                protocol_version=options.protocol_version,
                kv_timeout=options.kv_timeout,
            )
        )
        self._nursery: trio.Nursery | None = None
        self._wake_writer = trio.Event()
        self._write_lock = trio.StrictFIFOLock()
        #: set while a task that will flush the outbox itself calls into the core
        self._inline_flush = False
        self._kv_added = trio.Event()
        self._kv_waiters: dict[int, _KvWaiter] = {}
        self._actors: dict[tuple[str, int], ActorHandle] = {}
        self._actor_tasks_done = trio.Event()
        self._http: dict[ev.TunnelKey, tuple[HttpRequest, trio.CancelScope]] = {}
        self._sockets: dict[ev.TunnelKey, WebSocket] = {}
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._connected = trio.Event()
        self._lost_scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._shutdown_started = False
        self._drain_scope: trio.CancelScope | None = None
        #: last connection failure, for diagnostics ("why is it not connecting?")
        self.last_error: str | None = None
        self.last_close: CloseInfo | None = None
        self.connections = 0

    # -- public -----------------------------------------------------------------------------
    @property
    def runner_id(self) -> str | None:
        return self.core.runner_id

    @property
    def is_connected(self) -> bool:
        return self.core.connected

    async def wait_connected(self) -> None:
        """Until the runner is connected (handshake done)."""
        while not self.core.connected:
            await self._connected.wait()

    def actor(self, actor_id: str) -> ActorHandle | None:
        """The hosted instance of an actor, if any (newest generation)."""
        found = [h for (a, _), h in self._actors.items() if a == actor_id]
        return max(found, key=lambda h: h.generation) if found else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`shutdown` (or eviction). Reports started at once; use
        :meth:`wait_connected` to wait for the engine."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._connection_loop)
            nursery.start_soon(self._kv_sweeper)
            task_status.started()
            await self._stopped.wait()
            nursery.cancel_scope.cancel()

    async def shutdown(self, *, graceful: bool = True) -> None:
        """Stop the runner. Graceful: send ``ToServerStopping`` and let the engine stop the
        actors (up to ``drain_timeout``); then close with 1000 ``pegboard.runner_shutdown``,
        stop what is left locally and return when every actor task has finished."""
        if self._shutdown_started:
            await self._stopped.wait()
            return
        self._shutdown_started = True
        if graceful and self.core.lifecycle is Lifecycle.ACTIVE and self.core.connected:
            self._call(self.core.begin_drain)
            log.info("draining", extra={"actors": len(self.core.hosted())})
            with trio.move_on_after(self.options.drain_timeout) as drain_scope:
                self._drain_scope = drain_scope
                while self.core.hosted() and self.core.connected:
                    await trio.sleep(0.05)
            self._drain_scope = None
        ws = self._ws
        if ws is not None:
            with trio.move_on_after(5):
                await ws.aclose(1000, SHUTDOWN_REASON)
        self._call(self.core.shutdown)
        await self._wait_actors_gone(timeout=30)
        self._stopped.set()

    def abort_drain(self) -> None:
        """Cut a graceful shutdown's wait for the engine to stop the actors short."""
        if self._drain_scope is not None:
            self._drain_scope.cancel()

    # -- core plumbing ----------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call into the core, then dispatch its events and wake the writer."""
        result = fn(*args)
        self._pump()
        return result

    def _pump(self) -> None:
        for event in self.core.next_events():
            self._dispatch(event)
        if not self._inline_flush:
            self._wake_writer.set()

    def _call_then_flush_here(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Like :meth:`_call` for a caller that awaits :meth:`_flush` right after (saves waking
        the writer task: one scheduler pass less per message)."""
        self._inline_flush = True
        try:
            return self._call(fn, *args)
        finally:
            self._inline_flush = False

    async def _flush(self) -> None:
        """Write what the core queued, from the calling task, serialized with the writer."""
        ws = self._ws
        if ws is None:
            return
        try:
            async with self._write_lock:
                await self._write_pending(ws)
        except trio_websocket.ConnectionClosed:
            pass  # the reader sees the close; events and KV are resent after reconnect

    async def _write_pending(self, ws: trio_websocket.WebSocketConnection) -> None:
        version = self.options.protocol_version
        for msg in self.core.messages_to_send():
            await ws.send_message(codec.TO_SERVER.encode(msg, version))

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.Connected):
            self._connected.set()
            log.info(
                "connected",
                extra={"runner_id": event.runner_id, "changed": event.runner_id_changed},
            )
        elif isinstance(event, ev.ActorStartRequested):
            handle = ActorHandle(
                self,
                event.actor_id,
                event.generation,
                event.config,
                event.preloaded_kv,
                event.hibernating_requests,
            )
            self._actors[(event.actor_id, event.generation)] = handle
            self._actor_tasks_done = trio.Event()
            assert self._nursery is not None
            self._nursery.start_soon(self._run_actor, handle)
        elif isinstance(event, ev.ActorStopRequested):
            stopping = self._actors.get((event.actor_id, event.generation))
            if stopping is not None:
                stopping.stop_reason = event.reason
                stopping._stop_requested.set()
        elif isinstance(event, ev.KvResponded | ev.KvFailed):
            waiter = self._kv_waiters.pop(event.request_id, None)
            if waiter is not None:
                if isinstance(event, ev.KvResponded):
                    waiter.response = event.response
                else:
                    waiter.error, waiter.timed_out = event.message, event.timed_out
                waiter.event.set()
        else:
            self._dispatch_tunnel(event)

    def _dispatch_tunnel(self, event: ev.Event) -> None:
        if isinstance(event, ev.HttpRequestReceived):
            handle = self.actor(event.actor_id)
            if handle is None or handle._nursery is None:
                self._call_quiet(self.core.send_http_response, event.key, 503, {}, None)
                return
            request = HttpRequest(
                event.key, event.method, event.path, event.headers, event.body, event.stream
            )
            scope = trio.CancelScope()
            self._http[event.key] = (request, scope)
            handle.nursery.start_soon(self._serve_http, handle, request, scope)
        elif isinstance(event, ev.HttpRequestChunkReceived):
            entry = self._http.get(event.key)
            if entry is not None:
                entry[0]._feed(event.body, event.finish)
        elif isinstance(event, ev.HttpRequestAborted):
            aborted = self._http.pop(event.key, None)
            if aborted is not None:
                aborted[0]._abort()
                aborted[1].cancel()
        elif isinstance(event, ev.WebSocketOpenRequested):
            handle = self.actor(event.actor_id)
            if handle is None or handle._nursery is None:
                self._call_quiet(self.core.close_websocket, event.key, 1011, "Actor not found")
                return
            ws = WebSocket(self, event.key, event.path, event.headers)
            self._sockets[event.key] = ws
            handle.nursery.start_soon(self._serve_websocket, handle, ws, True)
        elif isinstance(event, ev.WebSocketMessageReceived):
            sock = self._sockets.get(event.key)
            if sock is not None:
                sock._deliver(WebSocketMessage(event.data, event.binary, event.index))
        elif isinstance(event, ev.WebSocketClosed):
            closed = self._sockets.pop(event.key, None)
            if closed is not None:
                closed._closed_by_peer(event.code, event.reason)

    def _call_quiet(self, fn: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`_call` from inside dispatch (no nested pump; the outer pump flushes)."""
        fn(*args)

    # -- connection ---------------------------------------------------------------------------
    async def _connection_loop(self) -> None:
        attempt = 0
        while self.core.lifecycle is not Lifecycle.SHUTDOWN:
            close: CloseInfo | None = None
            try:
                close = await self._connect_once()
                attempt = 0
            except (trio_websocket.HandshakeError, OSError, trio.TooSlowError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "cannot connect to the engine",
                    extra={"url": self.options.url, "error": self.last_error, "attempt": attempt},
                )
            self._ws = None
            if self._connected.is_set():
                self._connected = trio.Event()
            self._call(self.core.connection_lost)
            if close is not None and close.is_eviction:
                log.warning("evicted by the engine; shutting down", extra={"reason": str(close)})
                self._call(self.core.shutdown, ev.StopReason.EVICTED)
                assert self._nursery is not None
                self._nursery.start_soon(self.shutdown)
                return
            if self.core.lifecycle is not Lifecycle.ACTIVE or self._shutdown_started:
                return
            self._start_lost_timer()
            delay = reconnect_delay(attempt)
            attempt += 1
            log.info("reconnecting", extra={"delay_s": delay, "attempt": attempt})
            await trio.sleep(delay)

    async def _connect_once(self) -> CloseInfo | None:
        opts = self.options
        with trio.fail_after(opts.connect_timeout):
            ws = await self._connect(
                self._nursery_for_ws(), opts.url, subprotocols(opts.token), opts.max_message_size
            )
        self._ws = ws
        self.connections += 1
        self._stop_lost_timer()
        self._call(self.core.connection_made)
        try:
            async with trio.open_nursery() as conn:
                conn.start_soon(self._writer, ws)
                conn.start_soon(self._ack_loop)
                await self._reader(ws)
                conn.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await ws.aclose()
                # After an abnormal closure (TCP gone before the close handshake)
                # trio-websocket's aclose() returns early and leaves its stream open; close it.
                stream = getattr(ws, "_stream", None)
                if stream is not None:
                    await stream.aclose()
        reason = ws.closed
        self.last_close = parse_close_reason(reason.reason if reason else None)
        if reason is not None:
            log.info("connection closed", extra={"code": reason.code, "reason": reason.reason})
        return self.last_close

    def _nursery_for_ws(self) -> trio.Nursery:
        assert self._nursery is not None
        return self._nursery

    async def _reader(self, ws: trio_websocket.WebSocketConnection) -> None:
        timeout = self.options.ping_timeout
        error = ""
        # One scope for the connection whose deadline moves forward with every frame (cheaper
        # than a fail_after per frame): with no frame for ``ping_timeout`` it fires.
        with trio.CancelScope(deadline=trio.current_time() + timeout) as watchdog:
            try:
                while True:
                    data = await ws.get_message()
                    watchdog.deadline = trio.current_time() + timeout
                    if isinstance(data, str):
                        error = "text frame from the engine"
                        break
                    try:
                        self._call_then_flush_here(self.core.receive_frame, data)
                    except RemoteProtocolError as exc:
                        error = str(exc)
                        break
                    await self._flush()
            except trio_websocket.ConnectionClosed:
                return
        if watchdog.cancelled_caught:
            log.warning("no frame from the engine: reconnecting", extra={"timeout_s": timeout})
            self.last_error = "ping timeout"
            reason = "runner.ping_timeout"
        else:
            log.error("invalid frame from the engine", extra={"error": error})
            self.last_error = f"invalid frame: {error}"
            reason = "runner.invalid_frame"
        with trio.move_on_after(2):
            await ws.aclose(1011, reason)

    async def _writer(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer = trio.Event()
            try:
                async with self._write_lock:
                    await self._write_pending(ws)
            except trio_websocket.ConnectionClosed:
                return

    async def _ack_loop(self) -> None:
        while True:
            await trio.sleep(self.options.command_ack_interval)
            self._call(self.core.ack_commands)

    def _start_lost_timer(self) -> None:
        meta = self.core.metadata
        if self._lost_scope is not None or meta is None or meta.runner_lost_threshold <= 0:
            return
        scope = trio.CancelScope()
        self._lost_scope = scope
        assert self._nursery is not None
        self._nursery.start_soon(self._lost_timer, scope, meta.runner_lost_threshold / 1000)

    def _stop_lost_timer(self) -> None:
        if self._lost_scope is not None:
            self._lost_scope.cancel()
            self._lost_scope = None

    async def _lost_timer(self, scope: trio.CancelScope, seconds: float) -> None:
        with scope:
            await trio.sleep(seconds)
            log.warning("runner lost: stopping all actors", extra={"after_s": seconds})
            self._lost_scope = None
            self._call(self.core.runner_lost)

    # -- KV -------------------------------------------------------------------------------------
    async def _kv(self, handle: ActorHandle, data: v8.KvRequestData) -> v8.KvResponseData:
        try:
            rid = self._call(
                self.core.kv_request, handle.actor_id, handle.generation, data, trio.current_time()
            )
        except LocalProtocolError as exc:
            raise KvError(str(exc)) from None
        waiter = _KvWaiter()
        self._kv_waiters[rid] = waiter
        self._kv_added.set()
        try:
            await waiter.event.wait()
        finally:
            self._kv_waiters.pop(rid, None)
        if waiter.error is not None:
            raise (KvTimeoutError if waiter.timed_out else KvError)(waiter.error)
        assert waiter.response is not None
        return waiter.response

    async def _kv_sweeper(self) -> None:
        while True:
            deadline = self.core.kv_next_deadline()
            if deadline is None:
                await self._kv_added.wait()
                self._kv_added = trio.Event()
                continue
            await trio.sleep_until(deadline)
            self._call(self.core.expire_kv, trio.current_time())

    # -- actors ---------------------------------------------------------------------------------
    async def _run_actor(self, handle: ActorHandle) -> None:
        key = (handle.actor_id, handle.generation)
        error: str | None = None
        try:
            async with trio.open_nursery() as nursery:
                handle._nursery = nursery
                try:
                    await self.app.on_actor_start(handle)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    log.exception("actor start failed", extra={"actor_id": handle.actor_id})
                    if self._state(handle) is InstanceState.STARTING:
                        self._call(self.core.start_failed, *key, error)
                else:
                    if self._state(handle) is InstanceState.STARTING:
                        self._call(self.core.start_completed, *key)
                handle._started.set()
                await handle._stop_requested.wait()
                reason = handle.stop_reason or ev.StopReason.COMMAND
                try:
                    await self.app.on_actor_stop(handle, reason)
                except Exception:
                    log.exception("actor stop callback failed", extra={"actor_id": handle.actor_id})
                nursery.cancel_scope.cancel()
        finally:
            self._actors.pop(key, None)
            if self.core.instance(*key) is not None:
                self._call(self.core.stop_completed, *key, error)
            if not self._actors:
                self._actor_tasks_done.set()

    def _state(self, handle: ActorHandle) -> InstanceState | None:
        inst = self.core.instance(handle.actor_id, handle.generation)
        return None if inst is None else inst.state

    async def _wait_actors_gone(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            while self._actors:
                await self._actor_tasks_done.wait()
        if self._actors:
            log.warning("actors still stopping at shutdown", extra={"count": len(self._actors)})

    def _intent(self, handle: ActorHandle, what: str) -> None:
        key = (handle.actor_id, handle.generation)
        try:
            if what == "sleep":
                self._call(self.core.sleep, *key)
            else:
                self.core.stop(*key, destroy=what == "destroy")
                self._pump()
        except LocalProtocolError as exc:
            raise RunnerClosedError(str(exc)) from None

    def _set_alarm(self, handle: ActorHandle, alarm_ts_ms: int | None) -> None:
        self._call(self.core.set_alarm, handle.actor_id, handle.generation, alarm_ts_ms)

    # -- tunnel ---------------------------------------------------------------------------------
    async def _serve_http(
        self, handle: ActorHandle, request: HttpRequest, scope: trio.CancelScope
    ) -> None:
        key = request.key
        with scope:
            try:
                response = await self.app.on_http(handle, request)
                await self._send_response(key, response)
            except Exception:
                log.exception("HTTP handler failed", extra={"actor_id": handle.actor_id})
                self._call(
                    self.core.send_http_response,
                    key,
                    500,
                    {"content-type": "text/plain"},
                    b"Internal Server Error",
                )
            finally:
                self._http.pop(key, None)

    async def _send_response(self, key: ev.TunnelKey, response: HttpResponse) -> None:
        body = response.body
        if isinstance(body, bytes):
            self._call(self.core.send_http_response, key, response.status, response.headers, body)
            return
        if self.options.stream_http_responses:
            self._call(self.core.start_http_response, key, response.status, response.headers)
            async for chunk in body:
                self._call(self.core.send_http_chunk, key, chunk, False)
            self._call(self.core.send_http_chunk, key, b"", True)
            return
        parts = [chunk async for chunk in body]
        self._call(
            self.core.send_http_response, key, response.status, response.headers, b"".join(parts)
        )

    async def _serve_websocket(self, handle: ActorHandle, ws: WebSocket, accept: bool) -> None:
        if accept:
            try:
                info = WebSocketOpen(ws.key, ws.path, ws.headers)
                hibernate = self.app.can_hibernate(handle, info)
            except Exception:
                log.exception("can_hibernate failed", extra={"actor_id": handle.actor_id})
                hibernate = False
            ws.hibernatable = hibernate
            if not self._call(self.core.accept_websocket, ws.key, hibernate):
                return
        try:
            await self.app.on_websocket(handle, ws)
        except WebSocketClosedError:
            pass
        except Exception:
            log.exception("WebSocket handler failed", extra={"actor_id": handle.actor_id})
            if not ws.closed:
                await ws.close(1011, "Server Error")
        finally:
            # An actor that stops leaves hibernatable sockets to the gateway, and the core closes
            # the others locally; only a handler that simply returned closes its socket.
            if not ws.closed and not handle._stop_requested.is_set():
                ws._closed = True
                self._call(self.core.close_websocket, ws.key, 1000, "")
            self._sockets.pop(ws.key, None)

    async def _ws_send(self, key: ev.TunnelKey, data: bytes, binary: bool) -> None:
        if not self._call_then_flush_here(self.core.send_websocket_message, key, data, binary):
            raise WebSocketClosedError(None, "socket is gone")
        await self._flush()

    def _ws_ack(self, key: ev.TunnelKey, index: int) -> None:
        self._call(self.core.ack_websocket, key, index)

    def _ws_close(self, key: ev.TunnelKey, code: int, reason: str) -> None:
        self._sockets.pop(key, None)
        self._call(self.core.close_websocket, key, code, reason)

    def _restore_ws(
        self,
        handle: ActorHandle,
        key: ev.TunnelKey,
        server_index: int,
        client_index: int,
        path: str,
        headers: dict[str, str],
    ) -> WebSocket:
        self._call(
            self.core.restore_websocket,
            handle.actor_id,
            handle.generation,
            key,
            server_index,
            client_index,
        )
        ws = WebSocket(self, key, path, headers, restored=True)
        self._sockets[key] = ws
        handle.nursery.start_soon(self._serve_websocket, handle, ws, False)
        return ws


@asynccontextmanager
async def open_runner(
    options: RunnerOptions,
    app: RunnerApp,
    *,
    graceful_exit: bool = True,
    connect: Connector = connect_tcp,
) -> AsyncIterator[Runner]:
    """Run a runner for the duration of the block; on exit it shuts down (gracefully unless
    ``graceful_exit`` is False) and every task it started has finished."""
    runner = Runner(options, app, connect=connect)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        try:
            yield runner
        finally:
            with trio.CancelScope(shield=True):
                await runner.shutdown(graceful=graceful_exit)
