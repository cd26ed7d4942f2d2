"""The Trio driver against a scripted engine, on a mock clock (``autojump_clock``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import trio

from codec import v8
from rivetpy.protocol.events import StopReason
from rivetpy.runner import ActorHandle, KvTimeoutError, RunnerApp, RunnerOptions
from tests.runner.fake_engine import FakeConnection, FakeEngine, run_against

ACTOR = "actor-1"


class RecordingApp(RunnerApp):
    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.stopped: list[tuple[str, int, StopReason]] = []
        self.handles: dict[str, ActorHandle] = {}
        self.started_event = trio.Event()
        self.stopped_event = trio.Event()

    async def on_actor_start(self, actor: ActorHandle) -> None:
        self.started.append((actor.actor_id, actor.generation))
        self.handles[actor.actor_id] = actor
        self.started_event.set()

    async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
        self.stopped.append((actor.actor_id, actor.generation, reason))
        self.stopped_event.set()


def options(**kw: object) -> RunnerOptions:
    base: dict[str, object] = {"endpoint": "http://engine.test:6420/", "runner_name": "py"}
    base.update(kw)
    return RunnerOptions(**base)  # type: ignore[arg-type]


def start_command(generation: int = 1, index: int = 0) -> v8.ToClientCommands:
    return v8.ToClientCommands(
        [
            v8.CommandWrapper(
                v8.ActorCheckpoint(ACTOR, generation, index),
                v8.CommandStartActor(v8.ActorConfig("echo", None, 0, None), [], None),
            )
        ]
    )


async def connected(engine: FakeEngine) -> FakeConnection:
    conn = await engine.new_connections.receive()
    await conn.next_of(v8.ToServerInit)
    return conn


async def with_started_actor(engine: FakeEngine, app: RecordingApp) -> FakeConnection:
    """The next connection, handshaken, with ``ACTOR`` generation 1 started on it."""
    conn = await connected(engine)
    await conn.send(start_command())
    await app.started_event.wait()
    return conn


async def test_url_subprotocols_and_init_frame(autojump_clock: trio.testing.MockClock) -> None:
    engine = FakeEngine()
    opts = options(
        token="s3cret", namespace="ns one", total_slots=7, actor_names={"echo": {"a": 1}}
    )
    async with run_against(engine, RecordingApp(), opts, timeout=10):
        conn = await engine.new_connections.receive()
        init = await conn.next_of(v8.ToServerInit)
    url = urlsplit(conn.url)
    assert (url.scheme, url.netloc, url.path) == ("ws", "engine.test:6420", "/runners/connect")
    query = parse_qs(url.query)
    assert query == {
        "protocol_version": ["8"],
        "namespace": ["ns one"],
        "runner_key": [opts.runner_key],
    }
    assert conn.protocols == ["rivet", "rivet_token.s3cret"]
    assert conn.received[0] == init
    assert (init.name, init.total_slots) == ("py", 7)
    assert init.prepopulate_actor_names == {"echo": v8.ActorName('{"a":1}')}


async def test_reconnect_backoff_doubles_with_jitter_and_caps_at_30s(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    engine.refuse = 8
    async with run_against(engine, RecordingApp(), options(), timeout=400) as runner:
        await runner.wait_connected()
    gaps = [b - a for a, b in zip(engine.attempts, engine.attempts[1:], strict=False)]
    assert len(gaps) == 8
    for gap, base in zip(gaps, [1, 2, 4, 8, 16, 30, 30, 30], strict=True):
        assert base <= gap < base * 1.25, (gap, base)
    assert len(set(gaps[5:])) > 1, "jitter must vary the delay"


async def test_attempt_counter_resets_after_a_successful_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    engine.refuse = 3
    async with run_against(engine, RecordingApp(), options(), timeout=400) as runner:
        await runner.wait_connected()
        first = await engine.new_connections.receive()
        closed_at = trio.current_time()
        await first.close(1011, "ws.going_away#ray")
        second = await engine.new_connections.receive()
        assert 1 <= engine.attempts[-1] - closed_at < 1.25
        await second.next_of(v8.ToServerInit)
        assert runner.last_close is not None and str(runner.last_close) == "ws.going_away"


async def test_silent_engine_is_dropped_after_the_ping_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    opts = options(ping_timeout=20.0)
    async with run_against(engine, RecordingApp(), opts, timeout=100) as runner:
        await connected(engine)
        t0 = trio.current_time()
        second = await engine.new_connections.receive()
        # 20 s without a frame, then the first reconnect delay (1-1.25 s).
        assert 21 <= trio.current_time() - t0 < 21.5
        assert engine.connections[0].close_code == 1011
        assert engine.connections[0].close_reason == "runner.ping_timeout"
        await second.next_of(v8.ToServerInit)
        assert runner.last_error == "ping timeout"


async def test_engine_pings_keep_the_connection_and_pongs_echo_ts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    async with run_against(engine, RecordingApp(), options(), timeout=100):
        conn = await connected(engine)
        for i in range(20):
            await trio.sleep(3)
            await conn.send(v8.ToClientPing(1_700_000_000_000 + i))
            pong = await conn.next_of(v8.ToServerPong)
            assert pong.ts == 1_700_000_000_000 + i
        assert len(engine.connections) == 1


async def test_kv_request_times_out(autojump_clock: trio.testing.MockClock) -> None:
    engine = FakeEngine()
    app = RecordingApp()
    async with run_against(engine, app, options(kv_timeout=30.0), timeout=100):
        conn = await with_started_actor(engine, app)
        handle = app.handles[ACTOR]
        t0 = trio.current_time()
        with pytest.raises(KvTimeoutError):
            await handle.kv.get([b"k"])
        assert 30 <= trio.current_time() - t0 < 31
        req = await conn.next_of(v8.ToServerKvRequest)
        assert (req.actor_id, req.data) == (ACTOR, v8.KvGetRequest([b"k"]))


async def test_kv_response_resolves_the_right_call(autojump_clock: trio.testing.MockClock) -> None:
    engine = FakeEngine()
    app = RecordingApp()
    results: dict[bytes, bytes | None] = {}
    async with run_against(engine, app, options(), timeout=100):
        conn = await with_started_actor(engine, app)
        handle = app.handles[ACTOR]

        async def get(key: bytes) -> None:
            results[key] = await handle.kv.get_one(key)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get, b"a")
            first = await conn.next_of(v8.ToServerKvRequest)
            nursery.start_soon(get, b"b")
            second = await conn.next_of(v8.ToServerKvRequest)
            meta = [v8.KvMetadata(b"1", 0)]
            # answer out of order
            await conn.send(
                v8.ToClientKvResponse(second.request_id, v8.KvGetResponse([b"b"], [b"B"], meta))
            )
            await conn.send(
                v8.ToClientKvResponse(first.request_id, v8.KvGetResponse([], [], []))
            )
    assert (first.request_id, second.request_id) == (0, 1)
    assert results == {b"a": None, b"b": b"B"}


async def test_eviction_shuts_the_runner_down_without_reconnecting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = RecordingApp()
    async with run_against(engine, app, options(), timeout=300) as runner:
        conn = await with_started_actor(engine, app)
        await conn.close(1000, "ws.eviction#abc")
        await app.stopped_event.wait()
        await trio.sleep(120)
        assert len(engine.attempts) == 1
        assert runner.last_close is not None and runner.last_close.is_eviction
    assert app.stopped == [(ACTOR, 1, StopReason.EVICTED)]


async def test_graceful_shutdown_drains_then_closes_1000(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = RecordingApp()
    async with run_against(engine, app, options(), timeout=100) as runner:
        conn = await with_started_actor(engine, app)

        async def engine_side() -> None:
            await conn.next_of(v8.ToServerStopping)
            await trio.sleep(0.5)
            await conn.send(
                v8.ToClientCommands(
                    [v8.CommandWrapper(v8.ActorCheckpoint(ACTOR, 1, 1), v8.CommandStopActor())]
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine_side)
            await runner.shutdown(graceful=True)
        await conn.closed.wait()
    assert app.stopped == [(ACTOR, 1, StopReason.COMMAND)]
    stopped = [
        w.inner
        for m in conn.received
        if isinstance(m, v8.ToServerEvents)
        for w in m.value
        if isinstance(w.inner, v8.EventActorStateUpdate)
        and isinstance(w.inner.state, v8.ActorStateStopped)
    ]
    assert [e.state.code for e in stopped] == [v8.StopCode.OK]  # type: ignore[union-attr]
    assert (conn.close_code, conn.close_reason) == (1000, "pegboard.runner_shutdown")


async def test_runner_lost_timer_stops_actors_while_disconnected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = RecordingApp()
    async with run_against(engine, app, options(), timeout=200):
        conn = await with_started_actor(engine, app)
        engine.refuse = 100
        t0 = trio.current_time()
        await conn.close(1011, "ws.going_away")
        await app.stopped_event.wait()
        assert 15 <= trio.current_time() - t0 < 15.5  # runnerLostThreshold = 15 000 ms
    assert app.stopped == [(ACTOR, 1, StopReason.RUNNER_LOST)]


async def test_reconnect_keeps_the_runner_key_and_does_not_restart_actors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    app = RecordingApp()
    async with run_against(engine, app, options(), timeout=100):
        conn = await with_started_actor(engine, app)
        await conn.close(1011, "ws.going_away")
        again = await connected(engine)
        resent = await again.next_of(v8.ToServerEvents)  # history resent after init
        assert [w.checkpoint.index for w in resent.value] == [0]
        await again.send(start_command())  # the engine replays the unacked start
        ack = await again.next_of(v8.ToServerAckCommands)
        assert v8.ActorCheckpoint(ACTOR, 1, 0) in ack.last_command_checkpoints
    assert app.started == [(ACTOR, 1)]
    keys = {parse_qs(urlsplit(c.url).query)["runner_key"][0] for c in engine.connections}
    assert len(keys) == 1


async def test_an_undecodable_frame_closes_1011_and_reconnects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = FakeEngine()
    async with run_against(engine, RecordingApp(), options(), timeout=100) as runner:
        conn = await connected(engine)
        assert conn.ws is not None
        await conn.ws.send_message(b"\x09garbage")
        await conn.closed.wait()
        again = await connected(engine)
        assert again is not conn
        assert (conn.close_code, conn.close_reason) == (1011, "runner.invalid_frame")
        assert runner.last_error is not None and "invalid frame" in runner.last_error
