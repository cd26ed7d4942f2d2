"""A scriptable engine end of the runner protocol over in-memory streams, for Trio tests with a
mock clock (no sockets, so ``autojump_clock`` cannot jump past real network waits)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
import trio.testing
import trio_websocket

import codec
from codec import v8
from rivetpy.runner import Runner, RunnerApp, RunnerOptions, open_runner

METADATA = v8.ProtocolMetadata(15_000, 30_000, None)


class FakeConnection:
    """One runner connection as the engine sees it."""

    def __init__(self, engine: FakeEngine, url: str, protocols: list[str]) -> None:
        self.engine = engine
        self.url = url
        self.protocols = protocols
        self.received: list[v8.ToServer] = []
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.closed = trio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._arrived_send, self.arrived = trio.open_memory_channel[v8.ToServer](math.inf)

    async def serve(self, nursery: trio.Nursery, stream: trio.abc.Stream) -> None:
        request = await trio_websocket.wrap_server_stream(nursery, stream, max_message_size=1 << 26)
        ws = await request.accept(subprotocol="rivet")
        self.ws = ws
        try:
            while True:
                data = await ws.get_message()
                assert isinstance(data, bytes)
                msg = codec.TO_SERVER.decode(data, self.engine.version)
                self.received.append(msg)
                self._arrived_send.send_nowait(msg)
                if isinstance(msg, v8.ToServerInit) and self.engine.auto_init:
                    await self.send(v8.ToClientInit(self.engine.runner_id, self.engine.metadata))
        except trio_websocket.ConnectionClosed as exc:
            if exc.reason is not None:
                self.close_code, self.close_reason = exc.reason.code, exc.reason.reason
        finally:
            self.closed.set()

    async def send(self, msg: v8.ToClient) -> None:
        assert self.ws is not None
        await self.ws.send_message(codec.TO_CLIENT.encode(msg, self.engine.version))

    async def next_of(self, kind: type[Any]) -> Any:
        """The next received message of ``kind`` (others are skipped)."""
        while True:
            msg = await self.arrived.receive()
            if isinstance(msg, kind):
                return msg

    async def close(self, code: int = 1000, reason: str = "ws.closed") -> None:
        assert self.ws is not None
        await self.ws.aclose(code, reason)


class FakeEngine:
    """Accepts (or refuses) runner connections; tests script what it sends."""

    def __init__(self, version: int = 8, runner_id: str = "runner-1") -> None:
        self.version = version
        self.runner_id = runner_id
        self.metadata = METADATA
        self.auto_init = True
        self.refuse = 0
        self.attempts: list[float] = []
        self.connections: list[FakeConnection] = []
        self._new_send, self.new_connections = trio.open_memory_channel[FakeConnection](math.inf)

    async def connect(
        self, nursery: trio.Nursery, url: str, protocols: list[str], max_message_size: int
    ) -> trio_websocket.WebSocketConnection:
        self.attempts.append(trio.current_time())
        if self.refuse:
            self.refuse -= 1
            raise OSError("connection refused (fake engine)")
        client_stream, server_stream = trio.testing.memory_stream_pair()
        conn = FakeConnection(self, url, protocols)
        self.connections.append(conn)
        nursery.start_soon(conn.serve, nursery, server_stream)
        parts = urlsplit(url)
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            client_stream,  # type: ignore[arg-type]
            parts.netloc,
            f"{parts.path}?{parts.query}",
            subprotocols=protocols,
            max_message_size=max_message_size,
        )
        self._new_send.send_nowait(conn)
        return ws


@asynccontextmanager
async def run_against(
    engine: FakeEngine, app: RunnerApp, options: RunnerOptions, *, timeout: float
) -> AsyncIterator[Runner]:
    """A runner connected through ``engine`` for the block (no graceful exit), the whole block
    failing after ``timeout`` seconds of the (mock) clock."""
    with trio.fail_after(timeout):
        async with open_runner(options, app, connect=engine.connect, graceful_exit=False) as runner:
            yield runner
