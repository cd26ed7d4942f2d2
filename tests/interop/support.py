"""Helpers of the interop tests: a recording app, a runner bound to the real engine, and small
async HTTP / WebSocket clients for the gateway (everything on 127.0.0.1)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio_websocket

from rivetpy.runner import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    Runner,
    RunnerApp,
    RunnerOptions,
    StopReason,
    TunnelKey,
    WebSocket,
    WebSocketOpen,
    open_runner,
)
from rivetpy.runner.runner import Connector, connect_tcp
from rivetpy.testing.engine import EngineClient, JsonObject

ACTOR_NAME = "echo"

# Loopback only: never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_sync(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResult:
    """One blocking request; every HTTP status is a result, network failures raise OSError."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            got = {k.lower(): v for k, v in response.headers.items()}
            return HttpResult(response.status, got, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            got = {k.lower(): v for k, v in exc.headers.items()}
            return HttpResult(exc.code, got, exc.read())


async def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResult:
    """:func:`http_sync` in a worker thread."""

    def run() -> HttpResult:
        return http_sync(method, url, body=body, headers=headers, timeout=timeout)

    return await trio.to_thread.run_sync(run, abandon_on_cancel=True)


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


def ws_url(http_url: str) -> str:
    assert http_url.startswith("http://")
    return "ws://" + http_url[len("http://") :]


@asynccontextmanager
async def gateway_ws(
    url: str, extra_protocols: list[str] | None = None
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A client WebSocket through the gateway. Offers ``rivet``: the gateway always answers
    with it, which a strict client rejects unless offered."""
    async with trio_websocket.open_websocket_url(
        ws_url(url), subprotocols=["rivet", *(extra_protocols or [])]
    ) as ws:
        yield ws


# -- the app ---------------------------------------------------------------------------------


@dataclass
class Persisted:
    """What a hibernatable socket's app would persist: last processed gateway index (and
    request path/headers for the restore)."""

    server_index: int
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Received:
    """One message a hibernatable socket's handler processed."""

    generation: int
    index: int
    data: str


@dataclass
class InteropApp(RunnerApp):
    """Records every callback; serves a few HTTP routes and echoes WebSockets.

    HTTP routes: ``/ping`` -> ``pong``; ``/echo`` -> the request body, with the path and method
    the actor saw in ``x-seen-path`` / ``x-seen-method``; ``/stream?n=&size=`` -> a streamed
    body of ``n`` chunks of ``size`` bytes (``chunk i`` is ``bytes([i % 256]) * size``).
    WebSockets echo (text as text, binary as binary). Sockets whose path starts with ``/hws``
    may hibernate: the handler persists each message's index in :attr:`persisted` (surviving
    actor generations, as a durable store would), then acks it, then echoes.
    """

    starts: list[ActorHandle] = field(default_factory=list)
    stops: list[tuple[ActorHandle, StopReason]] = field(default_factory=list)
    persisted: dict[TunnelKey, Persisted] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    restored: list[TunnelKey] = field(default_factory=list)
    #: (path, streamed request?, body length) of every /echo request
    echoed: list[tuple[str, bool, int]] = field(default_factory=list)
    #: (key, close code) of every socket whose handler saw it closed
    closed: list[tuple[TunnelKey, int | None]] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)

    # -- observation
    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds (re-checked after every callback; bound it by the caller's
        ``trio.fail_after``)."""
        while not predicate():
            await self._changed.wait()

    def starts_of(self, actor_id: str) -> list[ActorHandle]:
        return [h for h in self.starts if h.actor_id == actor_id]

    def stops_of(self, actor_id: str) -> list[tuple[ActorHandle, StopReason]]:
        return [(h, r) for h, r in self.stops if h.actor_id == actor_id]

    async def started(self, actor_id: str, count: int = 1) -> ActorHandle:
        """The ``count``-th started instance of the actor (waits for it)."""
        await self.wait_for(lambda: len(self.starts_of(actor_id)) >= count)
        return self.starts_of(actor_id)[count - 1]

    async def stopped(self, actor_id: str, count: int = 1) -> tuple[ActorHandle, StopReason]:
        await self.wait_for(lambda: len(self.stops_of(actor_id)) >= count)
        return self.stops_of(actor_id)[count - 1]

    # -- callbacks
    async def on_actor_start(self, actor: ActorHandle) -> None:
        for key in actor.hibernating_requests:
            meta = self.persisted.get(key)
            if meta is not None:
                actor.restore_websocket(
                    key, server_index=meta.server_index, path=meta.path, headers=meta.headers
                )
                self.restored.append(key)
        self.starts.append(actor)
        self._notify()

    async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
        self.stops.append((actor, reason))
        self._notify()

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        path, _, query = request.path.partition("?")
        if path.endswith("/ping"):
            return HttpResponse(200, {"content-type": "text/plain"}, b"pong")
        if path.endswith("/echo"):
            body = await request.read()
            self.echoed.append((request.path, request.streamed, len(body)))
            seen = {"x-seen-path": request.path, "x-seen-method": request.method}
            return HttpResponse(200, {"content-type": "application/octet-stream", **seen}, body)
        if path.endswith("/stream"):
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            return HttpResponse(
                200,
                {"content-type": "application/octet-stream"},
                _chunks(int(params.get("n", "4")), int(params.get("size", "1024"))),
            )
        return HttpResponse(404, {"content-type": "text/plain"}, b"no route")

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        return request.path.startswith("/hws")

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        if ws.hibernatable and ws.key not in self.persisted:
            # Persist on open (before any message), as hibernation.md §3 asks.
            self.persisted[ws.key] = Persisted(0, ws.path, dict(ws.headers))
        async for message in ws:
            if ws.hibernatable:
                self.received.append(Received(actor.generation, message.index, message.text))
                self.persisted[ws.key].server_index = message.index
                ws.ack(message.index)
                self._notify()
            await ws.send(message.data if message.binary else message.text)
        self.persisted.pop(ws.key, None)
        self.closed.append((ws.key, ws.close_code))
        self._notify()


async def _chunks(n: int, size: int) -> AsyncIterator[bytes]:
    for i in range(n):
        await trio.sleep(0.001)
        yield bytes([i % 256]) * size


# -- runner and actors -----------------------------------------------------------------------


def runner_options(endpoint: str, **overrides: Any) -> RunnerOptions:
    """Options for a runner with a fresh name (so the engine only places this test's actors
    on it), protocol v7 (what the engine speaks)."""
    base: dict[str, Any] = {
        "endpoint": endpoint,
        "runner_name": f"py-{uuid.uuid4().hex[:10]}",
        "protocol_version": 7,
        "actor_names": {ACTOR_NAME: {}},
    }
    base.update(overrides)
    return RunnerOptions(**base)


class CountingConnector:
    """The default connector, recording when each connection attempt began."""

    def __init__(self, inner: Connector = connect_tcp) -> None:
        self.inner = inner
        self.attempts: list[float] = []

    async def __call__(
        self, nursery: trio.Nursery, url: str, protocols: list[str], max_message_size: int
    ) -> trio_websocket.WebSocketConnection:
        self.attempts.append(trio.current_time())
        return await self.inner(nursery, url, protocols, max_message_size)


@asynccontextmanager
async def connected_runner(
    options: RunnerOptions,
    app: RunnerApp,
    *,
    graceful_exit: bool = False,
    connect: Connector = connect_tcp,
) -> AsyncIterator[Runner]:
    """A runner connected to the engine (handshake done) for the duration of the block."""
    async with open_runner(options, app, graceful_exit=graceful_exit, connect=connect) as runner:
        with trio.fail_after(10):
            await runner.wait_connected()
        yield runner


async def create_actor(
    client: EngineClient,
    runner: Runner,
    *,
    key: str | None = None,
    input: bytes | None = None,
    crash_policy: Any = "sleep",
) -> JsonObject:
    """``POST /actors`` for the runner's name.

    Waits for the runner config first: the engine caches a ``POST /actors`` that found no
    config for the runner name for several seconds (``actor.no_runner_config_configured`` keeps
    coming after the config exists), so the first create must not race the runner's handshake.
    """
    name = runner.options.runner_name

    def create() -> JsonObject:
        client.wait_for_runner_config(name, timeout=10)
        return client.create_actor(
            ACTOR_NAME,
            key if key is not None else uuid.uuid4().hex,
            input,
            name,
            crash_policy,
            retry_for=10,
        )

    actor: JsonObject = await in_thread(create)
    return actor


async def get_actor(client: EngineClient, actor_id: str) -> JsonObject:
    found: JsonObject | None = await in_thread(lambda: client.get_actor(actor_id))
    assert found is not None, f"actor {actor_id} not found"
    return found
