"""rivetpy actors on the real Rivet engine (protocol v7: no preload, startup through fallback
reads): every subsystem survives sleep and wake, a connection survives its actor sleeping."""

from __future__ import annotations

import trio

from rivetpy.actor import ActorApp
from rivetpy.client import Client
from rivetpy.testing.engine import RealEngine
from tests.actor.actors import Everything, Room
from tests.interop.support import connected_runner, in_thread, runner_options


async def _asleep(app: ActorApp, actor_id: str) -> None:
    inst = app.instance(actor_id)
    assert inst is not None
    inst.request_sleep()
    while app.instance(actor_id) is not None:
        await trio.sleep(0.02)


async def test_actors_on_the_real_engine(engine: RealEngine) -> None:
    app = ActorApp([Everything, Room])
    options = runner_options(engine.endpoint, actor_names=app.actor_names())
    api = engine.client()
    with trio.fail_after(90):
        async with (
            connected_runner(options, app) as runner,
            Client(engine.endpoint, runner_name=runner.options.runner_name) as client,
        ):
            await in_thread(lambda: api.wait_for_runner_config(runner.options.runner_name))
            h = await client.get_or_create("everything", "real")
            assert await h.action("add_note", "n1") == 1
            await h.action("enqueue", {"job": 7})
            assert await h.action("once", "s") == 1
            await h.action("kv_put", "k", "v")
            first = app.startups[-1]
            assert first.new_actor and not first.engine_preload
            # one batched get of the startup keys, one get of the SQLite file sizes; writes: the
            # collected init put, then the migration's pages
            assert first.kv_reads == 2 and first.kv_writes >= 2

            await _asleep(app, h.actor_id)
            assert await h.action("notes") == ["n1"]
            assert await h.action("take") == [{"job": 7}]
            assert await h.action("once", "s") == 1
            inst = app.instance(h.actor_id)
            assert inst is not None and inst.workflow.steps_run == 0
            assert await h.action("kv_get", "k") == "v"
            woke = app.startups[-1]
            assert not woke.new_actor and woke.generation > first.generation
            assert woke.unexpected_reads == {}  # the guard is armed only with a preload

            room = await client.get_or_create("room", "real")
            async with room.connect({"user": "ann"}) as ann:
                await ann.subscribe("message")
                assert await ann.action("say", "before") == 1
                await ann.next_event()
                await _asleep(app, room.actor_id)
                assert await ann.action("say", "after") == 2  # wakes the actor
                assert await ann.next_event() == ("message", ["ann", "after"])
                assert await ann.action("me") == {"user": "ann", "sent": 2}
