"""Actor lifecycle of the Python runner on the real engine: start, sleep and wake, destroy,
graceful shutdown."""

from __future__ import annotations

import trio

from rivetpy.runner import StopReason
from rivetpy.testing.engine import RealEngine
from tests.interop.support import (
    ACTOR_NAME,
    InteropApp,
    connected_runner,
    create_actor,
    gateway_ws,
    get_actor,
    http,
    runner_options,
)


async def test_actor_created_through_the_api_starts_on_the_python_runner(
    engine: RealEngine,
) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            assert runner.runner_id
            created = await create_actor(client, runner, key="k-1", input=b"\x00input\xff")
            actor_id = created["actor_id"]
            handle = await app.started(actor_id)
            assert (handle.name, handle.key, handle.input) == (ACTOR_NAME, "k-1", b"\x00input\xff")
            assert handle.hibernating_requests == ()
            assert runner.actor(actor_id) is handle
            assert created["runner_name_selector"] == runner.options.runner_name
            # ActorStateRunning made the engine mark it connectable.
            with trio.fail_after(5):
                while (await get_actor(client, actor_id))["connectable_ts"] is None:
                    await trio.sleep(0.02)
            assert len(app.starts) == 1 and app.stops == []


async def test_sleep_by_intent_then_wake_by_http(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner, input=b"same input"))["actor_id"]
            first = await app.started(actor_id)
            first.sleep()
            stopped, reason = await app.stopped(actor_id)
            assert stopped is first and reason is StopReason.COMMAND
            # on_actor_stop runs before the instance is removed
            while runner.actor(actor_id) is not None:
                await trio.sleep(0.01)
            assert (await get_actor(client, actor_id))["sleep_ts"] is not None

            result = await http("GET", client.gateway_url(actor_id, "/ping"))
            assert (result.status, result.body) == (200, b"pong")
            second = await app.started(actor_id, 2)
            assert second.generation > first.generation
            assert second.input == b"same input"
            assert len(app.starts_of(actor_id)) == 2


async def test_sleep_by_intent_then_wake_by_websocket(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            # Two sleep/wake cycles of the same actor (the engine backs off the second wake;
            # the test engine lowers that backoff to 100 ms).
            for cycle in (1, 2):
                handle = await app.started(actor_id, cycle)
                handle.sleep()
                assert await app.stopped(actor_id, cycle) == (handle, StopReason.COMMAND)
                async with gateway_ws(client.gateway_url(actor_id, "/ws")) as ws:
                    await ws.send_message(f"wake {cycle}")
                    assert await ws.get_message() == f"wake {cycle}"
                woken = await app.started(actor_id, cycle + 1)
                assert woken.generation > handle.generation
            assert len(app.starts_of(actor_id)) == 3


async def test_destroy_through_the_api(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            handle = await app.started(actor_id)
            assert (await http("GET", client.gateway_url(actor_id, "/ping"))).status == 200
            await trio.to_thread.run_sync(client.destroy_actor, actor_id)
            assert await app.stopped(actor_id) == (handle, StopReason.COMMAND)
            assert (await get_actor(client, actor_id))["destroy_ts"] is not None
            gone = await http("GET", client.gateway_url(actor_id, "/ping"))
            assert gone.status == 404, gone
            assert gone.json()["code"] == "not_found"
            assert len(app.starts_of(actor_id)) == 1


async def test_destroy_by_intent(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            # crash_policy "restart" would restart an actor stopped with an error: destroy must
            # report a clean stop.
            actor_id = (await create_actor(client, runner, crash_policy="restart"))["actor_id"]
            handle = await app.started(actor_id)
            handle.destroy()
            assert await app.stopped(actor_id) == (handle, StopReason.COMMAND)
            with trio.fail_after(5):
                while (await get_actor(client, actor_id))["destroy_ts"] is None:
                    await trio.sleep(0.02)
            gone = await http("GET", client.gateway_url(actor_id, "/ping"))
            assert gone.status == 404, gone
            await trio.sleep(0.3)
            assert len(app.starts_of(actor_id)) == 1, "a destroyed actor must not restart"


async def test_graceful_shutdown_lets_the_engine_stop_the_actors(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            ids = [(await create_actor(client, runner))["actor_id"] for _ in range(2)]
            for actor_id in ids:
                await app.started(actor_id)
            started = trio.current_time()
            await runner.shutdown(graceful=True)
            elapsed = trio.current_time() - started
            # The engine stopped each actor (CommandStopActor), not the runner locally.
            assert sorted((h.actor_id, r) for h, r in app.stops) == sorted(
                (a, StopReason.COMMAND) for a in ids
            )
            assert not runner.is_connected
            assert runner.actor(ids[0]) is None and runner.actor(ids[1]) is None
            assert elapsed < 10, elapsed
            for actor_id in ids:
                # Drained actors are put to sleep, not destroyed ...
                with trio.fail_after(10):
                    while (state := await get_actor(client, actor_id))["sleep_ts"] is None:
                        await trio.sleep(0.05)
                assert state["destroy_ts"] is None, state
        # ... and the next request wakes them on the next runner of that name.
        successor = InteropApp()
        options = runner_options(engine.endpoint, runner_name=runner.options.runner_name)
        async with connected_runner(options, successor):
            for actor_id in ids:
                result = await http("GET", client.gateway_url(actor_id, "/ping"))
                assert (result.status, result.body) == (200, b"pong")
                moved = await successor.started(actor_id)
                assert moved.generation > app.starts_of(actor_id)[0].generation
