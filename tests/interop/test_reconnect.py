"""The runner's connection to the engine is cut (through a loopback TCP proxy the test controls)
and restored: no duplicate actor start, no lost event."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from rivetpy.runner import Runner, StopReason
from rivetpy.testing.engine import EngineClient, RealEngine
from tests.interop.proxy import TcpProxy
from tests.interop.support import (
    CountingConnector,
    InteropApp,
    connected_runner,
    create_actor,
    http,
    in_thread,
    runner_options,
)

#: engine runner-lost threshold is 15 s; every outage here is far shorter, so the engine keeps
#: the runner id and the actors on it
OUTAGE = 1.5


@asynccontextmanager
async def runner_behind_proxy(
    engine: RealEngine, app: InteropApp
) -> AsyncIterator[tuple[TcpProxy, Runner, CountingConnector]]:
    connector = CountingConnector()
    async with trio.open_nursery() as nursery:
        proxy = TcpProxy(engine.ports.guard)
        await nursery.start(proxy.run)
        options = runner_options(f"http://127.0.0.1:{proxy.port}")
        async with connected_runner(options, app, connect=connector) as runner:
            yield proxy, runner, connector
        nursery.cancel_scope.cancel()


async def outage(proxy: TcpProxy, runner: Runner) -> None:
    """Cut the runner's connection and refuse reconnects (until :func:`restore`)."""
    await proxy.refuse()
    proxy.cut()
    while runner.is_connected:
        await trio.sleep(0.01)


async def restore(proxy: TcpProxy, runner: Runner) -> None:
    await proxy.accept()
    # reconnect backoff: 1-1.25 s (refused), then 2-2.5 s
    with trio.fail_after(10):
        await runner.wait_connected()


async def test_connection_cut_mid_traffic_and_restored(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(60):
        async with runner_behind_proxy(engine, app) as (proxy, runner, connector):
            actor_id = (await create_actor(client, runner))["actor_id"]
            handle = await app.started(actor_id)
            runner_id = runner.runner_id
            url = client.gateway_url(actor_id, "/ping")
            for _ in range(5):
                assert (await http("GET", url)).status == 200
            # Background traffic across the cut: (started, status or None on timeout).
            outcomes: list[tuple[float, int | None]] = []

            async def request() -> None:
                started = trio.current_time()
                try:
                    # Requests the gateway routed to the runner while it was disconnected are
                    # lost in the engine (no retry, no error): bound them.
                    status: int | None = (await http("GET", url, timeout=2)).status
                except OSError:
                    status = None
                outcomes.append((started, status))

            async with trio.open_nursery() as traffic:

                async def load() -> None:
                    while True:
                        traffic.start_soon(request)
                        await trio.sleep(0.05)

                traffic.start_soon(load)
                await trio.sleep(0.3)
                await outage(proxy, runner)
                await trio.sleep(OUTAGE)
                assert runner.last_error is not None and "connect" in runner.last_error
                assert runner.connections == 1 and len(connector.attempts) >= 2
                await restore(proxy, runner)
                reconnected = trio.current_time()
                await trio.sleep(1.5)
                traffic.cancel_scope.cancel()

            assert runner.connections == 2 and proxy.accepted >= 2
            assert runner.runner_id == runner_id, "reconnect within the lost threshold"
            # (The engine subscribes to the runner's messages just after the handshake: allow
            # that moment before requiring every request to succeed.)
            after = [status for started, status in outcomes if started > reconnected + 0.5]
            assert len(after) >= 5 and set(after) == {200}, outcomes
            for _ in range(5):
                assert (await http("GET", url)).status == 200
            # The engine replayed the unacked start command: deduplicated, the actor kept running.
            assert app.starts == [handle] and app.stops == []
            assert runner.actor(actor_id) is handle
            await handle.kv.put([(b"after", b"reconnect")])
            assert await in_thread(lambda: client.kv_get(actor_id, b"after")) == b"reconnect"


async def kv_value(client: EngineClient, actor_id: str, key: bytes) -> bytes | None:
    value: bytes | None = await in_thread(lambda: client.kv_get(actor_id, key))
    return value


async def test_events_issued_while_disconnected_take_effect(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(60):
        async with runner_behind_proxy(engine, app) as (proxy, runner, _):
            actor_id = (await create_actor(client, runner))["actor_id"]
            handle = await app.started(actor_id)
            await outage(proxy, runner)

            # While disconnected: a KV write (queued), an alarm and a sleep intent (events kept
            # in history and resent after the handshake).
            put_done = trio.Event()

            async def put() -> None:
                await handle.kv.put([(b"offline", b"write")])
                put_done.set()

            alarm_in = 3.0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(put)
                handle.set_alarm(int((time.time() + alarm_in) * 1000))
                alarm_at = trio.current_time() + alarm_in
                handle.sleep()
                await trio.sleep(0.3)
                assert app.stops == [] and not put_done.is_set()
                await restore(proxy, runner)
            assert await kv_value(client, actor_id, b"offline") == b"write"
            assert await app.stopped(actor_id) == (handle, StopReason.COMMAND)
            # The alarm wakes the sleeping actor (no request involved).
            woken = await app.started(actor_id, 2)
            assert trio.current_time() >= alarm_at - 0.5
            assert woken.generation > handle.generation
            await trio.sleep(0.3)
            assert len(app.starts) == 2 and len(app.stops) == 1
            assert runner.connections == 2
            assert (await http("GET", client.gateway_url(actor_id, "/ping"))).status == 200
            assert len(app.starts) == 2
