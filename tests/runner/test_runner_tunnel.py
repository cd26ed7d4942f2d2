"""The Trio driver's tunnel and actor API against a scripted engine (mock clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from codec import v8
from rivetpy.protocol.events import StopReason
from rivetpy.runner import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    RunnerApp,
    RunnerOptions,
    WebSocket,
    WebSocketOpen,
)
from tests.runner.fake_engine import FakeConnection, FakeEngine, run_against

ACTOR = "actor-1"
GW, REQ = b"\x01\x02\x03\x04", b"\x0a\x0b\x0c\x0d"
ID_META = v8.KvMetadata(b"2.3.11", 1)


def start(
    generation: int = 1,
    preloaded: v8.PreloadedKv | None = None,
    hibernating: list[v8.HibernatingRequest] | None = None,
) -> v8.ToClientCommands:
    return v8.ToClientCommands(
        [
            v8.CommandWrapper(
                v8.ActorCheckpoint(ACTOR, generation, 0),
                v8.CommandStartActor(
                    v8.ActorConfig("echo", "k", 5, b"in"), hibernating or [], preloaded
                ),
            )
        ]
    )


def tunnel(kind: v8.ToClientTunnelMessageKind, index: int = 0) -> v8.ToClientTunnelMessage:
    return v8.ToClientTunnelMessage(v8.MessageId(GW, REQ, index), kind)


class App(RunnerApp):
    def __init__(self) -> None:
        self.started = trio.Event()
        self.handle: ActorHandle | None = None
        self.preloaded: list[v8.PreloadedKv | None] = []
        self.bodies: list[bytes] = []
        self.cancelled = trio.Event()
        self.ws_messages: list[tuple[bytes, int]] = []
        self.restore_indexes: tuple[int, int] | None = None
        self.gate = trio.Event()

    async def on_actor_start(self, actor: ActorHandle) -> None:
        self.handle = actor
        self.preloaded.append(actor.preloaded_kv)
        if self.restore_indexes is not None:
            for key in actor.hibernating_requests:
                actor.restore_websocket(
                    key, server_index=self.restore_indexes[0], client_index=self.restore_indexes[1]
                )
        await self.gate.wait()
        self.started.set()

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        if request.path == "/hang":
            try:
                await trio.sleep_forever()
            finally:
                self.cancelled.set()
        if request.path == "/stream":

            async def chunks() -> AsyncIterator[bytes]:
                for part in (b"a" * 10, b"b" * 10, b"c"):
                    await trio.sleep(0.1)
                    yield part

            return HttpResponse(201, {"x-kind": "stream"}, chunks())
        body = await request.read()
        self.bodies.append(body)
        return HttpResponse(200, {}, body)

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        return request.path == "/hib"

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        async for message in ws:
            self.ws_messages.append((message.data, message.index))
            if ws.hibernatable:
                ws.ack(message.index)
            await ws.send(message.data)


async def boot(engine: FakeEngine, app: App, cmd: v8.ToClientCommands) -> FakeConnection:
    conn = await engine.new_connections.receive()
    await conn.next_of(v8.ToServerInit)
    await conn.send(cmd)
    return conn


def responses(conn: FakeConnection) -> list[v8.ToServerTunnelMessage]:
    return [m for m in conn.received if isinstance(m, v8.ToServerTunnelMessage)]


async def test_v8_start_exposes_preloaded_kv_and_v7_does_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    preloaded = v8.PreloadedKv([v8.PreloadedKvEntry(b"\x01", b"v", ID_META)], [b"\x01"], [b"\x02"])
    for version, expected in ((8, preloaded), (7, None)):
        engine = FakeEngine(version=version)
        app = App()
        app.gate.set()
        opts = RunnerOptions("http://e", "py", protocol_version=version)
        async with run_against(engine, app, opts, timeout=10):
            await boot(engine, app, start(preloaded=preloaded))
            await app.started.wait()
        assert app.preloaded == [expected]
        assert app.handle is not None and app.handle.input == b"in"


async def test_requests_wait_for_the_start_callback_then_stream_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = App()
    async with run_against(engine, app, RunnerOptions("http://e", "py"), timeout=10):
        conn = await boot(engine, app, start())
        await conn.send(tunnel(v8.ToClientRequestStart(ACTOR, "POST", "/up", {}, b"12", True)))
        await conn.send(tunnel(v8.ToClientRequestChunk(b"34", False), 1))
        await trio.sleep(1)
        assert not responses(conn), "no response before the actor started"
        app.gate.set()
        await conn.send(tunnel(v8.ToClientRequestChunk(b"56", True), 2))
        resp = await conn.next_of(v8.ToServerTunnelMessage)
    assert app.bodies == [b"123456"]
    assert resp.message_kind == v8.ToServerResponseStart(
        200, {"content-length": "6"}, b"123456", False
    )
    assert resp.message_id == v8.MessageId(GW, REQ, 0)


async def test_abort_cancels_the_handler_and_sends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = App()
    app.gate.set()
    async with run_against(engine, app, RunnerOptions("http://e", "py"), timeout=10):
        conn = await boot(engine, app, start())
        await app.started.wait()
        await conn.send(tunnel(v8.ToClientRequestStart(ACTOR, "GET", "/hang", {}, None, False)))
        await trio.sleep(1)
        await conn.send(tunnel(v8.ToClientRequestAbort(), 1))
        await app.cancelled.wait()
        await trio.sleep(1)
    assert responses(conn) == []


async def test_streamed_response_is_buffered_by_default_and_chunked_on_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for streaming in (False, True):
        engine = FakeEngine()
        app = App()
        app.gate.set()
        opts = RunnerOptions("http://e", "py", stream_http_responses=streaming)
        async with run_against(engine, app, opts, timeout=10):
            conn = await boot(engine, app, start())
            await app.started.wait()
            await conn.send(
                tunnel(v8.ToClientRequestStart(ACTOR, "GET", "/stream", {}, None, False))
            )
            await trio.sleep(2)
        kinds = [m.message_kind for m in responses(conn)]
        if not streaming:
            body = b"a" * 10 + b"b" * 10 + b"c"
            assert kinds == [
                v8.ToServerResponseStart(
                    201, {"x-kind": "stream", "content-length": "21"}, body, False
                )
            ]
        else:
            assert kinds == [
                v8.ToServerResponseStart(201, {"x-kind": "stream"}, None, True),
                v8.ToServerResponseChunk(b"a" * 10, False),
                v8.ToServerResponseChunk(b"b" * 10, False),
                v8.ToServerResponseChunk(b"c", False),
                v8.ToServerResponseChunk(b"", True),
            ]
            assert [m.message_id.message_index for m in responses(conn)] == [0, 1, 2, 3, 4]


async def test_hibernatable_socket_acks_each_message_and_survives_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = App()
    app.gate.set()
    async with run_against(engine, app, RunnerOptions("http://e", "py"), timeout=10):
        conn = await boot(engine, app, start())
        await app.started.wait()
        await conn.send(tunnel(v8.ToClientWebSocketOpen(ACTOR, "/hib", {})))
        for i in (1, 2, 2, 3):  # 2 is a replayed duplicate
            await conn.send(tunnel(v8.ToClientWebSocketMessage(b"m%d" % i, True), i))
        await trio.sleep(1)
        await conn.send(
            v8.ToClientCommands(
                [v8.CommandWrapper(v8.ActorCheckpoint(ACTOR, 1, 1), v8.CommandStopActor())]
            )
        )
        await trio.sleep(1)
    kinds = [m.message_kind for m in responses(conn)]
    assert kinds[0] == v8.ToServerWebSocketOpen(True)
    assert app.ws_messages == [(b"m1", 1), (b"m2", 2), (b"m3", 3)]
    acks = [k.index for k in kinds if isinstance(k, v8.ToServerWebSocketMessageAck)]
    # the duplicate 2 is acknowledged again if its first ack was already sent
    assert acks in ([1, 2, 3], [1, 2, 2, 3])
    assert not any(isinstance(k, v8.ToServerWebSocketClose) for k in kinds), (
        "hibernatable: no close"
    )


async def test_restored_socket_continues_from_the_persisted_index(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = App()
    app.restore_indexes = (7, 4)
    app.gate.set()
    async with run_against(engine, app, RunnerOptions("http://e", "py"), timeout=10):
        conn = await boot(engine, app, start(2, hibernating=[v8.HibernatingRequest(GW, REQ)]))
        await conn.send(tunnel(v8.ToClientWebSocketMessage(b"old", True), 7))  # already seen
        await conn.send(tunnel(v8.ToClientWebSocketMessage(b"new", True), 8))
        await app.started.wait()
        await trio.sleep(1)
        await conn.send(tunnel(v8.ToClientWebSocketMessage(b"gap", True), 10))
        await trio.sleep(1)
    assert app.ws_messages == [(b"new", 8)]
    out = responses(conn)
    assert [(m.message_id.message_index, m.message_kind) for m in out] == [
        (4, v8.ToServerWebSocketMessageAck(7)),  # the replayed 7 was persisted: acked again
        (5, v8.ToServerWebSocketMessageAck(8)),
        (6, v8.ToServerWebSocketMessage(b"new", True)),
        (7, v8.ToServerWebSocketClose(1008, "ws.message_index_skip", False)),
    ]


async def test_non_hibernatable_socket_is_closed_locally_when_the_actor_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = App()
    app.gate.set()
    stopped: list[StopReason] = []

    class StopApp(App):
        async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
            stopped.append(reason)

    app = StopApp()
    app.gate.set()
    async with run_against(engine, app, RunnerOptions("http://e", "py"), timeout=10):
        conn = await boot(engine, app, start())
        await app.started.wait()
        await conn.send(tunnel(v8.ToClientWebSocketOpen(ACTOR, "/plain", {})))
        await trio.sleep(1)
        assert app.handle is not None
        app.handle.sleep()
        intent = await conn.next_of(v8.ToServerEvents)
        while not isinstance(intent.value[0].inner, v8.EventActorIntent):
            intent = await conn.next_of(v8.ToServerEvents)
        assert intent.value[0].inner == v8.EventActorIntent(v8.ActorIntentSleep())
        await conn.send(
            v8.ToClientCommands(
                [v8.CommandWrapper(v8.ActorCheckpoint(ACTOR, 1, 1), v8.CommandStopActor())]
            )
        )
        await trio.sleep(1)
    assert stopped == [StopReason.COMMAND]
    kinds = [m.message_kind for m in responses(conn)]
    assert kinds == [v8.ToServerWebSocketOpen(False)], "closed locally, nothing sent"
