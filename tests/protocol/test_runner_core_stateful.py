"""Stateful test: one :class:`RunnerCore` against a fake engine and a model, under arbitrary
interleavings of commands, replays, disconnects, event acks, KV traffic and driver calls.

The engine side keeps what a real engine would: every command it ever sent (replayed in any
subset and order), the events it accepted per (actor, generation) with the engine's dedup rule
(accept ``index == last + 1``, ignore the rest), and the KV requests it received. Frames the core
hands out sit "in flight" until delivered; a disconnect delivers a prefix of them and loses the
rest (and drops whatever the core had not handed out yet).

Checked after every step and at the end:

* no (actor, generation) gets two ``ActorStartRequested``, and none for a generation older than
  one already started;
* replays never start or stop anything;
* the engine's view of every instance's events is a prefix of what the model expects, and after a
  final reconnect equals it (resends fill every gap), except for instances that were already
  removed when one of their frames was lost in transit (the core cannot resend those);
* every ``KvResponded``/``KvFailed`` answers the request it names (id and actor), at most once;
* hosted instances match the model; acks never acknowledge a command that was not sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from codec import v8
from rivetpy.protocol import RunnerConfig, RunnerCore
from rivetpy.protocol import events as ev
from tests.protocol.helpers import (
    RUNNER_ID,
    actor_config,
    commands,
    init,
    metadata,
    start,
    stop,
)

ACTORS = ("a", "b")
RUNNING: v8.Event = v8.EventActorStateUpdate(v8.ActorStateRunning())
Gen = tuple[str, int]


@dataclass
class ModelInstance:
    state: str = "starting"  # starting | running | stopping
    destroy: bool = False
    failure: str | None = None


@dataclass
class KvRecord:
    actor_id: str
    keys: list[bytes]
    resolved: bool = False


def pick(items: list[Gen], i: int) -> Gen:
    return sorted(items)[i % len(items)]


class Machine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.core = RunnerCore(RunnerConfig("pool", 64))
        self.conn = "disconnected"  # disconnected | handshaking | connected
        self.now = 0.0
        self.in_flight: list[v8.ToServer] = []
        # engine
        self.sent_commands: list[v8.CommandWrapper] = []
        self.max_command_index: dict[Gen, int] = {}
        self.engine_generation: dict[str, int] = {}
        self.engine_started: set[Gen] = set()
        self.engine_stopped: set[Gen] = set()
        self.engine_events: dict[Gen, list[v8.Event]] = {}
        self.engine_last: dict[Gen, int] = {}
        self.engine_kv: dict[int, v8.ToServerKvRequest] = {}
        # model
        self.instances: dict[Gen, ModelInstance] = {}
        self.started: set[Gen] = set()
        self.highest_started: dict[str, int] = {}
        self.expected: dict[Gen, list[v8.Event]] = {}
        self.lossy: set[Gen] = set()
        self.kv: dict[int, KvRecord] = {}
        self.kv_counter = 0
        self.draining = False

    # -- plumbing ----------------------------------------------------------------------------
    def take(self) -> None:
        """Move what the core hands out into the in-flight queue."""
        out = self.core.messages_to_send()
        if self.conn == "disconnected":
            assert out == [], out
        self.in_flight.extend(out)

    def deliver(self, count: int | None = None) -> None:
        """The engine receives the first ``count`` in-flight frames (all by default)."""
        n = len(self.in_flight) if count is None else count
        frames, self.in_flight = self.in_flight[:n], self.in_flight[n:]
        for msg in frames:
            self.engine_receive(msg)

    def engine_receive(self, msg: v8.ToServer) -> None:
        if isinstance(msg, v8.ToServerEvents):
            for w in msg.value:
                cp = w.checkpoint
                gen = (cp.actor_id, cp.generation)
                last = self.engine_last.get(gen, -1)
                if cp.index == last + 1:
                    self.engine_last[gen] = cp.index
                    self.engine_events.setdefault(gen, []).append(w.inner)
        elif isinstance(msg, v8.ToServerKvRequest):
            record = self.kv.get(msg.request_id)
            assert record is not None, msg
            assert msg.actor_id == record.actor_id
            assert msg.data == v8.KvGetRequest(record.keys)
            self.engine_kv[msg.request_id] = msg
        elif isinstance(msg, v8.ToServerAckCommands):
            for cp in msg.last_command_checkpoints:
                gen = (cp.actor_id, cp.generation)
                assert gen in self.max_command_index, cp
                assert cp.index <= self.max_command_index[gen], cp

    def send(self, msg: v8.ToClient) -> list[ev.Event]:
        assert self.conn == "connected"
        self.core.receive_message(msg)
        return self.events()

    def events(self) -> list[ev.Event]:
        """Take the core's events and check the rules every event must obey."""
        out = self.core.next_events()
        for e in out:
            if isinstance(e, ev.ActorStartRequested):
                gen = (e.actor_id, e.generation)
                assert gen not in self.started, f"second start of {gen}"
                assert e.generation > self.highest_started.get(e.actor_id, -1), (
                    f"start of {gen} after generation {self.highest_started[e.actor_id]}"
                )
                self.started.add(gen)
                self.highest_started[e.actor_id] = e.generation
                self.instances[gen] = ModelInstance()
                self.expected[gen] = [RUNNING]
            elif isinstance(e, ev.ActorStopRequested):
                inst = self.instances.get((e.actor_id, e.generation))
                assert inst is not None and inst.state != "stopping", e
                inst.state = "stopping"
            elif isinstance(e, ev.KvResponded | ev.KvFailed):
                record = self.kv.get(e.request_id)
                assert record is not None, e
                assert not record.resolved, f"request {e.request_id} resolved twice"
                assert e.actor_id == record.actor_id
                record.resolved = True
                if isinstance(e, ev.KvResponded):
                    assert isinstance(e.response, v8.KvGetResponse)
                    assert e.response.keys == record.keys
                elif not e.timed_out:
                    assert e.message == f"err {e.request_id}"
        return out

    def add_event(self, gen: Gen, event: v8.Event) -> None:
        self.expected[gen].append(event)

    # -- connection --------------------------------------------------------------------------
    @initialize()
    def first_connection(self) -> None:
        self.connect()
        self.handshake()

    @precondition(lambda self: self.conn == "disconnected")
    @rule(handshake=st.booleans())
    def reconnect(self, handshake: bool) -> None:
        """Open a new socket (same runner id); without ``handshake`` it stays handshaking."""
        self.connect()
        if handshake:
            self.handshake()

    def connect(self) -> None:
        self.core.connection_made()
        self.conn = "handshaking"
        out = self.core.messages_to_send()
        assert out == [self.core.config.init_message()]
        self.in_flight.extend(out)

    @precondition(lambda self: self.conn == "handshaking")
    @rule()
    def handshake(self) -> None:
        first = self.core.runner_id is None
        self.core.receive_message(init(RUNNER_ID, metadata()))
        self.conn = "connected"
        assert self.events() == [ev.Connected(RUNNER_ID, metadata(), first)]

    @precondition(lambda self: self.conn != "disconnected")
    @rule(take_outbox=st.booleans(), keep=st.integers(0, 50))
    def disconnect(self, take_outbox: bool, keep: int) -> None:
        if take_outbox:
            self.take()
        self.deliver(min(keep, len(self.in_flight)))
        hosted = set(self.core.hosted())
        for msg in self.in_flight:
            if isinstance(msg, v8.ToServerEvents):
                for w in msg.value:
                    gen = (w.checkpoint.actor_id, w.checkpoint.generation)
                    if gen not in hosted:
                        self.lossy.add(gen)
        self.in_flight.clear()
        self.core.connection_lost()
        self.conn = "disconnected"
        self.events()

    @precondition(lambda self: self.conn != "disconnected")
    @rule()
    def pump(self) -> None:
        self.take()
        self.deliver()

    # -- engine: commands --------------------------------------------------------------------
    def _send_fresh(self, wrapper: v8.CommandWrapper) -> list[ev.Event]:
        cp = wrapper.checkpoint
        gen = (cp.actor_id, cp.generation)
        self.sent_commands.append(wrapper)
        self.max_command_index[gen] = max(self.max_command_index.get(gen, -1), cp.index)
        return self.send(commands(wrapper))

    @precondition(lambda self: self.conn == "connected")
    @rule(actor=st.sampled_from(ACTORS), skip=st.integers(0, 2))
    def engine_start(self, actor: str, skip: int) -> None:
        generation = self.engine_generation.get(actor, 0) + 1 + skip
        self.engine_generation[actor] = generation
        self.engine_started.add((actor, generation))
        replaced = [g for g, i in self.instances.items() if g[0] == actor and i.state != "stopping"]
        out = self._send_fresh(start(actor, generation))
        expected: list[ev.Event] = [
            ev.ActorStopRequested(a, g, ev.StopReason.REPLACED) for a, g in replaced
        ]
        expected.append(ev.ActorStartRequested(actor, generation, actor_config(), None, ()))
        assert out == expected

    @precondition(
        lambda self: self.conn == "connected" and self.engine_started - self.engine_stopped
    )
    @rule(i=st.integers(0, 1_000))
    def engine_stop(self, i: int) -> None:
        gen = pick(list(self.engine_started - self.engine_stopped), i)
        self.engine_stopped.add(gen)
        inst = self.instances.get(gen)
        should_stop = inst is not None and inst.state != "stopping"
        out = self._send_fresh(stop(*gen))
        if should_stop:
            assert out == [ev.ActorStopRequested(*gen, ev.StopReason.COMMAND)]
        else:
            assert out == []

    @precondition(lambda self: self.conn == "connected" and self.sent_commands)
    @rule(choice=st.lists(st.integers(0, 1_000), min_size=1, max_size=8))
    def engine_replay(self, choice: list[int]) -> None:
        frame = [self.sent_commands[c % len(self.sent_commands)] for c in choice]
        out = self.send(commands(*frame))
        assert of_kind(out, ev.ActorStartRequested) == []
        assert of_kind(out, ev.ActorStopRequested) == []

    @rule(kind=st.sampled_from(["ack_commands", "tick", "kv_timeout"]))
    def periodic(self, kind: str) -> None:
        """The driver's timers: the command-ack loop and the KV expiry sweep."""
        if kind == "ack_commands":
            assert self.core.ack_commands() == (self.conn == "connected")
            return
        self.now += 1.0 if kind == "tick" else 31.0
        self.core.expire_kv(self.now)
        for e in self.events():
            assert isinstance(e, ev.KvFailed) and e.timed_out, e

    # -- engine: event acks ------------------------------------------------------------------
    @precondition(lambda self: self.conn == "connected" and self.engine_last)
    @rule(choice=st.lists(st.integers(0, 1_000), max_size=2), behind=st.integers(0, 1))
    def engine_ack_events(self, choice: list[int], behind: int) -> None:
        """Ack what the engine has processed (racing frames still in flight), for every
        generation it knows (``choice`` empty) or a few, including ones the runner has
        replaced since."""
        gens = sorted(self.engine_last)
        picked = [pick(gens, c) for c in choice] if choice else gens
        checkpoints = [v8.ActorCheckpoint(*g, self.engine_last[g] - behind) for g in picked]
        assert self.send(v8.ToClientAckEvents(checkpoints)) == []

    # -- KV ----------------------------------------------------------------------------------
    @precondition(lambda self: self.instances)
    @rule(i=st.integers(0, 1_000))
    def kv_request(self, i: int) -> None:
        gen = pick(list(self.instances), i)
        self.kv_counter += 1
        keys = [f"{gen[0]}/{gen[1]}/{self.kv_counter}".encode()]
        rid = self.core.kv_request(*gen, v8.KvGetRequest(keys), self.now)
        previous = self.kv.get(rid)
        assert previous is None or previous.resolved, f"id {rid} reused while in flight"
        self.kv[rid] = KvRecord(gen[0], keys)

    @precondition(lambda self: self.conn == "connected" and self.kv)
    @rule(i=st.integers(0, 1_000), error=st.booleans())
    def engine_kv_respond(self, i: int, error: bool) -> None:
        """Answer any request the engine ever received (again, late or out of order)."""
        self.pump()
        if not self.engine_kv:
            return
        ids = sorted(self.engine_kv)
        req = self.engine_kv[ids[i % len(ids)]]
        assert isinstance(req.data, v8.KvGetRequest)
        data: v8.KvResponseData
        if error:
            data = v8.KvErrorResponse(f"err {req.request_id}")
        else:
            keys = req.data.keys
            data = v8.KvGetResponse(keys, [b"v"] * len(keys), [v8.KvMetadata(b"v", 0)] * len(keys))
        self.send(v8.ToClientKvResponse(req.request_id, data))

    # -- driver ------------------------------------------------------------------------------
    def _in_state(self, state: str) -> list[Gen]:
        return [g for g, i in self.instances.items() if i.state == state]

    @precondition(lambda self: self._in_state("starting"))
    @rule(i=st.integers(0, 1_000))
    def start_completed(self, i: int) -> None:
        gen = pick(self._in_state("starting"), i)
        self.core.start_completed(*gen)
        self.instances[gen].state = "running"
        assert self.events() == []

    @precondition(lambda self: self._in_state("starting"))
    @rule(i=st.integers(0, 1_000))
    def start_failed(self, i: int) -> None:
        gen = pick(self._in_state("starting"), i)
        message = f"start of {gen} failed"
        self.core.start_failed(*gen, message)
        self.instances[gen].failure = message
        assert self.events() == [ev.ActorStopRequested(*gen, ev.StopReason.START_FAILED)]

    @precondition(lambda self: self._in_state("stopping"))
    @rule(i=st.integers(0, 1_000), error=st.sampled_from([None, "stop failed"]))
    def stop_completed(self, i: int, error: str | None) -> None:
        gen = pick(self._in_state("stopping"), i)
        inst = self.instances.pop(gen)
        self.core.stop_completed(*gen, error)
        message = error if error is not None else inst.failure
        ok = (inst.destroy or self.draining) and message is None
        code = v8.StopCode.OK if ok else v8.StopCode.ERROR
        self.add_event(gen, v8.EventActorStateUpdate(v8.ActorStateStopped(code, message)))
        self.events()

    @precondition(lambda self: self.instances)
    @rule(
        i=st.integers(0, 1_000),
        kind=st.sampled_from(["sleep", "stop", "destroy", "alarm", "clear"]),
    )
    def actor_event(self, i: int, kind: str) -> None:
        gen = pick(list(self.instances), i)
        event: v8.Event
        if kind == "sleep":
            self.core.sleep(*gen)
            event = v8.EventActorIntent(v8.ActorIntentSleep())
        elif kind in ("stop", "destroy"):
            self.core.stop(*gen, destroy=kind == "destroy")
            self.instances[gen].destroy |= kind == "destroy"
            event = v8.EventActorIntent(v8.ActorIntentStop())
        else:
            ts = None if kind == "clear" else int(self.now * 1000)
            self.core.set_alarm(*gen, ts)
            event = v8.EventActorSetAlarm(ts)
        self.add_event(gen, event)
        assert self.events() == []

    @precondition(lambda self: not self.draining)
    @rule()
    def begin_drain(self) -> None:
        self.core.begin_drain()
        self.draining = True

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def hosted_matches_the_model(self) -> None:
        assert sorted(self.core.hosted()) == sorted(self.instances)

    @invariant()
    def engine_view_is_a_prefix_of_the_model(self) -> None:
        for gen, seen in self.engine_events.items():
            assert seen == self.expected[gen][: len(seen)], gen

    def teardown(self) -> None:
        """Reconnect (same runner id), deliver everything: nothing may be missing."""
        if self.conn == "disconnected":
            self.connect()
        if self.conn == "handshaking":
            self.handshake()
        self.pump()
        for gen, want in self.expected.items():
            seen = self.engine_events.get(gen, [])
            if gen in self.lossy:
                assert seen == want[: len(seen)], gen
            else:
                assert seen == want, gen


def of_kind(items: list[ev.Event], cls: type[object]) -> list[ev.Event]:
    return [e for e in items if isinstance(e, cls)]


Machine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestRunnerCore = Machine.TestCase
