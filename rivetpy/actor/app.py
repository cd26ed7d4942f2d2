"""Hosts actor definitions on a runner: :class:`ActorApp` is the :class:`RunnerApp` that turns
start commands into :class:`~rivetpy.actor.instance.ActorInstance` objects."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from rivetpy.actor import router
from rivetpy.actor.definition import Actor
from rivetpy.actor.instance import ActorInstance
from rivetpy.actor.startup import start_instance
from rivetpy.protocol.events import StopReason
from rivetpy.runner.api import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    RunnerApp,
    WebSocket,
    WebSocketOpen,
)

log = logging.getLogger("rivetpy.actor.app")


@dataclass(frozen=True, slots=True)
class StartupReport:
    """What one actor start cost: wall time from the start command to ready, KV round trips
    before ready, and the guard's per-method counts of unexpected reads."""

    actor_id: str
    actor_name: str
    generation: int
    new_actor: bool
    engine_preload: bool
    seconds: float
    kv_reads: int
    kv_writes: int
    unexpected_reads: dict[str, int] = field(default_factory=dict)


class ActorApp(RunnerApp):
    def __init__(self, actors: Iterable[type[Actor[Any]]]) -> None:
        self.definitions: dict[str, type[Actor[Any]]] = {}
        for cls in actors:
            if not cls.name:
                raise ValueError(f"{cls.__qualname__} needs a name")
            if cls.name in self.definitions:
                raise ValueError(f"two actor definitions named {cls.name!r}")
            self.definitions[cls.name] = cls
        self.instances: dict[tuple[str, int], ActorInstance[Any]] = {}
        self.startups: list[StartupReport] = []
        self.started = trio.Event()  # set (and replaced) whenever an actor becomes ready

    def actor_names(self) -> dict[str, dict[str, Any]]:
        """``prepopulateActorNames`` metadata: per-actor preload budgets."""
        return {name: cls.options.preload.metadata() for name, cls in self.definitions.items()}

    def instance(self, actor_id: str) -> ActorInstance[Any] | None:
        found = [i for (aid, _), i in self.instances.items() if aid == actor_id]
        return found[-1] if found else None

    async def on_actor_start(self, actor: ActorHandle) -> None:
        cls = self.definitions.get(actor.name)
        if cls is None:
            raise LookupError(f"no actor definition named {actor.name!r}")
        began = trio.current_time()
        inst = ActorInstance(cls, actor)
        self.instances[(actor.actor_id, actor.generation)] = inst
        await start_instance(inst)
        inst.startup_seconds = trio.current_time() - began
        inst.ready.set()
        stats = inst.kv.stats
        self.startups.append(
            StartupReport(
                actor.actor_id,
                actor.name,
                actor.generation,
                inst.is_new,
                actor.preloaded_kv is not None,
                inst.startup_seconds,
                stats.reads,
                stats.writes,
                dict(inst.guard.counts),
            )
        )
        inst.start_background()
        for conn in inst.stale_conns:
            actor.nursery.start_soon(inst.run_hook_logged, "on_disconnect", conn)
        if inst.stale_conns:
            inst.request_save()
        self.started.set()
        self.started = trio.Event()

    async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
        inst = self.instances.pop((actor.actor_id, actor.generation), None)
        if inst is not None:
            await inst.stop()

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        inst = self.instances.get((actor.actor_id, actor.generation))
        if inst is None or inst.stopping:
            # the instance is stopping: the gateway retries this answer once the actor is back
            return HttpResponse(
                503,
                {"x-rivet-error": "runner.actor_not_found", "content-type": "text/plain"},
                b"actor is stopping",
            )
        return await router.serve_http(inst, request)

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        inst = self.instances.get((actor.actor_id, actor.generation))
        return inst is not None and router.can_hibernate(inst, request.path)

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        inst = self.instances.get((actor.actor_id, actor.generation))
        if inst is None:
            await ws.close(1011, "actor.stopping")
            return
        await router.serve_websocket(inst, ws)
