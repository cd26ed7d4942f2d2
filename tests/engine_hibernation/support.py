"""Helpers of the hibernation tests: an app that persists and restores hibernatable sockets, an
embedded engine with a connected runner, and a gateway WebSocket client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from rivetpy.engine.core import EngineSettings
from rivetpy.engine.gateway_ws import GatewaySocket
from rivetpy.engine.hibernation import Phase
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine
from rivetpy.runner import (
    ActorHandle,
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
from rivetpy.testing.engine import EngineClient

ACTOR = "hws"
NAMES = {ACTOR: {"name": "Hibernating"}}


@dataclass
class Persisted:
    """A hibernatable socket's durable metadata, as an actor would persist it."""

    server_index: int
    path: str


@dataclass(frozen=True)
class Received:
    generation: int
    index: int
    data: str


@dataclass
class HibernatingApp(RunnerApp):
    """Sockets under ``/hws`` may hibernate: each message is recorded, its index persisted
    (in :attr:`persisted`, which survives actor generations like a durable store), acked, then
    echoed. Other sockets just echo. ``on_actor_start`` restores every listed socket it has
    metadata for."""

    starts: list[ActorHandle] = field(default_factory=list)
    stops: list[tuple[ActorHandle, StopReason]] = field(default_factory=list)
    persisted: dict[TunnelKey, Persisted] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    restored: list[TunnelKey] = field(default_factory=list)
    closed: list[tuple[TunnelKey, int | None]] = field(default_factory=list)
    ack: bool = True
    _changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def started(self, count: int = 1) -> ActorHandle:
        await self.wait_for(lambda: len(self.starts) >= count)
        return self.starts[count - 1]

    async def stopped(self, count: int = 1) -> ActorHandle:
        await self.wait_for(lambda: len(self.stops) >= count)
        return self.stops[count - 1][0]

    async def on_actor_start(self, actor: ActorHandle) -> None:
        for key in actor.hibernating_requests:
            meta = self.persisted.get(key)
            if meta is not None:
                actor.restore_websocket(key, server_index=meta.server_index, path=meta.path)
                self.restored.append(key)
        self.starts.append(actor)
        self.notify()

    async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
        self.stops.append((actor, reason))
        self.notify()

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        return request.path.startswith("/hws")

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        if ws.hibernatable and ws.key not in self.persisted:
            self.persisted[ws.key] = Persisted(0, ws.path)
            self.notify()
        async for message in ws:
            if ws.hibernatable:
                self.received.append(Received(actor.generation, message.index, message.text))
                self.persisted[ws.key].server_index = message.index
                if self.ack:
                    ws.ack(message.index)
                self.notify()
            await ws.send(message.data if message.binary else message.text)
        self.persisted.pop(ws.key, None)
        self.closed.append((ws.key, ws.close_code))
        self.notify()


def settings(**overrides: Any) -> EngineSettings:
    """Engine settings for tests: no keepalive jitter, short thresholds unless overridden."""
    base: dict[str, Any] = {"hibernating_request_keepalive_jitter_ms": 0}
    base.update(overrides)
    return EngineSettings(**base)


@asynccontextmanager
async def engine_and_runner(
    tmp_path: Path,
    app: RunnerApp,
    *,
    protocol_version: int = 8,
    engine_settings: EngineSettings | None = None,
    connect: Connector = connect_tcp,
    port: int = 0,
    runner_key: str | None = None,
) -> AsyncIterator[tuple[EngineServer, Runner]]:
    """An embedded engine (SQLite in ``tmp_path``) and a connected runner hosting ``hws``."""
    opts = EngineOptions(
        data_dir=tmp_path / "engine", port=port, settings=engine_settings or settings()
    )
    async with open_engine(opts) as server:
        ropts = RunnerOptions(
            server.endpoint,
            "py-runner",
            protocol_version=protocol_version,
            actor_names=NAMES,
            runner_key=runner_key or str(uuid.uuid4()),
            command_ack_interval=3600,
        )
        async with open_runner(ropts, app, graceful_exit=False, connect=connect) as runner:
            await runner.wait_connected()
            yield server, runner


async def create_actor(server: EngineServer) -> str:
    """Create the ``hws`` actor (in a thread: the client is blocking)."""
    api = EngineClient(server.endpoint, timeout=20.0)
    actor = await trio.to_thread.run_sync(
        lambda: api.create_actor(ACTOR, uuid.uuid4().hex, None, "py-runner", retry_for=10.0)
    )
    actor_id: str = actor["actor_id"]
    return actor_id


def ws_url(server: EngineServer, actor_id: str, path: str) -> str:
    return f"ws://{server.host}:{server.port}/gateway/{actor_id}{path}"


@asynccontextmanager
async def client_ws(url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A client WebSocket through the gateway. trio-websocket leaves its stream open when the
    server closes first; it is closed here."""
    async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
        try:
            yield ws
        finally:
            with trio.CancelScope(shield=True):
                await ws.aclose()
                stream = getattr(ws, "_stream", None)
                if stream is not None:
                    await stream.aclose()


def gateway_sockets(server: EngineServer) -> list[GatewaySocket]:
    return list(server.api.gateway.sockets.values())


async def wait_until(predicate: Callable[[], bool], step: float = 0.005) -> None:
    """Poll ``predicate`` (bound it with the caller's ``fail_after``)."""
    while not predicate():
        await trio.sleep(step)


async def sleep_actor(server: EngineServer, app: HibernatingApp, actor_id: str) -> None:
    """Put the actor to sleep and wait until the engine has it asleep."""
    count = len(app.stops)
    app.starts[-1].sleep()
    await app.stopped(count + 1)
    await wait_until(lambda: server.engine.actors[actor_id].state == "sleeping")


@dataclass
class OpenSocket:
    """An engine, a runner, an actor and one client WebSocket that exchanged a first message."""

    server: EngineServer
    runner: Runner
    actor_id: str
    ws: trio_websocket.WebSocketConnection
    gsock: GatewaySocket


@asynccontextmanager
async def open_socket(
    tmp_path: Path,
    app: HibernatingApp,
    *,
    engine_settings: EngineSettings | None = None,
    path: str = "/hws",
    **runner: Any,
) -> AsyncIterator[OpenSocket]:
    """The usual start of a test: engine and runner up, an actor started, a client socket on
    ``path`` that echoed ``a1`` (the runner processed it; acked if ``app.ack``)."""
    async with engine_and_runner(tmp_path, app, engine_settings=engine_settings, **runner) as (
        server,
        runner_,
    ):
        actor_id = await create_actor(server)
        await app.started()
        async with client_ws(ws_url(server, actor_id, path)) as ws:
            await ws.send_message("a1")
            assert await ws.get_message() == "a1"
            [gsock] = gateway_sockets(server)
            yield OpenSocket(server, runner_, actor_id, ws, gsock)


async def hibernate(opened: OpenSocket, app: HibernatingApp) -> None:
    """Put the actor to sleep and wait until the gateway hibernates the socket."""
    await sleep_actor(opened.server, app, opened.actor_id)
    await wait_until(lambda: opened.gsock.state.phase is Phase.HIBERNATING)
