"""The engine core: namespaces, runners, actors, allocation, the durable command queue.

One :class:`Engine` owns the state of one embedded engine process. The in-memory records are
the working copy; every transition is written to the store in one transaction *before* its
effects (commands to runners, readiness) become visible, so an engine restart resumes from the
store: actors, runners (until their lost threshold passes), runner configs, actor KV and the
unacknowledged command queue survive. Transitions are serialized by one lock (an embedded
engine hosts few runners; simplicity wins over parallelism here).

Runner connections (:class:`Session`, implemented by :mod:`rivetpy.engine.runner_endpoint`)
register with :meth:`Engine.connect_runner` and receive commands through
:meth:`Session.deliver`, which never blocks: the session hydrates and writes them in order.

Errors raised to API callers: :class:`ApiError` (``group``, ``code``, HTTP ``status``).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from codec import v8
from rivetpy.engine.actor_names import parse_metadata, write_actor_name
from rivetpy.engine.config import PegboardConfig
from rivetpy.engine.ids import InvalidIdError, id_from_bytes, id_to_bytes, new_id
from rivetpy.engine.kv.actor_kv import ActorKv, read_entries
from rivetpy.engine.kv.entry import Entry
from rivetpy.engine.kv.layout import ActorKvLayout
from rivetpy.engine.state import (
    CRASH_POLICIES,
    ActorRecord,
    RunnerRecord,
    ack_commands,
    clear_commands,
    delete_runner,
    enqueue_command,
    load_all,
    put_actor,
    put_runner,
    put_runner_config,
    read_commands,
)
from rivetpy.engine.store.api import ReadTransaction, Store, Transaction
from rivetpy.protocol.engine import ConnectParams, QueuedCommand

log = logging.getLogger("rivetpy.engine.core")

DEFAULT_NAMESPACE = "default"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fixed_id(n: int, label: int) -> str:
    return id_from_bytes(bytes([1]) + n.to_bytes(16, "big") + label.to_bytes(2, "big"))


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Timing and limits of the engine (defaults from runner-lifecycle.md §2)."""

    pegboard: PegboardConfig = field(default_factory=PegboardConfig)
    runner_lost_threshold_ms: int = 15_000
    actor_stop_threshold_ms: int = 30_000
    ping_interval_ms: int = 3_000
    ping_timeout_ms: int = 15_000
    init_timeout_ms: int = 5_000
    admin_token: str | None = None
    datacenter_label: int = 1
    #: how long a gateway request waits for a sleeping or starting actor to become ready
    ready_timeout: float = 30.0
    #: hibernation.md §2: hibernating requests pinged within this window are listed at start
    hibernating_request_eligible_threshold_ms: int = 90_000
    #: hibernation.md §4: random delay (0 to this, exclusive, ms) before each keepalive upsert
    hibernating_request_keepalive_jitter_ms: int = 128
    #: hibernation.md §2, §9: bounds of a hibernatable socket's unacknowledged messages
    gateway_hws_max_pending_size: int = 128 * 1024 * 1024
    gateway_hws_max_pending_messages: int = 65_535
    gateway_hws_message_ack_timeout_ms: int = 30_000
    #: benchmark/test knob: added latency (seconds) before every runner KV request is served,
    #: to model a remote store (bench/startup.py)
    kv_round_trip_delay: float = 0.0


class ApiError(Exception):
    """An error of the public API: ``{group, code, message}`` with an HTTP status."""

    def __init__(self, status: int, group: str, code: str, message: str) -> None:
        super().__init__(f"{group}.{code}: {message}")
        self.status = status
        self.group = group
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"group": self.group, "code": self.code, "message": self.message}


def actor_not_found() -> ApiError:
    return ApiError(404, "actor", "not_found", "The actor does not exist or was destroyed.")


class Session(Protocol):
    """A live runner connection, as the core sees it."""

    runner_id: str

    def deliver(self, commands: list[QueuedCommand]) -> None:
        """Queue commands (stored form) for hydration and sending, in order; never blocks."""

    def evict(self) -> None:
        """Close the connection with 1000 ``ws.eviction`` (asynchronously)."""


@dataclass
class _Batch:
    """What one transition writes, and what it does once committed."""

    actors: dict[str, ActorRecord] = field(default_factory=dict)
    runners: dict[str, RunnerRecord] = field(default_factory=dict)
    deleted_runners: list[str] = field(default_factory=list)
    commands: list[tuple[str, QueuedCommand]] = field(default_factory=list)
    acks: list[tuple[str, v8.ActorCheckpoint]] = field(default_factory=list)
    cleared_queues: list[str] = field(default_factory=list)
    configs: list[tuple[str, str]] = field(default_factory=list)
    actor_names: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    stop_deadlines: list[tuple[str, int]] = field(default_factory=list)
    #: actors whose alarm timer is (re)armed once committed
    alarms: list[str] = field(default_factory=list)

    def write(self, tr: Transaction) -> None:
        for rid in self.cleared_queues:
            clear_commands(tr, rid)
        for rid in self.deleted_runners:
            delete_runner(tr, rid)
        for runner in self.runners.values():
            put_runner(tr, runner)
        for actor in self.actors.values():
            put_actor(tr, actor)
        for ns_id, name in self.configs:
            put_runner_config(tr, ns_id, name)
        for ns_id, name, metadata in self.actor_names:
            write_actor_name(tr, ns_id, name, metadata)
        for rid, cp in self.acks:
            ack_commands(tr, rid, cp)
        for rid, command in self.commands:
            enqueue_command(tr, rid, command)


class Engine:
    """The embedded engine's state machine over a store. Start it with ``nursery.start(run)``."""

    def __init__(self, store: Store, settings: EngineSettings | None = None) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self.kv = ActorKv(store)
        self.namespaces = {DEFAULT_NAMESPACE: _fixed_id(1, self.settings.datacenter_label)}
        self.actors: dict[str, ActorRecord] = {}
        self.runners: dict[str, RunnerRecord] = {}
        self.runner_configs: set[tuple[str, str]] = set()
        self.sessions: dict[str, Session] = {}
        #: commands replayed at (re)connect, per runner id (observability and tests)
        self.replayed: dict[str, int] = {}
        #: when each actor last crashed (Trio time) and why, so that a request that woke it
        #: fails at once instead of waking it again and again until the ready timeout
        self.crashes: dict[str, tuple[float, str]] = {}
        self._lock = trio.Lock()
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        #: last sign of life of a draining runner (drain start, events), for its quiet period
        self._drain_activity: dict[str, int] = {}
        #: the armed alarm timer of each actor (re-arming cancels the previous one)
        self._alarm_scopes: dict[str, trio.CancelScope] = {}
        #: callbacks run when a runner connection goes away (the gateway fails its requests)
        self.on_runner_gone: list[Callable[[str], None]] = []
        #: callbacks run (synchronously) after every committed transition and runner loss
        self.on_changed: list[Callable[[], None]] = []
        #: where runner tunnel replies go (set by the gateway)
        self.on_tunnel_message: Callable[[str, v8.ToServerTunnelMessage], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the durable state, arm lost timers for runners of a previous run, serve timers
        until cancelled."""

        async def body(tr: ReadTransaction) -> Any:
            return await load_all(tr)

        actors, runners, configs = await self.store.read(body)
        self.actors = {a.actor_id: a for a in actors}
        self.runners = {r.runner_id: r for r in runners}
        self.runner_configs = set(configs)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for rid in self.runners:
                nursery.start_soon(self._lost_timer, rid)
            for actor in self.actors.values():
                if actor.state == "stopping":
                    nursery.start_soon(self._stop_deadline, actor.actor_id, actor.generation)
                if actor.state == "sleeping" and actor.alarm_ts is not None:
                    self._arm_alarm(actor.actor_id)
            for runner in self.runners.values():
                if runner.draining:
                    self._drain_activity[runner.runner_id] = now_ms()
                    nursery.start_soon(self._drain_timer, runner.runner_id)
            log.info(
                "engine state loaded",
                extra={"actors": len(self.actors), "runners": len(self.runners)},
            )
            task_status.started()
            await trio.sleep_forever()

    def start_background(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` in the engine's nursery (cancelled when the engine stops). Raises
        :class:`RuntimeError` if the engine is not running."""
        if self._nursery is None:
            raise RuntimeError("the engine is not running")
        self._nursery.start_soon(fn)

    def namespace_id(self, name: str) -> str | None:
        return self.namespaces.get(name)

    def protocol_metadata(self) -> v8.ProtocolMetadata:
        s = self.settings
        return v8.ProtocolMetadata(s.runner_lost_threshold_ms, s.actor_stop_threshold_ms, None)

    async def _commit(self, batch: _Batch, deliveries: Sequence[tuple[str, QueuedCommand]]) -> None:
        async def body(tr: Transaction) -> None:
            batch.write(tr)

        await self.store.run(body)
        by_runner: dict[str, list[QueuedCommand]] = {}
        for rid, command in deliveries:
            by_runner.setdefault(rid, []).append(command)
        for rid, commands in by_runner.items():
            session = self.sessions.get(rid)
            if session is not None:
                session.deliver(commands)
        if self._nursery is not None:
            for actor_id, generation in batch.stop_deadlines:
                self._nursery.start_soon(self._stop_deadline, actor_id, generation)
            for actor_id in batch.alarms:
                self._arm_alarm(actor_id)
        self._notify_changed()

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        for callback in self.on_changed:
            callback()

    # -- commands and allocation ---------------------------------------------------------------
    def _queue(
        self,
        batch: _Batch,
        deliveries: list[tuple[str, QueuedCommand]],
        actor: ActorRecord,
        command: v8.Command,
    ) -> None:
        assert actor.runner_id is not None
        actor.command_index += 1
        queued = QueuedCommand(
            v8.ActorCheckpoint(actor.actor_id, actor.generation, actor.command_index), command
        )
        batch.commands.append((actor.runner_id, queued))
        deliveries.append((actor.runner_id, queued))
        batch.actors[actor.actor_id] = actor

    def _pick_runner(self, actor: ActorRecord) -> str | None:
        used: dict[str, int] = {}
        for other in self.actors.values():
            if other.runner_id is not None:
                used[other.runner_id] = used.get(other.runner_id, 0) + 1
        best: tuple[int, str] | None = None
        for rid in self.sessions:
            runner = self.runners.get(rid)
            if (
                runner is None
                or runner.draining
                or runner.namespace_id != actor.namespace_id
                or runner.name != actor.runner_name_selector
            ):
                continue
            free = runner.total_slots - used.get(rid, 0)
            if free > 0 and (best is None or free > best[0]):
                best = (free, rid)
        return None if best is None else best[1]

    def _allocate(
        self, batch: _Batch, deliveries: list[tuple[str, QueuedCommand]], actor: ActorRecord
    ) -> bool:
        batch.actors[actor.actor_id] = actor
        rid = self._pick_runner(actor)
        now = now_ms()
        if rid is None:
            actor.state = "pending"
            actor.pending_allocation_ts = actor.pending_allocation_ts or now
            return False
        actor.generation += 1
        actor.runner_id = rid
        actor.state = "starting"
        actor.command_index = -1
        actor.last_event_index = -1
        actor.stop_intent = ""
        actor.pending_allocation_ts = None
        actor.sleep_ts = None
        actor.connectable_ts = None
        self._queue(batch, deliveries, actor, v8.CommandStartActor(actor.config(), [], None))
        return True

    def _request_stop(
        self,
        batch: _Batch,
        deliveries: list[tuple[str, QueuedCommand]],
        actor: ActorRecord,
        intent: str,
    ) -> None:
        if actor.runner_id is None:
            return
        batch.actors[actor.actor_id] = actor
        if actor.state == "stopping":
            if intent == "destroy":
                actor.stop_intent = intent
            return
        actor.state = "stopping"
        actor.stop_intent = intent
        actor.connectable_ts = None
        self._queue(batch, deliveries, actor, v8.CommandStopActor())
        batch.stop_deadlines.append((actor.actor_id, actor.generation))

    def _destroy(self, batch: _Batch, actor: ActorRecord) -> None:
        self.crashes.pop(actor.actor_id, None)
        actor.state = "destroyed"
        actor.runner_id = None
        actor.connectable_ts = None
        actor.destroy_ts = actor.destroy_ts or now_ms()
        batch.actors[actor.actor_id] = actor

    def _after_stop(
        self,
        batch: _Batch,
        deliveries: list[tuple[str, QueuedCommand]],
        actor: ActorRecord,
        code: v8.StopCode | None,
    ) -> None:
        """The current allocation ended (stopped event, lost runner or missed deadline)."""
        intent = actor.stop_intent
        actor.runner_id = None
        actor.stop_intent = ""
        actor.connectable_ts = None
        batch.actors[actor.actor_id] = actor
        now = now_ms()
        if intent == "destroy":
            self._destroy(batch, actor)
        elif intent == "sleep":
            self._sleep(batch, actor, now)
        elif intent == "reschedule" or code is None:
            actor.reschedule_ts = now
            self._allocate(batch, deliveries, actor)
        elif code == v8.StopCode.OK or actor.crash_policy == "destroy":
            self._destroy(batch, actor)
        elif actor.crash_policy == "restart":
            actor.reschedule_ts = now
            self._allocate(batch, deliveries, actor)
        else:
            self._sleep(batch, actor, now)

    @staticmethod
    def _sleep(batch: _Batch, actor: ActorRecord, now: int) -> None:
        actor.state = "sleeping"
        actor.sleep_ts = now
        if actor.alarm_ts is not None:
            batch.alarms.append(actor.actor_id)

    # -- runners --------------------------------------------------------------------------------
    async def connect_runner(
        self, session: Session, params: ConnectParams, namespace_id: str, init: v8.ToServerInit
    ) -> tuple[str, list[QueuedCommand], list[tuple[str, int, int]]]:
        """Register a connection after its ``ToServerInit`` (runner-lifecycle.md §4.2).

        Returns the runner id (reused when a runner with the same namespace, name and key
        exists and has not expired), the missed commands to replay and the event-dedup seeds
        ``(actor id, generation, last event index)``. An older connection of the same runner is
        evicted.
        """
        now = now_ms()
        async with self._lock:
            batch = _Batch()
            deliveries: list[tuple[str, QueuedCommand]] = []
            existing = next(
                (
                    r
                    for r in self.runners.values()
                    if r.namespace_id == namespace_id
                    and r.name == init.name
                    and r.key == params.runner_key
                    and not r.draining
                ),
                None,
            )
            reuse = existing is not None and (
                existing.runner_id in self.sessions
                or now - existing.last_ping_ts <= self.settings.runner_lost_threshold_ms
            )
            if existing is not None and not reuse:
                self._expire_runner(batch, deliveries, existing.runner_id)
            rid = (
                existing.runner_id
                if reuse and existing is not None
                else new_id(self.settings.datacenter_label)
            )
            record = RunnerRecord(
                runner_id=rid,
                namespace_id=namespace_id,
                name=init.name,
                key=params.runner_key,
                version=init.version,
                total_slots=init.total_slots,
                protocol_version=params.protocol_version,
                create_ts=existing.create_ts if reuse and existing is not None else now,
                last_ping_ts=now,
                metadata=init.metadata,
            )
            batch.runners[rid] = record
            batch.configs.append((namespace_id, init.name))
            for name, actor_name in (init.prepopulate_actor_names or {}).items():
                batch.actor_names.append((namespace_id, name, parse_metadata(actor_name.metadata)))
            old = self.sessions.get(rid)
            self.runners[rid] = record
            self.runner_configs.add((namespace_id, init.name))
            self.sessions[rid] = session
            await self._commit(batch, deliveries)
            if old is not None and old is not session:
                log.info("evicting an older connection of the runner", extra={"runner_id": rid})
                old.evict()

            async def body(tr: ReadTransaction) -> list[QueuedCommand]:
                return await read_commands(tr, rid)

            missed = await self.store.read(body)
            self.replayed[rid] = self.replayed.get(rid, 0) + len(missed)
            seeds = [
                (a.actor_id, a.generation, a.last_event_index)
                for a in self.actors.values()
                if a.runner_id == rid
            ]
        log.info(
            "runner connected",
            extra={
                "runner_id": rid,
                "runner_name": init.name,
                "resumed": reuse,
                "missed": len(missed),
            },
        )
        return rid, missed, seeds

    async def runner_ready(self, runner_id: str) -> None:
        """The connection sent its init and replay: place pending actors on it."""
        async with self._lock:
            if runner_id not in self.sessions:
                return
            batch = _Batch()
            deliveries: list[tuple[str, QueuedCommand]] = []
            runner = self.runners[runner_id]
            for actor in sorted(self.actors.values(), key=lambda a: a.create_ts):
                if (
                    actor.state == "pending"
                    and actor.namespace_id == runner.namespace_id
                    and actor.runner_name_selector == runner.name
                ):
                    self._allocate(batch, deliveries, actor)
            if batch.actors:
                await self._commit(batch, deliveries)

    async def disconnect_runner(self, session: Session) -> None:
        rid = session.runner_id
        async with self._lock:
            if self.sessions.get(rid) is not session:
                return
            del self.sessions[rid]
            self._notify_changed()
        for callback in self.on_runner_gone:
            callback(rid)
        if self._nursery is not None:
            self._nursery.start_soon(self._lost_timer, rid)

    async def touch_runner(self, runner_id: str) -> None:
        """A ping round: refresh the runner's liveness (durably)."""
        async with self._lock:
            runner = self.runners.get(runner_id)
            if runner is None:
                return
            runner.last_ping_ts = now_ms()
            batch = _Batch(runners={runner_id: runner})
            await self._commit(batch, [])

    async def runner_stopping(self, runner_id: str) -> None:
        """``ToServerStopping``: drain (runner-lifecycle.md §12.2)."""
        async with self._lock:
            runner = self.runners.get(runner_id)
            if runner is None or runner.draining:
                return
            runner.draining = True
            batch = _Batch(runners={runner_id: runner})
            deliveries: list[tuple[str, QueuedCommand]] = []
            for actor in self.actors.values():
                if actor.runner_id == runner_id:
                    self._request_stop(batch, deliveries, actor, "reschedule")
            await self._commit(batch, deliveries)
            self._drain_activity[runner_id] = now_ms()
            if self._nursery is not None:
                self._nursery.start_soon(self._drain_timer, runner_id)

    async def _drain_timer(self, runner_id: str) -> None:
        """End a drain after ``runner_lost_threshold`` of quiet (no events from the runner):
        expire the runner (actors still on it are lost and rescheduled, its queue is deleted)
        and close its connection with ``ws.eviction`` (runner-lifecycle.md §12.2 step 3)."""
        threshold = self.settings.runner_lost_threshold_ms
        while True:
            runner = self.runners.get(runner_id)
            if runner is None or not runner.draining:
                self._drain_activity.pop(runner_id, None)
                return
            remaining = self._drain_activity.get(runner_id, 0) + threshold - now_ms()
            if remaining > 0:
                await trio.sleep(remaining / 1000 + 0.01)
                continue
            async with self._lock:
                if self.runners.get(runner_id) is not runner:
                    continue
                if now_ms() - self._drain_activity.get(runner_id, 0) < threshold:
                    continue
                log.info("drain finished", extra={"runner_id": runner_id})
                batch = _Batch()
                deliveries: list[tuple[str, QueuedCommand]] = []
                self._expire_runner(batch, deliveries, runner_id)
                await self._commit(batch, deliveries)
                session = self.sessions.get(runner_id)
            self._drain_activity.pop(runner_id, None)
            if session is not None:
                session.evict()
            return

    def _expire_runner(
        self, batch: _Batch, deliveries: list[tuple[str, QueuedCommand]], runner_id: str
    ) -> None:
        log.info("runner expired", extra={"runner_id": runner_id})
        self.runners.pop(runner_id, None)
        batch.deleted_runners.append(runner_id)
        batch.cleared_queues.append(runner_id)
        for actor in list(self.actors.values()):
            if actor.runner_id == runner_id:
                self._after_stop(batch, deliveries, actor, None)

    async def _lost_timer(self, runner_id: str) -> None:
        threshold = self.settings.runner_lost_threshold_ms
        while True:
            runner = self.runners.get(runner_id)
            if runner is None or runner_id in self.sessions:
                return
            remaining = runner.last_ping_ts + threshold - now_ms()
            if remaining > 0 and not runner.draining:
                await trio.sleep(remaining / 1000 + 0.01)
                continue
            async with self._lock:
                if runner_id in self.sessions or self.runners.get(runner_id) is not runner:
                    return
                if not runner.draining and now_ms() - runner.last_ping_ts <= threshold:
                    continue
                batch = _Batch()
                deliveries: list[tuple[str, QueuedCommand]] = []
                self._expire_runner(batch, deliveries, runner_id)
                await self._commit(batch, deliveries)
            return

    def _arm_alarm(self, actor_id: str) -> None:
        """(Re)start the actor's alarm timer (replacing an armed one)."""
        if self._nursery is None:
            return
        previous = self._alarm_scopes.pop(actor_id, None)
        if previous is not None:
            previous.cancel()
        scope = trio.CancelScope()
        self._alarm_scopes[actor_id] = scope
        self._nursery.start_soon(self._alarm_timer, actor_id, scope)

    async def _alarm_timer(self, actor_id: str, scope: trio.CancelScope) -> None:
        """Wake a sleeping actor at its alarm time (``EventActorSetAlarm``). An alarm that is
        due while the actor is awake waits until it sleeps (it is re-armed then); a firing
        alarm is cleared."""
        try:
            with scope:
                while True:
                    actor = self.actors.get(actor_id)
                    if actor is None or actor.alarm_ts is None:
                        return
                    alarm_ts = actor.alarm_ts
                    remaining = alarm_ts - now_ms()
                    if remaining > 0:
                        await trio.sleep(remaining / 1000)
                        continue
                    if actor.state != "sleeping":
                        return
                    async with self._lock:
                        if actor.alarm_ts != alarm_ts or actor.state != "sleeping":
                            continue
                        log.info("alarm fired, waking actor", extra={"actor_id": actor_id})
                        actor.alarm_ts = None
                        batch = _Batch()
                        deliveries: list[tuple[str, QueuedCommand]] = []
                        self._allocate(batch, deliveries, actor)
                        await self._commit(batch, deliveries)
                    return
        finally:
            if self._alarm_scopes.get(actor_id) is scope:
                del self._alarm_scopes[actor_id]

    async def _stop_deadline(self, actor_id: str, generation: int) -> None:
        await trio.sleep(self.settings.actor_stop_threshold_ms / 1000)
        async with self._lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.generation != generation or actor.state != "stopping":
                return
            log.warning("actor did not stop in time", extra={"actor_id": actor_id})
            batch = _Batch()
            deliveries: list[tuple[str, QueuedCommand]] = []
            code = v8.StopCode.ERROR
            self._after_stop(batch, deliveries, actor, code)
            await self._commit(batch, deliveries)

    # -- runner traffic -------------------------------------------------------------------------
    async def handle_events(self, runner_id: str, events: Sequence[v8.EventWrapper]) -> None:
        """Apply new events of a runner; events of stale allocations are ignored."""
        if runner_id in self._drain_activity:
            self._drain_activity[runner_id] = now_ms()
        async with self._lock:
            batch = _Batch()
            deliveries: list[tuple[str, QueuedCommand]] = []
            ignored = 0
            for wrapper in events:
                cp = wrapper.checkpoint
                actor = self.actors.get(cp.actor_id)
                if (
                    actor is None
                    or actor.runner_id != runner_id
                    or actor.generation != cp.generation
                    or cp.index <= actor.last_event_index
                ):
                    ignored += 1
                    continue
                actor.last_event_index = cp.index
                batch.actors[actor.actor_id] = actor
                self._apply_event(batch, deliveries, actor, wrapper.inner)
            if ignored:
                log.debug("ignored stale events", extra={"count": ignored})
            if batch.actors:
                await self._commit(batch, deliveries)

    def _apply_event(
        self,
        batch: _Batch,
        deliveries: list[tuple[str, QueuedCommand]],
        actor: ActorRecord,
        event: v8.Event,
    ) -> None:
        if isinstance(event, v8.EventActorStateUpdate):
            if isinstance(event.state, v8.ActorStateRunning):
                if actor.state == "starting":
                    actor.state = "running"
                    actor.connectable_ts = now_ms()
                    actor.start_ts = actor.start_ts or actor.connectable_ts
            else:
                if event.state.code == v8.StopCode.ERROR:
                    self.crashes[actor.actor_id] = (
                        trio.current_time(),
                        event.state.message or "no message",
                    )
                self._after_stop(batch, deliveries, actor, event.state.code)
        elif isinstance(event, v8.EventActorIntent):
            if actor.state in ("starting", "running"):
                intent = "sleep" if isinstance(event.intent, v8.ActorIntentSleep) else "stop"
                self._request_stop(batch, deliveries, actor, intent)
        else:
            actor.alarm_ts = event.alarm_ts
            batch.alarms.append(actor.actor_id)

    async def ack_commands(self, runner_id: str, checkpoints: Sequence[v8.ActorCheckpoint]) -> None:
        """Prune acknowledged commands (same actor and generation, ``index <=``)."""
        if not checkpoints:
            return
        batch = _Batch(acks=[(runner_id, cp) for cp in checkpoints])

        async def body(tr: Transaction) -> None:
            batch.write(tr)

        await self.store.run(body)

    async def handle_kv(
        self, runner_id: str, actor_id: str, data: v8.KvRequestData
    ) -> v8.KvResponseData:
        """Run a KV request of a runner (runner-lifecycle.md §8.2)."""
        try:
            id_to_bytes(actor_id)
        except InvalidIdError as exc:
            return v8.KvErrorResponse(str(exc))
        actor = self.actors.get(actor_id)
        if actor is None:
            return v8.KvErrorResponse("actor does not exist")
        if actor.runner_id != runner_id:
            return v8.KvErrorResponse("actor does not belong to runner")
        if self.settings.kv_round_trip_delay > 0:
            await trio.sleep(self.settings.kv_round_trip_delay)
        return await self.kv.handle(actor_id, data)

    # -- public API -------------------------------------------------------------------------------
    def _namespace(self, name: str | None) -> str:
        ns_id = self.namespaces.get(name or DEFAULT_NAMESPACE)
        if ns_id is None:
            raise ApiError(400, "namespace", "not_found", f"namespace {name!r} does not exist")
        return ns_id

    async def create_actor(
        self,
        namespace: str | None,
        name: str,
        key: str | None,
        input: bytes | None,
        runner_name_selector: str,
        crash_policy: str,
    ) -> ActorRecord:
        ns_id = self._namespace(namespace)
        if crash_policy not in CRASH_POLICIES:
            raise ApiError(400, "api", "invalid_body", f"invalid crash_policy {crash_policy!r}")
        async with self._lock:
            if (ns_id, runner_name_selector) not in self.runner_configs:
                raise ApiError(
                    400,
                    "actor",
                    "no_runner_config_configured",
                    f"no runner config for {runner_name_selector!r}",
                )
            if key is not None and any(
                a.namespace_id == ns_id
                and a.name == name
                and a.key == key
                and a.state != "destroyed"
                for a in self.actors.values()
            ):
                raise ApiError(400, "actor", "duplicate_key", "an actor with that key exists")
            actor = ActorRecord(
                actor_id=new_id(self.settings.datacenter_label),
                namespace_id=ns_id,
                name=name,
                key=key,
                input_b64=None if input is None else base64.b64encode(input).decode(),
                runner_name_selector=runner_name_selector,
                crash_policy=crash_policy,
                create_ts=now_ms(),
            )
            self.actors[actor.actor_id] = actor
            batch = _Batch()
            deliveries: list[tuple[str, QueuedCommand]] = []
            self._allocate(batch, deliveries, actor)
            await self._commit(batch, deliveries)
            return actor

    def get_actor(self, actor_id: str) -> ActorRecord | None:
        return self.actors.get(actor_id)

    def list_actors(
        self,
        namespace: str | None,
        *,
        name: str | None = None,
        key: str | None = None,
        actor_ids: Sequence[str] = (),
        include_destroyed: bool = False,
    ) -> list[ActorRecord]:
        ns_id = self._namespace(namespace)
        if not actor_ids and name is None:
            raise ApiError(400, "api", "invalid_query", "`name` is required without `actor_ids`")
        out = []
        for actor in self.actors.values():
            if actor.namespace_id != ns_id:
                continue
            if actor_ids and actor.actor_id not in actor_ids:
                continue
            if name is not None and actor.name != name:
                continue
            if key is not None and actor.key != key:
                continue
            if actor.state == "destroyed" and not include_destroyed:
                continue
            out.append(actor)
        out.sort(key=lambda a: a.create_ts, reverse=True)
        return out

    async def destroy_actor(self, namespace: str | None, actor_id: str) -> None:
        ns_id = self._namespace(namespace)
        async with self._lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.namespace_id != ns_id or actor.state == "destroyed":
                raise actor_not_found()
            batch = _Batch()
            deliveries: list[tuple[str, QueuedCommand]] = []
            if actor.runner_id is not None:
                self._request_stop(batch, deliveries, actor, "destroy")
            else:
                self._destroy(batch, actor)
            await self._commit(batch, deliveries)

    async def kv_get(self, actor_id: str, key: bytes) -> Entry | None:
        if actor_id not in self.actors:
            raise actor_not_found()
        layout = ActorKvLayout(actor_id)

        async def body(tr: ReadTransaction) -> Entry | None:
            return (await read_entries(tr, layout, [key]))[0]

        return await self.store.read(body)

    # -- gateway --------------------------------------------------------------------------------
    async def wait_ready(
        self, actor_id: str, timeout: float | None = None, *, since: float | None = None
    ) -> tuple[str, int]:
        """Wake the actor if it sleeps and wait until it runs on a connected runner.

        Returns ``(runner id, generation)``. Raises :class:`ApiError` ``actor.not_found``,
        503 ``actor.crashed`` if the actor crashed (e.g. its start failed) after ``since``
        (Trio time; default: now), or, after ``timeout`` seconds, 503 ``actor.not_ready``.
        """
        now = trio.current_time()
        since = now if since is None else since
        deadline = now + (timeout or self.settings.ready_timeout)
        while True:
            async with self._lock:
                actor = self.actors.get(actor_id)
                if actor is None or actor.state == "destroyed":
                    raise actor_not_found()
                crash = self.crashes.get(actor_id)
                if crash is not None and crash[0] >= since:
                    raise ApiError(503, "actor", "crashed", f"the actor crashed: {crash[1]}")
                if (
                    actor.state == "running"
                    and actor.runner_id is not None
                    and actor.runner_id in self.sessions
                ):
                    return actor.runner_id, actor.generation
                if actor.state in ("sleeping", "pending"):
                    batch = _Batch()
                    deliveries: list[tuple[str, QueuedCommand]] = []
                    was_sleeping = actor.state == "sleeping"
                    if self._allocate(batch, deliveries, actor) or was_sleeping:
                        await self._commit(batch, deliveries)
                changed = self._changed
            with trio.move_on_at(deadline):
                await changed.wait()
            if trio.current_time() >= deadline:
                raise ApiError(
                    503, "actor", "not_ready", f"actor {actor_id} did not become ready in time"
                )

    def session(self, runner_id: str) -> Session | None:
        return self.sessions.get(runner_id)

    def changed(self) -> trio.Event:
        """An event set at the next committed transition (take it *before* reading state, then
        wait on it, so that no transition is missed)."""
        return self._changed

    def actor_ready(self, actor_id: str) -> tuple[str, int] | None:
        """``(runner id, generation)`` if the actor is ready for gateway traffic right now: not
        sleeping, running, with a runner that is connected (hibernation.md §6.2 step 3, §12 #5).
        Never wakes the actor."""
        actor = self.actors.get(actor_id)
        if (
            actor is None
            or actor.state != "running"
            or actor.runner_id is None
            or actor.runner_id not in self.sessions
        ):
            return None
        return actor.runner_id, actor.generation

    def actor_attached(self, actor_id: str, runner_id: str, generation: int) -> bool:
        """Whether the allocation ``(runner id, generation)`` of the actor still lives (it has
        not stopped, slept, been rescheduled or destroyed)."""
        actor = self.actors.get(actor_id)
        return (
            actor is not None
            and actor.runner_id == runner_id
            and actor.generation == generation
            and actor.state in ("starting", "running", "stopping")
        )

    def actor_gone(self, actor_id: str) -> bool:
        """The actor does not exist or was destroyed."""
        actor = self.actors.get(actor_id)
        return actor is None or actor.state == "destroyed"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


__all__ = [
    "DEFAULT_NAMESPACE",
    "ApiError",
    "Engine",
    "EngineSettings",
    "Session",
]
