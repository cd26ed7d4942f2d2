"""One running actor instance: state and its throttled saves, alarms, idle sleep, stop.

Startup is in :mod:`rivetpy.actor.startup`, request routing in :mod:`rivetpy.actor.router`.
Everything the instance runs lives in the runner's per-actor nursery (``handle.nursery``), so
it is cancelled when the actor stops.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
import time
import uuid
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from rivetpy.actor import keys
from rivetpy.actor.connections import Conn, ConnectionManager
from rivetpy.actor.definition import Actor, UserError, actions_of, call_maybe_async
from rivetpy.actor.kv import InstanceKv, UserKv
from rivetpy.actor.persist import PersistedActor, ScheduledAlarm, StateEncodingError
from rivetpy.actor.queue import Queue
from rivetpy.actor.round_trips import RoundTripGuard
from rivetpy.actor.wire import ActorError, action_not_found, bad_request, internal_error
from rivetpy.actor.workflow import Workflow
from rivetpy.runner.api import ActorHandle

if TYPE_CHECKING:
    from rivetpy.actor.database import Database

log = logging.getLogger("rivetpy.actor")
S = TypeVar("S")

_current_conn: contextvars.ContextVar[Conn | None] = contextvars.ContextVar(
    "rivetpy_current_conn", default=None
)

#: a hibernatable connection's unsaved message bytes that force an immediate save (and ack)
ACK_BYTES = 500_000
#: max entries per KV put (engine limit)
PUT_BATCH = 128


class Schedule:
    """Scheduled action calls that survive sleep: the engine wakes the actor for them."""

    def __init__(self, instance: ActorInstance[Any]) -> None:
        self._instance = instance
        self.changed = trio.Event()

    def at(self, ts_ms: int, action: str, *args: Any) -> str:
        """Call ``action(*args)`` at ``ts_ms`` (ms since the epoch); returns the alarm id."""
        inst = self._instance
        if action not in inst.actions:
            raise ValueError(f"no action named {action!r}")
        alarm = ScheduledAlarm(str(uuid.uuid4()), int(ts_ms), action, list(args))
        inst.record.alarms.append(alarm)
        inst.record.alarms.sort(key=lambda a: (a.ts_ms, a.id))
        self._changed()
        return alarm.id

    def after(self, seconds: float, action: str, *args: Any) -> str:
        return self.at(int(time.time() * 1000 + seconds * 1000), action, *args)

    def cancel(self, alarm_id: str) -> bool:
        alarms = self._instance.record.alarms
        kept = [a for a in alarms if a.id != alarm_id]
        if len(kept) == len(alarms):
            return False
        self._instance.record.alarms = kept
        self._changed()
        return True

    def list(self) -> list[ScheduledAlarm]:
        return list(self._instance.record.alarms)

    def _changed(self) -> None:
        inst = self._instance
        inst.sync_engine_alarm()
        inst.request_save(immediate=True)
        self.changed.set()
        self.changed = trio.Event()


class ActorInstance(Generic[S]):
    def __init__(self, definition: type[Actor[S]], handle: ActorHandle) -> None:
        self.definition = definition
        self.handle = handle
        self.options = definition.options
        self.actor_id = handle.actor_id
        self.key = handle.key
        self.name = handle.name
        self.actions = actions_of(definition)
        self.guard = RoundTripGuard(self.actor_id, self.name)
        self.kv = InstanceKv(handle.kv, self.guard)
        self.user_kv = UserKv(self.kv)
        self.queue = Queue(self.kv)
        self.workflow = Workflow(self.kv)
        self.connections = ConnectionManager()
        self.schedule = Schedule(self)
        self.record = PersistedActor(initialized=False)
        self.vars: Any = None
        self.inspector_token = ""
        self.is_new = False
        #: persisted connections whose socket the engine no longer lists (removed at start)
        self.stale_conns: list[Conn] = []
        self._db: Database | None = None
        self._saved_record: bytes | None = None
        self._engine_alarm: int | None = None
        self._save_wanted = trio.Event()
        self._save_lock = trio.Lock()
        self._last_save = -math.inf
        self._active = 0
        self._idle_since = trio.current_time()
        self._activity = trio.Event()
        self.ready = trio.Event()
        self.stopping = False
        self.destroying = False
        self.start_began = trio.current_time()
        self.startup_seconds: float | None = None
        self.actor: Actor[S] = definition()
        self.actor._instance = self

    # -- state ------------------------------------------------------------------------------------
    @property
    def state(self) -> S:
        return self.record.state  # type: ignore[no-any-return]

    @state.setter
    def state(self, value: S) -> None:
        self.record.state = value
        self.request_save()

    @property
    def database(self) -> Database:
        if self._db is None:
            raise RuntimeError(f"actor {self.name!r} has no database (set database = True)")
        return self._db

    def current_conn(self) -> Conn | None:
        return _current_conn.get()

    def request_save(self, *, immediate: bool = False) -> None:
        """Ask the saver to write what changed, within ``state_save_interval`` (or now)."""
        if immediate:
            self._last_save = -math.inf
        self._save_wanted.set()

    async def save_state(self, *, force: bool = False) -> None:
        """Write the actor record (if changed) and changed connection records, then acknowledge
        the gateway messages those records now cover."""
        async with self._save_lock:
            entries: list[tuple[bytes, bytes]] = []
            try:
                raw = self.record.encode()
            except StateEncodingError:
                log.exception("actor state cannot be saved", extra={"actor_id": self.actor_id})
                raw = None
            if raw is not None and (force or raw != self._saved_record):
                entries.append((keys.PERSIST_DATA, raw))
            conn_puts, deletes = self.connections.pending_writes()
            entries.extend((key, value) for _, key, value in conn_puts)
            for i in range(0, len(entries), PUT_BATCH):
                await self.kv.put(entries[i : i + PUT_BATCH])
            if deletes:
                await self.kv.delete(deletes)
                self.connections.deleted_written(deletes)
            if raw is not None and entries and entries[0][0] == keys.PERSIST_DATA:
                self._saved_record = raw
            for conn, _, value in conn_puts:
                conn.mark_saved(value)
                index = conn.ack_due()
                if index is not None and conn.ws is not None and not conn.ws.closed:
                    conn.ws.ack(index)
                    conn.acked_index = index
            self._last_save = trio.current_time()

    def mark_saved_record(self, raw: bytes) -> None:
        self._saved_record = raw

    async def _saver(self) -> None:
        while True:
            await self._save_wanted.wait()
            self._save_wanted = trio.Event()
            await trio.sleep_until(self._last_save + self.options.state_save_interval)
            try:
                await self.save_state()
            except Exception:
                log.exception("saving actor state failed", extra={"actor_id": self.actor_id})
                await trio.sleep(self.options.state_save_interval)
                self._save_wanted.set()

    # -- activity and sleep -----------------------------------------------------------------------
    def begin_activity(self) -> None:
        self._active += 1
        self._activity.set()
        self._activity = trio.Event()

    def end_activity(self) -> None:
        self._active -= 1
        self._idle_since = trio.current_time()
        self._activity.set()
        self._activity = trio.Event()

    async def _idle_sleeper(self) -> None:
        after = self.options.sleep_after
        if after is None:
            return
        while True:
            changed = self._activity
            if self._active == 0:
                deadline = self._idle_since + after
                if trio.current_time() >= deadline:
                    log.info("actor idle; going to sleep", extra={"actor_id": self.actor_id})
                    self.request_sleep()
                    return
                with trio.move_on_at(deadline):
                    await changed.wait()
            else:
                await changed.wait()

    def request_sleep(self) -> None:
        if not self.stopping:
            self.handle.sleep()

    def request_destroy(self) -> None:
        self.destroying = True
        self.handle.destroy()

    # -- alarms -----------------------------------------------------------------------------------
    def sync_engine_alarm(self) -> None:
        first = self.record.alarms[0].ts_ms if self.record.alarms else None
        if first != self._engine_alarm:
            self.handle.set_alarm(first)
            self._engine_alarm = first

    async def _alarm_loop(self) -> None:
        while True:
            changed = self.schedule.changed
            alarms = self.record.alarms
            if not alarms:
                await changed.wait()
                continue
            alarm = alarms[0]
            delay = alarm.ts_ms / 1000 - time.time()
            if delay > 0:
                with trio.move_on_after(delay):
                    await changed.wait()
                continue
            try:
                await self.call_action(alarm.action, alarm.args, None)
            except ActorError as exc:
                log.warning(
                    "scheduled action failed",
                    extra={"actor_id": self.actor_id, "action": alarm.action, "error": str(exc)},
                )
            self.schedule.cancel(alarm.id)

    # -- actions and hooks ------------------------------------------------------------------------
    async def call_action(self, name: str, args: list[Any], conn: Conn | None) -> Any:
        """Run an action; every failure becomes an :class:`ActorError` for the caller."""
        if name not in self.actions:
            raise action_not_found(name)
        method = getattr(self.actor, name)
        try:
            inspect.signature(method).bind(*args)
        except TypeError as exc:
            raise bad_request(f"wrong arguments for action {name!r}: {exc}") from None
        token = _current_conn.set(conn)
        self.begin_activity()
        try:
            with trio.fail_after(self.options.action_timeout):
                return await call_maybe_async(method, *args)
        except UserError as exc:
            raise exc.to_actor_error() from None
        except ActorError:
            raise
        except trio.TooSlowError:
            raise ActorError(
                408, "actor", "action_timed_out", f"action {name!r} timed out"
            ) from None
        except Exception:
            log.exception("action failed", extra={"actor_id": self.actor_id, "action": name})
            raise internal_error() from None
        finally:
            _current_conn.reset(token)
            self.end_activity()
            self.request_save()

    async def run_hook(self, hook: str, *args: Any) -> Any:
        """Call a user hook (with the startup guard paused); exceptions propagate."""
        with self.guard.paused():
            return await call_maybe_async(getattr(self.actor, hook), *args)

    async def run_hook_logged(self, hook: str, *args: Any) -> Any:
        try:
            return await self.run_hook(hook, *args)
        except Exception:
            log.exception("actor hook failed", extra={"actor_id": self.actor_id, "hook": hook})
            return None

    # -- lifecycle --------------------------------------------------------------------------------
    def start_background(self) -> None:
        nursery = self.handle.nursery
        nursery.start_soon(self._saver)
        nursery.start_soon(self._idle_sleeper)
        nursery.start_soon(self._alarm_loop)
        if type(self.actor).run is not Actor.run:
            nursery.start_soon(self._run_user)

    async def _run_user(self) -> None:
        try:
            await self.run_hook("run")
        except Exception:
            log.exception("actor run() failed", extra={"actor_id": self.actor_id})

    async def stop(self) -> None:
        """Sleep or stop: ``on_sleep`` (or ``on_destroy``), then the final save; hibernatable
        connections stay persisted, the others are told they are disconnected."""
        if self.stopping:
            return
        self.stopping = True
        with trio.move_on_after(self.options.sleep_timeout) as scope:
            scope.shield = True
            if self.destroying:
                await self.run_hook_logged("on_destroy")
            elif self.ready.is_set():
                await self.run_hook_logged("on_sleep")
            for conn in self.connections.all():
                if not conn.hibernatable:
                    self.connections.remove(conn)
                    await self.run_hook_logged("on_disconnect", conn)
            try:
                if self.destroying:
                    await self.kv.drop()
                elif self.ready.is_set():
                    await self.save_state()
            except Exception:
                log.exception("final save failed", extra={"actor_id": self.actor_id})
            if self._db is not None:
                try:
                    await self._db.close()
                except Exception:
                    log.exception("closing the database failed", extra={"actor_id": self.actor_id})
        if scope.cancelled_caught:
            log.error("actor stop timed out", extra={"actor_id": self.actor_id})
