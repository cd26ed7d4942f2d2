"""The gateway's WebSocket relay, hibernation included (hibernation.md §3, §4, §6, §9).

One :class:`GatewaySocket` per client WebSocket, driving a sans-IO
:class:`~rivetpy.engine.hibernation.SocketState` (indexes, pending buffer, phases). Three tasks
per socket, inside the request's nursery, whatever the number of sleeps and wakes::

    GatewaySocket.run                  the request's nursery
      client reader                    every client message goes through the state machine:
                                       published now (active) or buffered (hibernating)
      keepalive                        from the moment the socket may hibernate until it ends:
                                       upserts the request's last-ping entry (the first one at
                                       once, then every eligible_threshold / 2, >= 1 ms)
      lifecycle (the run task itself)  active phase -> hibernation -> resume -> active ...

Each phase is a loop of the lifecycle task woken by callbacks (runner replies queued by the
gateway, engine transitions, the client reader, the gateway-wide timers); whichever condition
is seen first ends the phase, as a race of watchers would:

* active: forward runner replies to the client (a send in progress is abandoned when the phase
  ends); the actor detached, the client closed, and (hibernatable) a keepalive failure or the
  oldest unacknowledged message older than the ack timeout (checked every ``timeout / 4``);
* hibernation: the actor ready or gone, a client message or close, a keepalive failure.

The keepalive task runs :func:`~rivetpy.engine.hibernation_keepalive.keepalive`; the ack checks
run on the gateway's one :class:`~rivetpy.engine.hibernation_keepalive.Timers` task, armed only
while published messages await an ack.

How a socket ends, and what happens to its persisted entry (``hibernation_store``):

* the actor goes away (stops, sleeps, its runner connection closes, or the runner closes the
  socket with ``hibernate``): a hibernatable socket hibernates, any other is closed with 1011
  ``actor.stopped`` / ``guard.service_unavailable``;
* hibernation ends with *continue*, never deleting the entry: if the client sent a message
  (which wakes the actor) the entry is **refreshed** *before* the wake, so the start command
  hydrated for it lists the socket (the ordering hazard of §6.2 step 5); if the actor became
  ready by itself its start was hydrated while the entry was live;
* any terminal end (client close, runner close, errors, limits): the entry is deleted;
* the keepalive failing ends the socket with an error: it is logged with its traceback, kept in
  :attr:`GatewaySocket.error`, and the client is closed with 1011
  ``guard.hibernation_keepalive_failed``;
* the engine shutting down (cancellation): the client is closed with 1001 and the entry is kept,
  as if the process died (edge case 3: it ages out of the eligibility window).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import trio
import trio_websocket

from codec import v8
from rivetpy.engine.core import ApiError, dumps
from rivetpy.engine.gateway import RETRY_DELAY, TunnelClosedError
from rivetpy.engine.hibernation import (
    ACK_TIMEOUT_REASON,
    PENDING_LIMIT_REASON,
    Limits,
    PendingLimitError,
    PendingMessage,
    Phase,
    SocketState,
    keepalive_interval_ms,
)
from rivetpy.engine.hibernation_keepalive import KeepaliveError, Timer, keepalive

if TYPE_CHECKING:
    from rivetpy.engine.gateway import Gateway, _Pending

log = logging.getLogger("rivetpy.engine.gateway")

T = TypeVar("T")

#: hibernation.md §2 ``gateway_websocket_open_timeout_ms``
OPEN_TIMEOUT = 15.0
KEEPALIVE_FAILED_REASON = "guard.hibernation_keepalive_failed"
#: accept replies from any runner while detached (hibernating); acks are applied regardless
ANY_RUNNER = "*"


@dataclass(frozen=True, slots=True)
class End:
    """How a socket ends: the close sent to the client, whether the runner is told (with the
    client's own close code when the client closed), and the error to report, if any."""

    code: int
    reason: str
    tell_runner: bool = True
    error: BaseException | None = None


class _Hibernate:
    """The active phase ended because the actor went away from a hibernatable socket."""


class _Continue:
    """Hibernation ended: resume on the (woken) actor. ``wake``: a client message ended it and
    the actor has to be woken (else the actor became ready by itself)."""

    def __init__(self, wake: bool) -> None:
        self.wake = wake


HIBERNATE = _Hibernate()
WAKE = _Continue(True)
READY = _Continue(False)


class _Wakeup:
    """A resettable flag one task waits on (the lifecycle task's wakeup): what a fresh
    :class:`trio.Event` per wait would do, without its objects (set, closure, cells) per wait,
    whose survivors would land in the collector's old generations on every wake."""

    __slots__ = ("_abort_fn", "_flag", "_task")

    def __init__(self) -> None:
        self._flag = False
        self._task: trio.lowlevel.Task | None = None
        self._abort_fn = self._abort

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        self._flag = False

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)

    def wait(self) -> Awaitable[None]:
        """Wait until set (a checkpoint if it is already). Await the result at once."""
        if self._flag:
            return trio.lowlevel.checkpoint()
        assert self._task is None, "one waiter at a time"
        self._task = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort_fn)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED


async def race(*fns: Callable[[], Awaitable[T]]) -> T:
    """Run ``fns`` concurrently; the first to return wins and the others are cancelled."""
    winner: list[T] = []
    async with trio.open_nursery() as nursery:

        async def run(fn: Callable[[], Awaitable[T]]) -> None:
            value = await fn()
            if not winner:
                winner.append(value)
            nursery.cancel_scope.cancel()

        for fn in fns:
            nursery.start_soon(run, fn)
    return winner[0]


class GatewaySocket:
    """One client WebSocket to an actor, gateway side (see the module docstring)."""

    def __init__(self, gateway: Gateway, actor_id: str, path: str, headers: dict[str, str]) -> None:
        self.gateway = gateway
        self.engine = gateway.engine
        self.actor_id = actor_id
        self.path = path
        self.headers = headers
        settings = self.engine.settings
        self.limits = Limits(
            settings.gateway_hws_max_pending_size, settings.gateway_hws_max_pending_messages
        )
        self.state = SocketState(self.limits, first_index=gateway.first_message_index)
        self.request_id = b""
        self._pending: _Pending | None = None
        self.generation = -1
        self.client: trio_websocket.WebSocketConnection | None = None
        self._client_end: End | None = None
        self._client_done = trio.Event()
        #: a client message arrived while hibernating (reset when a hibernation begins)
        self._client_message = False
        #: what :meth:`on_actor_changed` watches for: "active" (the allocation ending),
        #: "hibernating" (the actor ready or gone), or nothing
        self._watching = ""
        self._wakeup = _Wakeup()
        #: the forwarding send in progress in the active phase (cancelled when the phase ends)
        self._send_scope: trio.CancelScope | None = None
        #: whether the keepalive task should be running (from the first hibernatable phase)
        self._keepalive_wanted = False
        self._keepalive_changed = trio.Event()
        self._keepalive_error: KeepaliveError | None = None
        self._ack_timer: Timer | None = None
        self._ack_overdue = False
        self._ack_checking = False
        self._ack_grid = 0.0
        self._last_upsert: float | None = None
        #: completed hibernations (observability, tests)
        self.hibernations = 0
        self._resumed: trio.Event | None = None
        #: the error the socket ended with (also logged)
        self.error: BaseException | None = None
        self.ended: End | None = None

    @property
    def resumed(self) -> trio.Event:
        """Set at the next resume (observability, tests, benchmarks; created on demand)."""
        if self._resumed is None:
            self._resumed = trio.Event()
        return self._resumed

    @property
    def key(self) -> tuple[bytes, bytes]:
        return self.gateway.gateway_id, self.request_id

    @property
    def pending(self) -> _Pending:
        assert self._pending is not None
        return self._pending

    # -- open --------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Wait for the actor, send the open and wait for the runner's reply; retried while the
        actor refuses (not hosted yet) until the ready timeout. Raises :class:`ApiError`."""
        gateway = self.gateway
        deadline = trio.current_time() + self.engine.settings.ready_timeout
        while True:
            remaining = deadline - trio.current_time()
            runner_id, generation = await self.engine.wait_ready(
                self.actor_id, max(remaining, 0.001)
            )
            self.state = SocketState(self.limits, first_index=gateway.first_message_index)
            request_id, pending = gateway._open(runner_id)
            reply: v8.ToServerTunnelMessageKind | None = None
            try:
                open_message = v8.ToClientWebSocketOpen(self.actor_id, self.path, self.headers)
                gateway._send(request_id, pending, open_message, self.state.open())
                with trio.move_on_after(OPEN_TIMEOUT):
                    reply = await gateway._next(pending)
            except TunnelClosedError:
                reply = None
            if isinstance(reply, v8.ToServerWebSocketOpen):
                self.request_id, self._pending, self.generation = request_id, pending, generation
                pending.on_ack = self._on_ack
                pending.notify = self._poke
                self.state.opened(reply.can_hibernate)
                gateway.sockets[request_id] = self
                return
            gateway._close(request_id)
            if trio.current_time() >= deadline:
                raise ApiError(503, "guard", "service_unavailable", "actor refused the socket")
            await trio.sleep(RETRY_DELAY)

    def _on_ack(self, index: int) -> None:
        self.state.ack(index)

    def _poke(self) -> None:
        """Wake the lifecycle task to re-check its phase's conditions."""
        self._wakeup.set()

    def _interrupt(self) -> None:
        """Something ending the active phase happened: wake the lifecycle task and abandon its
        forwarding send, if one is in progress."""
        self._wakeup.set()
        if self._send_scope is not None:
            self._send_scope.cancel()

    def on_actor_changed(self) -> None:
        """An engine transition was committed: wake this socket's watcher if it concerns it."""
        if self._watching == "active":
            pending = self._pending
            if pending is not None and not self.engine.actor_attached(
                self.actor_id, pending.runner_id, self.generation
            ):
                self._interrupt()
        elif self._watching == "hibernating" and (
            self.engine.actor_ready(self.actor_id) is not None
            or self.engine.actor_gone(self.actor_id)
        ):
            self._wakeup.set()

    # -- run ---------------------------------------------------------------------------------------
    async def run(self, client: trio_websocket.WebSocketConnection) -> None:
        """Relay until the socket ends; never raises for the socket's own failures (they are
        logged and kept in :attr:`error`)."""
        self.client = client
        end: End | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._client_reader)
                nursery.start_soon(self._keepalive_task)
                end = await self._lifecycle()
                nursery.cancel_scope.cancel()
        finally:
            if end is None:  # cancelled from outside: the engine is shutting down
                with trio.CancelScope(shield=True):
                    self.state.close()
                    self._release()
                    # the connection's reader is being cancelled too: no close reply will come
                    await self._close_client(1001, "guard.going_away", timeout=0.2)
        await self._finish(end)

    def _release(self) -> None:
        self.gateway.sockets.pop(self.request_id, None)
        self.gateway._close(self.request_id)

    async def _close_client(self, code: int, reason: str, timeout: float = 2.0) -> None:
        client = self.client
        if client is None:
            return
        with trio.move_on_after(timeout) as scope:
            scope.shield = True
            await client.aclose(code, reason)

    async def _finish(self, end: End) -> None:
        error = end.error
        index = self.state.close()
        if end.tell_runner and index is not None and self.pending.runner_id != ANY_RUNNER:
            code, reason = end.code, end.reason
            if self._client_end is not None and self._client_end is end:
                code, reason = self._client_end.code, self._client_end.reason
            with contextlib.suppress(TunnelClosedError):
                self.gateway._send(
                    self.request_id, self.pending, v8.ToClientWebSocketClose(code, reason), index
                )
        self._release()
        if self.state.hibernatable:
            try:
                await self.gateway.writer.delete(self.actor_id, *self.key)
            except KeepaliveError as exc:
                log.error("could not delete a hibernating request", extra={"error": str(exc)})
                error = error or exc
        if error is not None:
            self.error = error
            log.error(
                "gateway WebSocket ended with an error",
                exc_info=error,
                extra={"actor_id": self.actor_id, "request_id": self.request_id.hex()},
            )
        self.ended = end
        await self._close_client(end.code, end.reason)

    # -- client side -------------------------------------------------------------------------------
    async def _client_reader(self) -> None:
        client = self.client
        assert client is not None
        try:
            while True:
                raw = await client.get_message()
                data, binary = (raw.encode(), False) if isinstance(raw, str) else (bytes(raw), True)
                try:
                    message = self.state.client_message(data, binary, trio.current_time())
                except PendingLimitError as exc:
                    log.warning(
                        "hibernatable socket buffer full",
                        extra={"actor_id": self.actor_id, "error": str(exc)},
                    )
                    self._client_end = End(1011, PENDING_LIMIT_REASON)
                    self._client_done.set()
                    self._interrupt()
                    return
                if message is not None:
                    self._publish(message)
                else:
                    self._client_message = True
                    self._wakeup.set()
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            code = reason.code if reason is not None else 1005
            self._client_end = End(code, (reason.reason if reason else None) or "")
            self._client_done.set()
            self._interrupt()

    def _publish(self, message: PendingMessage) -> None:
        """Send to the bound runner; if it is gone the message stays pending (hibernatable) and
        the runner-gone marker triggers the replay, or ends the socket (not hibernatable)."""
        kind = v8.ToClientWebSocketMessage(message.data, message.binary)
        with contextlib.suppress(TunnelClosedError):
            self.gateway._send(self.request_id, self.pending, kind, message.index)
        self._schedule_ack_check()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def _lifecycle(self) -> End:
        while True:
            outcome = await self._active()
            if isinstance(outcome, End):
                return outcome
            end = await self._flush_runner()
            if end is not None:
                return end
            self.pending.runner_id = ANY_RUNNER
            hibernated = await self._hibernate()
            if hibernated is not None:
                return hibernated
            ready = self.engine.actor_ready(self.actor_id)
            if ready is None:
                woken = await race(self._wait_ready, self._watch_client_end)
                if isinstance(woken, End):
                    return woken
                ready = woken
            self._resume(*ready)

    async def _active(self) -> End | _Hibernate:
        hibernatable = self.state.hibernatable
        if hibernatable:
            self._start_keepalive()
            self._arm_ack_check()
        self._watching = "active"
        try:
            while True:
                self._wakeup.clear()
                outcome = await self._forward_runner()
                if outcome is not None:
                    return outcome
                if self._client_done.is_set():
                    assert self._client_end is not None
                    return self._client_end
                if self._keepalive_error is not None:
                    return End(1011, KEEPALIVE_FAILED_REASON, error=self._keepalive_error)
                if self._ack_overdue:
                    log.warning(
                        "hibernatable socket: runner did not ack in time",
                        extra={"actor_id": self.actor_id, "request_id": self.request_id.hex()},
                    )
                    return End(1011, ACK_TIMEOUT_REASON)
                if not self.engine.actor_attached(
                    self.actor_id, self.pending.runner_id, self.generation
                ):
                    if hibernatable:
                        return HIBERNATE
                    return End(1011, "actor.stopped", tell_runner=False)
                await self._wakeup.wait()
        finally:
            self._watching = ""
            self._stop_timers()

    def _keepalive_interval(self) -> int:
        return keepalive_interval_ms(self.engine.settings.hibernating_request_eligible_threshold_ms)

    def _jitter(self) -> int:
        jitter = self.engine.settings.hibernating_request_keepalive_jitter_ms
        return min(jitter, self._keepalive_interval())

    async def _upsert(self) -> None:
        await self.gateway.writer.upsert(self.actor_id, *self.key)
        self._last_upsert = trio.current_time()

    def _next_tick(self) -> float:
        """The keepalive cadence runs on across phases: the next upsert is one interval after
        the last one (at once if there was none), not at every phase change."""
        if self._last_upsert is None:
            return trio.current_time()
        return self._last_upsert + self._keepalive_interval() / 1000

    def _start_keepalive(self) -> None:
        """Start the keepalive (hibernation.md §4) when the socket first may hibernate; it then
        runs through every phase until the socket ends (its nursery is cancelled before the
        entry is deleted). A failure is kept in ``_keepalive_error`` and ends the phase."""
        if self._keepalive_wanted:
            return
        self._keepalive_error = None
        self._keepalive_wanted = True
        self._keepalive_changed.set()

    async def _keepalive_task(self) -> None:
        """The request's keepalive task: runs :func:`keepalive` once started (see
        :meth:`_start_keepalive`). The first upsert is immediate (no jitter), so a socket is
        listed by a start command from the moment it may hibernate."""
        while True:
            if not self._keepalive_wanted:
                self._keepalive_changed = trio.Event()
                await self._keepalive_changed.wait()
                continue
            try:
                if self._last_upsert is None:
                    await self._upsert_or_raise()
                await keepalive(
                    self._upsert,
                    self._keepalive_interval(),
                    jitter_ms=self._jitter(),
                    first_tick=self._next_tick(),
                )
            except KeepaliveError as exc:
                self._keepalive_wanted = False
                self._keepalive_failed(exc)

    async def _upsert_or_raise(self) -> None:
        try:
            await self._upsert()
        except KeepaliveError:
            raise
        except Exception as exc:
            raise KeepaliveError(f"keepalive upsert failed: {exc}") from exc

    def _keepalive_failed(self, error: KeepaliveError) -> None:
        self._keepalive_error = error
        self._interrupt()

    def _ack_timeout(self) -> float:
        return self.engine.settings.gateway_hws_message_ack_timeout_ms / 1000

    def _arm_ack_check(self) -> None:
        """The active phase's ack check (hibernation.md §9): every ``timeout / 4`` (>= 10 ms)
        from the phase start, whether the oldest published pending message waited longer than
        the ack timeout. A check only runs while published messages await an ack (one with
        nothing pending cannot find one overdue): :meth:`_publish` arms it on the same grid."""
        self._ack_overdue = False
        self._ack_grid = trio.current_time()
        self._ack_checking = True
        self._schedule_ack_check()

    def _schedule_ack_check(self) -> None:
        if not self._ack_checking or self._ack_timer is not None or not self.state.has_pending:
            return
        period = max(self._ack_timeout() / 4, 0.01)
        elapsed = trio.current_time() - self._ack_grid
        when = self._ack_grid + (math.floor(elapsed / period) + 1) * period
        self._ack_timer = self.gateway.timers.call_at(when, self._check_acks)

    def _check_acks(self) -> None:
        self._ack_timer = None
        if self.state.ack_overdue(trio.current_time(), self._ack_timeout()):
            self._ack_overdue = True
            self._interrupt()
        else:
            self._schedule_ack_check()

    def _stop_timers(self) -> None:
        self._ack_checking = False
        self.gateway.timers.cancel(self._ack_timer)
        self._ack_timer = None

    async def _forward_runner(self) -> End | _Hibernate | None:
        """Forward the runner's queued replies; a send in progress is abandoned if the phase
        ends meanwhile (:meth:`_interrupt`)."""
        while True:
            try:
                kind = self.pending.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return None
            outcome = await self._from_runner(kind, interruptible=True)
            if outcome is not None:
                return outcome

    async def _from_runner(
        self, kind: v8.ToServerTunnelMessageKind | None, *, interruptible: bool = False
    ) -> End | _Hibernate | None:
        if kind is None:  # the runner connection went away
            if self.state.hibernatable:
                return HIBERNATE
            return End(1011, "guard.service_unavailable", tell_runner=False)
        if isinstance(kind, v8.ToServerWebSocketMessage):
            client = self.client
            assert client is not None
            data = kind.data if kind.binary else kind.data.decode()
            # a closed client is reported by the reader
            with contextlib.suppress(trio_websocket.ConnectionClosed):
                if interruptible:
                    with trio.CancelScope() as scope:
                        self._send_scope = scope
                        try:
                            await client.send_message(data)
                        finally:
                            self._send_scope = None
                else:
                    await client.send_message(data)
        elif isinstance(kind, v8.ToServerWebSocketClose):
            if kind.hibernate and self.state.hibernatable:
                return HIBERNATE
            return End(kind.code or 1000, kind.reason or "", tell_runner=False)
        return None

    async def _flush_runner(self) -> End | None:
        """Forward what the runner sent before it went away (without waiting for more); a close
        among it ends the socket."""
        while True:
            try:
                kind = self.pending.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return None
            outcome = await self._from_runner(kind)
            if isinstance(outcome, End):
                return outcome

    # -- hibernation -------------------------------------------------------------------------------
    async def _hibernate(self) -> End | None:
        """hibernation.md §6.2. Returns an :class:`End`, or None to resume (at once if messages
        are pending)."""
        self._client_message = False
        if self.state.hibernate():
            # Unacknowledged messages (e.g. published while the actor was stopping): wake it
            # at once, but persist the entry first, or the start command hydrated for the wake
            # would not list this socket and the runner would drop its messages (§6.2).
            log.debug("pending messages: resuming at once", extra={"actor_id": self.actor_id})
            try:
                await self._upsert()
            except KeepaliveError as exc:
                return End(1011, KEEPALIVE_FAILED_REASON, tell_runner=False, error=exc)
            return None
        log.debug(
            "hibernating",
            extra={"actor_id": self.actor_id, "request_id": self.request_id.hex()},
        )
        self._start_keepalive()
        try:
            outcome = await self._hibernation_wait()
        finally:
            self._stop_timers()
        if isinstance(outcome, End):
            return outcome
        self.hibernations += 1
        if not outcome.wake:
            # The actor's start was hydrated while the entry was live: nothing to do before the
            # resume (the keepalive cadence goes on in the active phase).
            return None
        # Woken by a client message: refresh (not delete) the entry *before* the wake, so the
        # start command hydrated for it lists this socket (§6.2 step 5, ordering hazard).
        try:
            await self._upsert()
        except KeepaliveError as exc:
            return End(1011, KEEPALIVE_FAILED_REASON, tell_runner=False, error=exc)
        return None

    async def _hibernation_wait(self) -> End | _Continue:
        """The wait of §6.2 step 3 against the keepalive (step 4): whichever ends first."""
        self._watching = "hibernating"
        try:
            while True:
                # armed before reading the actor: a transition in between sets it
                self._wakeup.clear()
                if self._client_done.is_set():
                    assert self._client_end is not None
                    end = self._client_end
                    return End(end.code, end.reason, tell_runner=False)
                if self._client_message:
                    return WAKE
                if self._keepalive_error is not None:
                    error = self._keepalive_error
                    return End(1011, KEEPALIVE_FAILED_REASON, tell_runner=False, error=error)
                if self.engine.actor_gone(self.actor_id):
                    return End(1011, "actor.not_found", tell_runner=False)
                if self.engine.actor_ready(self.actor_id) is not None:
                    return READY
                await self._wakeup.wait()
        finally:
            self._watching = ""

    async def _watch_client_end(self) -> End:
        await self._client_done.wait()
        assert self._client_end is not None
        return End(self._client_end.code, self._client_end.reason, tell_runner=False)

    async def _wait_ready(self) -> tuple[str, int] | End:
        """Wake the actor (a client message ended the hibernation) and wait until it is ready.
        Returns an :class:`End` if it cannot be woken (gone, or not ready in time)."""
        try:
            return await self.engine.wait_ready(self.actor_id)
        except ApiError as exc:
            log.warning(
                "hibernated socket: the actor did not wake",
                extra={"actor_id": self.actor_id, "error": str(exc)},
            )
            return End(1011, f"{exc.group}.{exc.code}", tell_runner=False)

    def _resume(self, runner_id: str, generation: int) -> None:
        """hibernation.md §6.3: bind to the actor's runner, re-publish every pending message
        unchanged."""
        self.pending.runner_id, self.generation = runner_id, generation
        for message in self.state.resume(trio.current_time()):
            self._publish(message)
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.set()
        log.debug(
            "resumed",
            extra={
                "actor_id": self.actor_id,
                "generation": generation,
                "phase": Phase.ACTIVE.value,
            },
        )


async def serve_websocket(
    gateway: Gateway,
    ws_request: trio_websocket.WebSocketRequest,
    actor_id: str,
    path: str,
    headers: dict[str, str],
) -> None:
    """Open the socket to the actor (rejecting the client's upgrade with the API error if that
    fails), accept the client and relay until the socket ends."""
    socket = GatewaySocket(gateway, actor_id, path, headers)
    try:
        await socket.open()
    except ApiError as exc:
        await ws_request.reject(exc.status, body=dumps(exc.body()))
        return
    try:
        protocols = list(ws_request.proposed_subprotocols)
        client = await ws_request.accept(subprotocol="rivet" if "rivet" in protocols else None)
    except BaseException:
        index = socket.state.close()
        if index is not None:
            with contextlib.suppress(TunnelClosedError):
                gateway._send(
                    socket.request_id, socket.pending, v8.ToClientWebSocketClose(1000, ""), index
                )
        socket._release()
        raise
    await socket.run(client)
