"""The runner's low-level public API: what an application implements and what it is handed.

Subclass :class:`RunnerApp` and pass it to :func:`rivetpy.runner.open_runner`. For each actor
instance the app gets an :class:`ActorHandle` (KV, intents, alarms, a nursery cancelled when the
actor stops); HTTP requests arrive as :class:`HttpRequest` and are answered with an
:class:`HttpResponse`; WebSockets arrive as :class:`WebSocket`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import outcome
import trio

from codec import v8
from rivetpy.protocol.events import StopReason, TunnelKey

if TYPE_CHECKING:
    from rivetpy.runner.runner import Runner


class KvError(Exception):
    """A KV call failed: the engine's error message, a timeout or a lost runner."""


class KvTimeoutError(KvError):
    """No KV response within the timeout."""


class WebSocketClosedError(Exception):
    """The WebSocket is closed; ``code`` and ``reason`` say how."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"WebSocket closed ({code} {reason})")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class HttpResponse:
    """A response: ``body`` is bytes or an async iterable of chunks (streamed)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterable[bytes] = b""


class HttpRequest:
    """One request through the gateway. ``path`` is actor-relative and includes the query."""

    def __init__(
        self,
        key: TunnelKey,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        stream: bool,
    ) -> None:
        self.key = key
        self.method = method
        self.path = path
        self.headers = headers
        self.streamed = stream
        self._initial = body or b""
        self._chunks_send, self._chunks = trio.open_memory_channel[bytes](math.inf)
        if not stream:
            self._chunks_send.close()

    def _feed(self, chunk: bytes, finish: bool) -> None:
        try:
            if chunk:
                self._chunks_send.send_nowait(chunk)
            if finish:
                self._chunks_send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _abort(self) -> None:
        self._chunks_send.close()

    async def iter_body(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk (one chunk for a non-streamed request)."""
        if self._initial:
            yield self._initial
        async for chunk in self._chunks:
            yield chunk

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([c async for c in self.iter_body()])


@dataclass(frozen=True, slots=True)
class WebSocketMessage:
    data: bytes
    binary: bool
    #: the gateway's message index (ack it with :meth:`WebSocket.ack` once durably processed)
    index: int

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


class WebSocket:
    """A client WebSocket tunnelled through the gateway."""

    def __init__(
        self,
        runner: Runner,
        key: TunnelKey,
        path: str,
        headers: dict[str, str],
        *,
        restored: bool = False,
    ) -> None:
        self._runner = runner
        self.key = key
        self.path = path
        self.headers = headers
        self.restored = restored
        self.hibernatable = restored
        # The inbox (what a memory channel would be, without its half-dozen objects per socket:
        # one socket per client, recreated on every wake): messages not taken yet (created on
        # the first one that finds no receiver waiting), the oldest waiting receiver, and any
        # further receivers (rare), in arrival order. Closing ends the inbox once drained.
        self._inbox: deque[WebSocketMessage] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._more_waiters: deque[trio.lowlevel.Task] | None = None
        self._inbox_closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _deliver(self, message: WebSocketMessage) -> None:
        if self._closed or self._inbox_closed:
            return
        waiter = self._pop_waiter()
        if waiter is not None:
            trio.lowlevel.reschedule(waiter, outcome.Value(message))
            return
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(message)

    def _close_inbox(self) -> None:
        """No more messages: receivers get what is queued, then :class:`WebSocketClosedError`."""
        self._inbox_closed = True
        waiter = self._pop_waiter()
        while waiter is not None:
            closed = WebSocketClosedError(self.close_code, self.close_reason)
            trio.lowlevel.reschedule(waiter, outcome.Error(closed))
            waiter = self._pop_waiter()

    def _pop_waiter(self) -> trio.lowlevel.Task | None:
        waiter = self._waiter
        more = self._more_waiters
        self._waiter = more.popleft() if more else None
        return waiter

    def _take(self) -> WebSocketMessage | None:
        """A queued message, or None if the caller has to wait; raises once closed and empty."""
        inbox = self._inbox
        if inbox:
            return inbox.popleft()
        if self._inbox_closed:
            raise WebSocketClosedError(self.close_code, self.close_reason)
        return None

    def _wait(self) -> Awaitable[WebSocketMessage]:
        """Park the calling task until a message (or the close) is handed to it; await the
        result at once. A plain function: no coroutine or closure cells of its own per wait."""
        task = trio.lowlevel.current_task()
        if self._waiter is None:
            self._waiter = task
            return trio.lowlevel.wait_task_rescheduled(self._abort_first)
        return trio.lowlevel.wait_task_rescheduled(self._queue_waiter(task))

    def _queue_waiter(self, task: trio.lowlevel.Task) -> Callable[[object], trio.lowlevel.Abort]:
        """A further concurrent receiver (rare): queued behind the first, with its own abort."""
        if self._more_waiters is None:
            self._more_waiters = deque()
        self._more_waiters.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            if self._waiter is task:
                self._pop_waiter()
            elif self._more_waiters is not None:
                self._more_waiters.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        return abort

    def _abort_first(self, _: object) -> trio.lowlevel.Abort:
        """Cancel the wait of the task that parked as the first waiter (it leaves that slot only
        when rescheduled, so it is still there)."""
        self._pop_waiter()
        return trio.lowlevel.Abort.SUCCEEDED

    def _closed_by_peer(self, code: int | None, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_code, self.close_reason = code, reason
        self._close_inbox()

    async def send(self, data: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message."""
        if self._closed:
            raise WebSocketClosedError(self.close_code, self.close_reason)
        binary = isinstance(data, bytes)
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        await self._runner._ws_send(self.key, raw, binary)

    async def receive(self) -> WebSocketMessage:
        """The next message; raises :class:`WebSocketClosedError` once the socket is closed."""
        await trio.lowlevel.checkpoint_if_cancelled()
        message = self._take()
        if message is None:
            return await self._wait()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return message

    def __aiter__(self) -> AsyncIterator[WebSocketMessage]:
        return self

    async def __anext__(self) -> WebSocketMessage:
        # receive() inlined (one coroutine per wait instead of an async generator, its asend
        # and receive's own)
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            message = self._take()
            if message is None:
                return await self._wait()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return message
        except WebSocketClosedError:
            raise StopAsyncIteration from None

    def ack(self, index: int) -> None:
        """Acknowledge gateway messages up to ``index`` (hibernatable sockets only; ack only
        what is durably persisted, the gateway then forgets those messages)."""
        self._runner._ws_ack(self.key, index)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self.close_code, self.close_reason = code, reason
        self._close_inbox()
        self._runner._ws_close(self.key, code, reason)
        await trio.lowlevel.checkpoint()


@dataclass(frozen=True)
class WebSocketOpen:
    """What is known when a WebSocket opens (to decide whether it may hibernate)."""

    key: TunnelKey
    path: str
    headers: dict[str, str]


class ActorKv:
    """Actor-scoped KV on the engine (one round trip per call)."""

    def __init__(self, actor: ActorHandle) -> None:
        self._actor = actor

    async def request(self, data: v8.KvRequestData) -> v8.KvResponseData:
        return await self._actor._runner._kv(self._actor, data)

    async def get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values in request order (None where a key does not exist)."""
        resp = await self.request(v8.KvGetRequest(list(keys)))
        assert isinstance(resp, v8.KvGetResponse)
        found = dict(zip(resp.keys, resp.values, strict=True))
        return [found.get(k) for k in keys]

    async def get_one(self, key: bytes) -> bytes | None:
        return (await self.get([key]))[0]

    async def _list(
        self, query: v8.KvListQuery, reverse: bool, limit: int | None
    ) -> list[tuple[bytes, bytes]]:
        resp = await self.request(v8.KvListRequest(query, True if reverse else None, limit))
        assert isinstance(resp, v8.KvListResponse)
        return list(zip(resp.keys, resp.values, strict=True))

    async def list_all(
        self, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return await self._list(v8.KvListAllQuery(), reverse, limit)

    async def list_range(
        self,
        start: bytes,
        end: bytes,
        *,
        exclusive: bool = False,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Keys from ``start`` (inclusive) to ``end`` (inclusive unless ``exclusive``)."""
        return await self._list(v8.KvListRangeQuery(start, end, exclusive), reverse, limit)

    async def list_prefix(
        self, prefix: bytes, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return await self._list(v8.KvListPrefixQuery(prefix), reverse, limit)

    async def put(self, entries: Iterable[tuple[bytes, bytes]]) -> None:
        pairs = list(entries)
        await self.request(v8.KvPutRequest([k for k, _ in pairs], [v for _, v in pairs]))

    async def delete(self, keys: Sequence[bytes]) -> None:
        await self.request(v8.KvDeleteRequest(list(keys)))

    async def delete_range(self, start: bytes, end: bytes) -> None:
        """Delete ``[start, end)``."""
        await self.request(v8.KvDeleteRangeRequest(start, end))

    async def drop(self) -> None:
        """Delete every key of the actor."""
        await self.request(v8.KvDropRequest())


class ActorHandle:
    """One hosted actor instance, handed to every app callback."""

    def __init__(
        self,
        runner: Runner,
        actor_id: str,
        generation: int,
        config: v8.ActorConfig,
        preloaded_kv: v8.PreloadedKv | None,
        hibernating_requests: tuple[TunnelKey, ...],
    ) -> None:
        self._runner = runner
        self.actor_id = actor_id
        self.generation = generation
        self.config = config
        self.preloaded_kv = preloaded_kv
        self.hibernating_requests = hibernating_requests
        self.kv = ActorKv(self)
        self.stop_reason: StopReason | None = None
        self._stop_requested = trio.Event()
        self._started = trio.Event()
        self._nursery: trio.Nursery | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def key(self) -> str | None:
        return self.config.key

    @property
    def input(self) -> bytes | None:
        return self.config.input

    @property
    def nursery(self) -> trio.Nursery:
        """The actor's nursery: tasks started here are cancelled when the actor stops."""
        if self._nursery is None:
            raise RuntimeError("the actor's nursery is not open")
        return self._nursery

    def sleep(self) -> None:
        """Ask the engine to put this actor to sleep."""
        self._runner._intent(self, "sleep")

    def stop(self) -> None:
        """Ask the engine to stop this actor (its crash policy then applies)."""
        self._runner._intent(self, "stop")

    def destroy(self) -> None:
        """Ask the engine to stop and destroy this actor."""
        self._runner._intent(self, "destroy")

    def set_alarm(self, alarm_ts_ms: int | None) -> None:
        """Wake the actor at ``alarm_ts_ms`` (ms since the epoch); None clears the alarm."""
        self._runner._set_alarm(self, alarm_ts_ms)

    def restore_websocket(
        self,
        key: TunnelKey,
        *,
        server_index: int,
        client_index: int = 0,
        path: str = "",
        headers: dict[str, str] | None = None,
    ) -> WebSocket:
        """Re-attach a hibernated socket listed in ``hibernating_requests`` (during
        ``on_actor_start`` only), already open, with its persisted indexes. The runner then
        serves it with :meth:`RunnerApp.on_websocket` (``ws.restored`` is True) in
        :attr:`nursery`; the app must not start a second reader for it."""
        return self._runner._restore_ws(self, key, server_index, client_index, path, headers or {})


class RunnerApp:
    """Override what the application needs. Every callback runs in the actor's nursery."""

    async def on_actor_start(self, actor: ActorHandle) -> None:
        """Called for each new instance; tunnel traffic waits until it returns. Raising makes
        the start fail (the actor is stopped with code ERROR)."""

    async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
        """Called before the instance is stopped; its nursery is cancelled afterwards."""

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request (default: 404)."""
        return HttpResponse(404, {"content-type": "text/plain"}, b"not found")

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        """Whether this WebSocket may hibernate while the actor sleeps (default: no)."""
        return False

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        """Serve one WebSocket until it closes (default: close it)."""
        await ws.close(1000, "no handler")
