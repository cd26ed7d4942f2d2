"""Engine-side runner and actor lifecycle, end to end with the Python runner (protocol v8):
eviction, runner-lost expiry, ping and init timeouts, draining, crash policies, header routing
and alarms. Timings are shrunk through :class:`EngineSettings`."""

from __future__ import annotations

import gc
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio_websocket

import codec
from codec import v8
from rivetpy.engine.core import EngineSettings, now_ms
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine
from rivetpy.engine.state import read_commands
from rivetpy.engine.store import ReadTransaction
from rivetpy.protocol.engine import QueuedCommand
from rivetpy.protocol.runner import Lifecycle
from rivetpy.runner import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    RunnerOptions,
    open_runner,
)
from tests.engine_core.support import EchoApp, call, client, http_get

# A leaked client socket surfaces when the GC collects it: collect after each test, so a leak is
# reported by the test that caused it.


@pytest.fixture(autouse=True)
async def _collect_leaked_sockets() -> AsyncIterator[None]:
    yield
    gc.collect()


NAMES = {"echo": {"name": "Echo"}}
RUNNER = "py-runner"


def options(tmp_path: Path, **settings: object) -> EngineOptions:
    return EngineOptions(
        data_dir=tmp_path / "engine",
        port=0,
        settings=EngineSettings(**settings),  # type: ignore[arg-type]
    )


def runner_options(server: EngineServer, key: str | None = None, **kw: object) -> RunnerOptions:
    extra: dict[str, object] = {"command_ack_interval": 3600, "drain_timeout": 5.0, **kw}
    if key is not None:
        extra["runner_key"] = key
    return RunnerOptions(
        server.endpoint,
        RUNNER,
        protocol_version=8,
        actor_names=NAMES,
        **extra,  # type: ignore[arg-type]
    )


async def until(predicate: Callable[[], bool], interval: float = 0.01) -> None:
    while not predicate():
        await trio.sleep(interval)


def state(server: EngineServer, actor_id: str) -> str:
    return server.engine.actors[actor_id].state


async def queued(server: EngineServer, runner_id: str) -> list[QueuedCommand]:
    async def body(tr: ReadTransaction) -> list[QueuedCommand]:
        return await read_commands(tr, runner_id)

    return await server.engine.store.read(body)


def request(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers, method="GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def error_id(body: bytes) -> str:
    data = json.loads(body)
    return f"{data['group']}.{data['code']}"


class LifecycleApp(EchoApp):
    """EchoApp plus: input ``crash`` fails the first generation's start; input ``block`` makes
    the stop callback wait for :attr:`release`; ``/destroy`` destroys the actor; ``/alarm?ms=N``
    sets an alarm N ms ahead and sleeps; ``/request...`` echoes the path and headers."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()
        self.start_times: list[int] = []

    async def on_actor_start(self, actor: ActorHandle) -> None:
        self.start_times.append(now_ms())
        if actor.input == b"crash" and actor.generation == 0:
            self.starts.append(actor)
            raise RuntimeError("boom")
        await super().on_actor_start(actor)

    async def on_actor_stop(self, actor: ActorHandle, reason: object) -> None:
        await super().on_actor_stop(actor, reason)
        if actor.input == b"block":
            with trio.move_on_after(5):  # bounded: a failing test must not hang its teardown
                await self.release.wait()

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/destroy"):
            actor.destroy()
            return HttpResponse(200, {}, b"destroying")
        if request.path.startswith("/alarm"):
            delay = int(request.path.split("ms=")[1])
            actor.set_alarm(now_ms() + delay)
            actor.sleep()
            return HttpResponse(200, {}, b"alarm set")
        if request.path.startswith("/request"):
            seen = {"path": request.path, "headers": request.headers}
            return HttpResponse(200, {}, json.dumps(seen).encode())
        return await super().on_http(actor, request)


# -- 1. eviction ------------------------------------------------------------------------------


async def test_second_connection_with_same_key_evicts_the_first(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_engine(options(tmp_path)) as server:
            api = client(server.endpoint)
            first_app, second_app = LifecycleApp(), LifecycleApp()
            opts = runner_options(server, key="same-key")
            async with open_runner(opts, first_app, graceful_exit=False) as first:
                await first.wait_connected()
                runner_id = first.runner_id
                assert runner_id is not None
                actor = await call(api.create_actor, "echo", None, None, RUNNER)
                await first_app.started.wait()
                async with open_runner(opts, second_app, graceful_exit=False) as second:
                    await second.wait_connected()
                    # same (namespace, name, key): same runner id, the older socket is evicted
                    assert second.runner_id == runner_id
                    await until(lambda: first.last_close is not None)
                    assert first.last_close is not None and first.last_close.is_eviction
                    # ... and the evicted runner shuts down instead of reconnecting
                    await until(lambda: first.core.lifecycle is Lifecycle.SHUTDOWN)
                    await trio.sleep(0.2)
                    assert first.connections == 1
                    assert len(server.engine.sessions) == 1
                    # the unacked start command was replayed to the new connection
                    await second_app.started.wait()
                    url = api.gateway_url(actor["actor_id"], "/ping")
                    status, body = await call(http_get, url)
                    assert (status, body) == (200, b"pong 0")
                    await second.shutdown(graceful=False)


# -- 2. runner-lost timeout -------------------------------------------------------------------


async def test_lost_runner_expires_reschedules_actors_and_late_reconnect_gets_new_id(
    tmp_path: Path,
) -> None:
    settings = {"runner_lost_threshold_ms": 500, "ping_interval_ms": 100}
    with trio.fail_after(20):
        async with open_engine(options(tmp_path, **settings)) as server:
            api = client(server.endpoint)
            lost_app, other_app = LifecycleApp(), LifecycleApp()
            async with open_runner(
                runner_options(server, key="lost"), lost_app, graceful_exit=False
            ) as lost:
                await lost.wait_connected()
                lost_id = lost.runner_id
                assert lost_id is not None
                actor = await call(api.create_actor, "echo", None, None, RUNNER, "sleep")
                actor_id = actor["actor_id"]
                await lost_app.started.wait()
                assert server.engine.actors[actor_id].runner_id == lost_id
                assert len(await queued(server, lost_id)) == 1  # unacked start
                async with open_runner(
                    runner_options(server), other_app, graceful_exit=False
                ) as other:
                    await other.wait_connected()
                    await lost.shutdown(graceful=False)
                    disconnected_at = trio.current_time()
                    # expired after the threshold: the actor is lost and rescheduled elsewhere
                    await until(lambda: lost_id not in server.engine.runners)
                    assert trio.current_time() - disconnected_at >= 0.4
                    await other_app.started.wait()
                    record = server.engine.actors[actor_id]
                    assert record.runner_id == other.runner_id
                    assert record.generation == 1
                    assert await queued(server, lost_id) == []
                    # a late reconnect with the same key gets a new runner id
                    late_app = LifecycleApp()
                    late_opts = runner_options(server, key="lost")
                    async with open_runner(late_opts, late_app, graceful_exit=False) as late:
                        await late.wait_connected()
                        assert late.runner_id not in (None, lost_id)
                        await late.shutdown(graceful=False)
                    await other.shutdown(graceful=False)


# -- 3. init and ping timeouts ----------------------------------------------------------------


def connect_url(server: EngineServer, key: str) -> str:
    return (
        f"ws://{server.host}:{server.port}/runners/connect"
        f"?protocol_version=8&namespace=default&runner_key={key}"
    )


# trio-websocket's client leaves its TCP stream for the GC when the server closes first
# (aclose() returns early after an abnormal or server-initiated close); these two tests drive
# a raw trio-websocket client that the engine closes. The runner closes its own stream.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_no_init_frame_closes_with_timed_out_waiting_for_init(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_engine(options(tmp_path, init_timeout_ms=200)) as server:
            url = connect_url(server, "silent")
            async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                started = trio.current_time()
                try:
                    await ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    assert exc.reason is not None and exc.reason.code == 1011
                    assert (exc.reason.reason or "").startswith("ws.timed_out_waiting_for_init#")
                else:
                    raise AssertionError("expected the engine to close the socket")
                assert trio.current_time() - started >= 0.15
            assert server.engine.runners == {}


# trio-websocket's client leaves its TCP stream for the GC when the server closes first
# (aclose() returns early after an abnormal or server-initiated close); these two tests drive
# a raw trio-websocket client that the engine closes. The runner closes its own stream.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_missing_pongs_close_with_internal_error(tmp_path: Path) -> None:
    settings = {"ping_interval_ms": 50, "ping_timeout_ms": 400}
    with trio.fail_after(15):
        async with open_engine(options(tmp_path, **settings)) as server:
            # a well-behaved runner answers pings and stays connected meanwhile
            app = LifecycleApp()
            async with open_runner(runner_options(server), app, graceful_exit=False) as good:
                await good.wait_connected()
                url = connect_url(server, "mute")
                async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                    init = v8.ToServerInit(RUNNER, 1, 10, None, None)
                    await ws.send_message(codec.TO_SERVER.encode(init, 8))
                    reply = codec.TO_CLIENT.decode(await ws.get_message(), 8)  # type: ignore[arg-type]
                    assert isinstance(reply, v8.ToClientInit)
                    mute_id = reply.runner_id
                    opened_at = trio.current_time()
                    pings = 0
                    try:
                        while True:  # never answer
                            message = codec.TO_CLIENT.decode(await ws.get_message(), 8)  # type: ignore[arg-type]
                            pings += isinstance(message, v8.ToClientPing)
                    except trio_websocket.ConnectionClosed as exc:
                        assert exc.reason is not None and exc.reason.code == 1011
                        assert (exc.reason.reason or "").startswith("core.internal_error#")
                    # pings every 50 ms + U[0,128) ms jitter, closed after 400 ms without pong
                    assert pings >= 2
                    assert trio.current_time() - opened_at >= 0.35
                assert mute_id not in server.engine.sessions
                assert good.is_connected and good.connections == 1
                await good.shutdown(graceful=False)


# -- 4. draining ------------------------------------------------------------------------------


async def test_drain_stops_actors_reschedules_them_and_evicts_after_quiet_period(
    tmp_path: Path,
) -> None:
    settings = {"runner_lost_threshold_ms": 800, "ping_interval_ms": 100}
    with trio.fail_after(25):
        async with open_engine(options(tmp_path, **settings)) as server:
            api = client(server.endpoint)
            drained_app, other_app = LifecycleApp(), LifecycleApp()
            engine = server.engine
            async with trio.open_nursery() as nursery:
                drained_opts = runner_options(server, key="drained")
                async with open_runner(drained_opts, drained_app, graceful_exit=False) as drained:
                    await drained.wait_connected()
                    drained_id = drained.runner_id
                    assert drained_id is not None
                    quick = await call(api.create_actor, "echo", None, None, RUNNER)
                    stuck = await call(api.create_actor, "echo", None, b"block", RUNNER)
                    await until(lambda: len(drained_app.starts) == 2)
                    async with open_runner(
                        runner_options(server), other_app, graceful_exit=False
                    ) as other:
                        await other.wait_connected()
                        # ToServerStopping: the engine stops every actor of the runner
                        nursery.start_soon(drained.shutdown)
                        await until(lambda: engine.runners[drained_id].draining)
                        # the actor that stops promptly is rescheduled on the other runner
                        await until(lambda: len(other_app.starts) == 1)
                        assert other_app.starts[0].actor_id == quick["actor_id"]
                        assert engine.actors[quick["actor_id"]].runner_id == other.runner_id
                        assert engine.actors[stuck["actor_id"]].state == "stopping"
                        # the stuck one: after a quiet period the runner is expired and its
                        # connection closed with ws.eviction; the actor is rescheduled
                        await until(lambda: drained.last_close is not None)
                        assert drained.last_close is not None
                        assert drained.last_close.is_eviction
                        assert drained_id not in engine.runners
                        assert await queued(server, drained_id) == []
                        await until(lambda: len(other_app.starts) == 2)
                        assert other_app.starts[1].actor_id == stuck["actor_id"]
                        drained_app.release.set()
                        await other.shutdown(graceful=False)


# -- 5. crash policies --------------------------------------------------------------------------


async def test_crash_policies_and_graceful_exit(tmp_path: Path) -> None:
    with trio.fail_after(25):
        async with open_engine(options(tmp_path)) as server:
            api = client(server.endpoint)
            app = LifecycleApp()
            async with open_runner(runner_options(server), app, graceful_exit=False) as runner:
                await runner.wait_connected()
                ids = {}
                for policy in ("sleep", "restart", "destroy"):
                    actor = await call(api.create_actor, "echo", None, b"crash", RUNNER, policy)
                    ids[policy] = actor["actor_id"]
                # sleep: the crashed actor sleeps, then a request wakes it (generation 1)
                await until(lambda: state(server, ids["sleep"]) == "sleeping")
                status, body = await call(http_get, api.gateway_url(ids["sleep"], "/ping"))
                assert (status, body) == (200, b"pong 1")
                # restart: started again at once, without a request
                await until(lambda: state(server, ids["restart"]) == "running")
                assert server.engine.actors[ids["restart"]].generation == 1
                # destroy: destroyed, the gateway answers 404
                await until(lambda: state(server, ids["destroy"]) == "destroyed")
                status, body = await call(http_get, api.gateway_url(ids["destroy"], "/ping"))
                assert status == 404 and error_id(body) == "actor.not_found"
                # a stop with code OK and no sleep intent destroys the actor, whatever its policy
                status, _ = await call(http_get, api.gateway_url(ids["restart"], "/destroy"))
                assert status == 200
                await until(lambda: state(server, ids["restart"]) == "destroyed")
                status, body = await call(http_get, api.gateway_url(ids["restart"], "/ping"))
                assert status == 404 and error_id(body) == "actor.not_found"
                await runner.shutdown(graceful=False)


# -- 6. gateway header routing ------------------------------------------------------------------


async def test_gateway_header_routing(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_engine(options(tmp_path, admin_token="secret")) as server:
            api = client(server.endpoint, token="secret")
            app = LifecycleApp()
            opts = runner_options(server, token="secret")
            async with open_runner(opts, app, graceful_exit=False) as runner:
                await runner.wait_connected()
                actor = await call(api.create_actor, "echo", None, None, RUNNER)
                actor_id = actor["actor_id"]
                routed = {"x-rivet-target": "actor", "x-rivet-actor": actor_id, "x-custom": "1"}
                url = f"{server.endpoint}/request/ping?a=1&b=2"
                status, body = await call(request, url, routed)
                assert status == 200
                seen = json.loads(body)
                # the path is forwarded unchanged, with the x-rivet-* headers
                assert seen["path"] == "/request/ping?a=1&b=2"
                assert seen["headers"]["x-rivet-actor"] == actor_id
                assert seen["headers"]["x-rivet-target"] == "actor"
                assert seen["headers"]["x-custom"] == "1"
                status, body = await call(request, f"{server.endpoint}/request", routed)
                assert status == 200 and json.loads(body)["path"] == "/request"
                # only paths under /request are routed
                for path in ("/ping", "/requests", "/actors"):
                    status, body = await call(request, f"{server.endpoint}{path}", routed)
                    assert (status, error_id(body)) == (404, "guard.no_route"), path
                missing = {"x-rivet-target": "actor"}
                status, body = await call(request, f"{server.endpoint}/request/x", missing)
                assert (status, error_id(body)) == (400, "guard.missing_header")
                await runner.shutdown(graceful=False)


# -- 7. alarms ----------------------------------------------------------------------------------


async def test_alarm_wakes_a_sleeping_actor(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_engine(options(tmp_path)) as server:
            api = client(server.endpoint)
            app = LifecycleApp()
            async with open_runner(runner_options(server), app, graceful_exit=False) as runner:
                await runner.wait_connected()
                actor = await call(api.create_actor, "echo", None, None, RUNNER)
                actor_id = actor["actor_id"]
                await app.started.wait()
                status, _ = await call(http_get, api.gateway_url(actor_id, "/alarm?ms=700"))
                assert status == 200
                await until(lambda: state(server, actor_id) == "sleeping")
                alarm_ts = server.engine.actors[actor_id].alarm_ts
                assert alarm_ts is not None
                assert len(app.starts) == 1
                # woken by the alarm, not by a request, and not before its time
                await until(lambda: len(app.starts) == 2)
                assert app.start_times[1] >= alarm_ts
                assert app.starts[1].generation == 1
                await until(lambda: state(server, actor_id) == "running")
                assert server.engine.actors[actor_id].alarm_ts is None
                await runner.shutdown(graceful=False)


# -- KV ownership -----------------------------------------------------------------------------


async def test_kv_requests_run_only_for_actors_assigned_to_the_requesting_runner(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with open_engine(options(tmp_path)) as server:
            app = LifecycleApp()
            async with open_runner(runner_options(server), app, graceful_exit=False) as owner:
                await owner.wait_connected()
                actor = await call(client(server.endpoint).create_actor, "echo", "k", None, RUNNER)
                await app.started.wait()
                url = connect_url(server, "intruder")
                async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                    init = v8.ToServerInit(RUNNER, 1, 10, None, None)
                    await ws.send_message(codec.TO_SERVER.encode(init, 8))

                    async def kv(request_id: int, actor_id: str) -> v8.KvResponseData:
                        req = v8.ToServerKvRequest(actor_id, request_id, v8.KvGetRequest([b"k"]))
                        await ws.send_message(codec.TO_SERVER.encode(req, 8))
                        while True:
                            raw = await ws.get_message()
                            assert isinstance(raw, bytes)
                            msg = codec.TO_CLIENT.decode(raw, 8)
                            if isinstance(msg, v8.ToClientKvResponse):
                                assert msg.request_id == request_id
                                return msg.data

                    foreign = await kv(1, actor["actor_id"])
                    assert foreign == v8.KvErrorResponse("actor does not belong to runner")
                    missing = await kv(2, "0" * 30)
                    assert isinstance(missing, v8.KvErrorResponse)
                    assert missing.message
                # the owner's own KV still works
                handle = app.starts[-1]
                await handle.kv.put([(b"k", b"v")])
                assert await handle.kv.get_one(b"k") == b"v"
                await owner.shutdown(graceful=False)
