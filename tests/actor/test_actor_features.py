"""Actor features end to end on the embedded engine: connections and events, errors, alarms,
idle sleep, destroy, inspector, queue over HTTP, persistence across sleep and engine restart."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from rivetpy.actor.definition import Actor
from rivetpy.client import ActorCallError, Client, EngineRequestError
from rivetpy.dev import open_dev
from tests.actor.actors import BrokenWake, Counter, Everything, Room, Scheduler, Sleepy
from tests.actor.support import sleep_actor, wait_state

ALL: list[type[Actor[Any]]] = [Counter, Everything, Room, Scheduler, Sleepy, BrokenWake]


async def test_connections_events_params_and_conn_state(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            room = await c.get_or_create("room", "lobby")
            async with room.connect({"user": "ann"}) as ann, room.connect({"user": "bob"}) as bob:
                assert ann.connection_id and bob.connection_id != ann.connection_id
                await bob.subscribe("message")
                assert await ann.action("say", "hi") == 1
                assert await bob.next_event() == ("message", ["ann", "hi"])
                assert await ann.action("me") == {"user": "ann", "sent": 1}
                assert await room.action("say", "over http") == 2
                assert await bob.next_event() == ("message", ["http", "over http"])
                await bob.unsubscribe("message")
                await ann.action("say", "unheard")
                with trio.move_on_after(0.2):
                    await bob.next_event()
                    raise AssertionError("an unsubscribed connection got an event")
            while (await room.action("stats"))["left"] < 2:
                await trio.sleep(0.02)
            assert await room.action("stats") == {"joined": 2, "left": 2}
            with pytest.raises(ActorCallError) as refused:
                async with room.connect({"nobody": True}):
                    pass
            assert (refused.value.group, refused.value.code) == ("user", "no_user")


async def test_errors_reach_callers_and_do_not_kill_the_runner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(30):
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            counter = await c.get_or_create("counter", "e")
            with pytest.raises(ActorCallError) as user:
                await counter.action("fail", "user")
            assert (user.value.group, user.value.code, user.value.message) == (
                "user",
                "forbidden",
                "not allowed",
            )
            assert user.value.metadata == {"why": "test"}
            with caplog.at_level(logging.ERROR), pytest.raises(ActorCallError) as internal:
                await counter.action("fail", "internal")
            assert internal.value.code == "internal_error"
            assert "boom" not in internal.value.message  # details stay in the logs
            assert any("boom" in (r.exc_text or "") for r in caplog.records)
            with pytest.raises(ActorCallError) as missing:
                await counter.action("nope")
            assert missing.value.code == "action_not_found"
            with pytest.raises(ActorCallError) as arity:
                await counter.action("increment", 1, 2, 3)
            assert arity.value.code == "invalid"
            async with counter.connect() as conn:
                with pytest.raises(ActorCallError) as over_ws:
                    await conn.action("fail", "user")
                assert over_ws.value.code == "forbidden"
                assert await conn.action("increment") == 1  # the connection survives
            # a hook that raises fails that actor's start, not the runner
            broken = await c.create("broken-wake", "b")
            with trio.fail_after(5), pytest.raises(ActorCallError) as crashed:
                await broken.action("ping")  # fails at once, not after the ready timeout
            assert (crashed.value.group, crashed.value.code) == ("actor", "crashed")
            assert "on_wake exploded" in crashed.value.message
            assert any("on_wake exploded" in (r.exc_text or "") for r in caplog.records)
            assert await counter.action("increment") == 2


async def test_alarms_fire_while_awake_and_wake_a_sleeping_actor(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            sched = await c.get_or_create("scheduler", "s")
            await sched.action("later", 0.1, "awake")
            while await sched.action("fired") != ["awake"]:
                await trio.sleep(0.05)
            await sched.action("later", 1.0, "asleep")
            await sleep_actor(dev, sched.actor_id)
            await wait_state(dev, sched.actor_id, "running")  # the engine's alarm woke it
            inst = None
            while inst is None or "asleep" not in inst.record.state["fired"]:
                await trio.sleep(0.05)
                inst = dev.app.instance(sched.actor_id)
            assert await sched.action("fired") == ["awake", "asleep"]


async def test_idle_sleep_saves_state_then_destroy_removes_everything(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            sleepy = await c.get_or_create("sleepy", "z")
            assert await sleepy.action("counts") == {"wakes": 1, "sleeps": 0}
            await wait_state(dev, sleepy.actor_id, "sleeping")  # idle for 0.3 s
            assert await sleepy.action("counts") == {"wakes": 2, "sleeps": 1}
            await sleepy.action("destroy_me")
            await wait_state(dev, sleepy.actor_id, "destroyed")
            assert await dev.engine.engine.kv_get(sleepy.actor_id, b"\x01") is None
            with pytest.raises(ActorCallError):
                await sleepy.action("counts")
            assert await c.get("sleepy", "z") is None


async def test_inspector_and_queue_over_http(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            everything = await c.get_or_create("everything", "q")
            assert await everything.send("jobs", {"n": 1}) == 1
            assert await everything.send("jobs", {"n": 2}) == 2
            await everything.action("once", "s1")
            inst = dev.app.instance(everything.actor_id)
            assert inst is not None
            with pytest.raises(ActorCallError) as denied:
                await everything.inspect("wrong")
            assert denied.value.code == "unauthorized"
            view = await everything.inspect(inst.inspector_token)
            assert view["queue_size"] == 2 and view["workflow_steps"] == ["s1"]
            assert view["state"] == {"notes": 0, "blob": ""}
            assert await everything.action("take") == [{"n": 1}, {"n": 2}]
            token = inst.inspector_token
            await sleep_actor(dev, everything.actor_id)
            assert (await everything.inspect(token))["queue_size"] == 0  # token is durable


async def test_every_subsystem_survives_an_engine_restart(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            h = await c.get_or_create("everything", "r")
            await h.action("add_note", "before restart")
            await h.action("enqueue", "job")
            assert await h.action("once", "w") == 1
            await h.action("kv_put", "user-key", "user-value")
            counter = await c.get_or_create("counter", "r", {"start": 41})
            await counter.action("increment")
            actor_id = h.actor_id
        async with open_dev(ALL, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            h = c.actor(actor_id)
            assert await h.action("notes") == ["before restart"]
            assert await h.action("take") == ["job"]
            assert await h.action("once", "w") == 1
            inst = dev.app.instance(actor_id)
            assert inst is not None and inst.workflow.steps_run == 0  # not re-run
            assert await h.action("kv_get", "user-key") == "user-value"
            assert await (await c.get_or_create("counter", "r")).action("get") == 42
            with pytest.raises(EngineRequestError):
                await c.create("counter", "r")
