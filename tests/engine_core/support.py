"""Helpers of the embedded-engine tests: a sync API client used from threads, a Python app."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import TypeVar

import trio

from rivetpy.engine.preload import PERSIST_DATA
from rivetpy.runner import ActorHandle, HttpRequest, HttpResponse, RunnerApp, WebSocket
from rivetpy.testing.engine import EngineClient

T = TypeVar("T")

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


async def call(fn: Callable[..., T], *args: object) -> T:
    """Run a blocking client call in a thread."""
    return await trio.to_thread.run_sync(lambda: fn(*args))


def http_get(url: str, timeout: float = 20.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="GET")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def client(endpoint: str, token: str | None = None) -> EngineClient:
    return EngineClient(endpoint, token=token, timeout=20.0)


class EchoApp(RunnerApp):
    """Writes a KV key on start; ``/ping`` answers ``pong <generation>``, ``/sleep`` sleeps,
    ``/kv`` returns the persisted key; WebSockets echo."""

    def __init__(self) -> None:
        self.starts: list[ActorHandle] = []
        self.stops = 0
        self.started = trio.Event()

    async def on_actor_start(self, actor: ActorHandle) -> None:
        self.starts.append(actor)
        if await actor.kv.get_one(PERSIST_DATA) is None:
            await actor.kv.put([(PERSIST_DATA, b"state-of-" + actor.actor_id.encode())])
        self.started.set()

    async def on_actor_stop(self, actor: ActorHandle, reason: object) -> None:
        self.stops += 1

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/sleep"):
            actor.sleep()
            return HttpResponse(200, {}, b"sleeping")
        if request.path.startswith("/kv"):
            value = await actor.kv.get_one(PERSIST_DATA)
            return HttpResponse(200, {}, value or b"")
        return HttpResponse(200, {"x-actor": actor.actor_id}, f"pong {actor.generation}".encode())

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message.data if message.binary else message.text)
