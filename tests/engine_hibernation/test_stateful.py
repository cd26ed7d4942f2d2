"""Hypothesis stateful test: the gateway's sans-IO socket state against the real sans-IO runner
core, over a link that loses in-flight frames on reconnect, through sleep / wake / message /
ack / reconnect / close interleavings. Invariant: the actor processes exactly the client's
messages, in order, each once (a prefix while traffic is in flight, all of it once the system
settles)."""

from __future__ import annotations

from collections import deque

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from codec import v8
from rivetpy.engine.hibernation import Limits, Phase, SocketState
from rivetpy.protocol import events as ev
from rivetpy.protocol.runner import RunnerConfig, RunnerCore

GW, REQ = b"\x01\x02\x03\x04", b"\x0a\x0b\x0c\x0d"
KEY = (GW, REQ)
ACTOR = "actor-1"
CONFIG = v8.ActorConfig("hws", None, 0, None)
META = v8.ProtocolMetadata(15_000, 30_000, None)


class HibernationMachine(RuleBasedStateMachine):
    @initialize(first_index=st.sampled_from([0, 1, 65_520, 65_535]))
    def open_socket(self, first_index: int) -> None:
        self.now = 0.0
        self.gw = SocketState(Limits(), first_index=first_index)
        self.core = RunnerCore(RunnerConfig("r", 10))
        self.to_runner: deque[v8.ToClientTunnelMessage] = deque()
        self.to_gateway: deque[v8.ToServerTunnelMessageKind] = deque()
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.persisted = first_index  # the app's durable last processed index
        self.generation = 0
        self.awake = True
        self.closed = False
        self.counter = 0
        self.core.connection_made()
        self.core.receive_message(v8.ToClientInit("runner", META))
        self._start(hibernating=[])
        self._send(self.gw.open(), v8.ToClientWebSocketOpen(ACTOR, "/hws", {}))
        self._deliver_all_to_runner()
        self._pump()
        [reply] = list(self.to_gateway)
        assert isinstance(reply, v8.ToServerWebSocketOpen) and reply.can_hibernate
        self.to_gateway.clear()
        self.gw.opened(True)

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, index: int, kind: v8.ToClientTunnelMessageKind) -> None:
        self.to_runner.append(v8.ToClientTunnelMessage(v8.MessageId(GW, REQ, index), kind))

    def _pump(self) -> None:
        """Run the runner's 'app': accept, restore, persist + ack + record each message."""
        for event in self.core.next_events():
            if isinstance(event, ev.WebSocketOpenRequested):
                self.core.accept_websocket(event.key, True)
            elif isinstance(event, ev.ActorStartRequested):
                if KEY in event.hibernating_requests:
                    self.core.restore_websocket(ACTOR, event.generation, KEY, self.persisted, 0)
                self.core.start_completed(ACTOR, event.generation)
            elif isinstance(event, ev.WebSocketMessageReceived):
                self.received.append(event.data)
                self.persisted = event.index
                self.core.ack_websocket(event.key, event.index)
            elif isinstance(event, ev.WebSocketClosed):
                raise AssertionError(f"runner closed the socket: {event}")
        self._pump_outbox()

    def _pump_outbox(self) -> None:
        for msg in self.core.messages_to_send():
            if isinstance(msg, v8.ToServerTunnelMessage):
                self.to_gateway.append(msg.message_kind)

    def _start(self, hibernating: list[v8.HibernatingRequest]) -> None:
        cp = v8.ActorCheckpoint(ACTOR, self.generation, 0)
        start = v8.CommandStartActor(CONFIG, hibernating, None)
        self.core.receive_message(v8.ToClientCommands([v8.CommandWrapper(cp, start)]))
        self._pump()

    def _deliver_all_to_runner(self) -> None:
        while self.to_runner:
            self.core.receive_message(self.to_runner.popleft())
            self._pump()

    def _resume(self) -> None:
        for message in self.gw.resume(self.now):
            self._send(message.index, v8.ToClientWebSocketMessage(message.data, message.binary))

    def _wake(self) -> None:
        """The actor starts again (a new generation) listing the socket, then the gateway
        resumes and replays what is pending."""
        self.generation += 1
        self._start([v8.HibernatingRequest(GW, REQ)])
        self.awake = True
        self._resume()

    # -- rules -----------------------------------------------------------------------------------
    @precondition(lambda self: not self.closed)
    @rule()
    def client_sends(self) -> None:
        self.counter += 1
        data = f"m{self.counter}".encode()
        self.sent.append(data)
        message = self.gw.client_message(data, True, self.now)
        if message is not None:
            self._send(message.index, v8.ToClientWebSocketMessage(data, True))
        else:
            assert self.gw.phase is Phase.HIBERNATING

    @precondition(lambda self: bool(self.to_runner))
    @rule(n=st.integers(1, 5))
    def runner_receives(self, n: int) -> None:
        for _ in range(min(n, len(self.to_runner))):
            self.core.receive_message(self.to_runner.popleft())
            self._pump()

    @precondition(lambda self: bool(self.to_gateway))
    @rule()
    def gateway_receives(self) -> None:
        kind = self.to_gateway.popleft()
        if isinstance(kind, v8.ToServerWebSocketMessageAck):
            self.gw.ack(kind.index)

    @precondition(lambda self: not self.closed and self.awake)
    @rule()
    def actor_sleeps(self) -> None:
        self.core.receive_message(
            v8.ToClientCommands(
                [
                    v8.CommandWrapper(
                        v8.ActorCheckpoint(ACTOR, self.generation, 1), v8.CommandStopActor()
                    )
                ]
            )
        )
        self._pump()
        self.core.stop_completed(ACTOR, self.generation)
        self._pump_outbox()
        self.awake = False
        if self.gw.hibernate():  # unacked messages: woken again at once
            self._wake()

    @precondition(lambda self: not self.closed and self.gw.phase is Phase.HIBERNATING)
    @rule()
    def actor_wakes(self) -> None:
        self._wake()

    @precondition(lambda self: not self.closed)
    @rule()
    def runner_reconnects(self) -> None:
        # in-flight frames both ways are lost with the connection
        self.to_runner.clear()
        self.to_gateway.clear()
        self.core.connection_lost()
        self.core.connection_made()
        self.core.receive_message(v8.ToClientInit("runner", META))
        self._pump()
        if self.gw.phase is Phase.ACTIVE:
            # the gateway hibernates on the tunnel's loss; the actor is still running there
            self.gw.hibernate()
            self._resume()

    @rule(t=st.floats(0.001, 10))
    def time_passes(self, t: float) -> None:
        self.now += t

    @precondition(lambda self: not self.closed)
    @rule()
    def client_closes(self) -> None:
        self.gw.close()
        self.closed = True

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def processed_is_a_prefix_of_sent(self) -> None:
        assert self.received == self.sent[: len(self.received)]

    @invariant()
    def pending_is_what_was_not_processed(self) -> None:
        if not self.closed:
            pending = [m.data for m in self.gw.pending]
            # everything unacked is after what was acked, and everything unprocessed is pending
            assert pending == self.sent[len(self.sent) - len(pending) :]
            assert len(pending) >= len(self.sent) - len(self.received)

    @precondition(lambda self: not self.closed)
    @rule()
    def settle(self) -> None:
        """Wake if asleep, deliver everything both ways: every message processed once, in
        order, and acknowledged (nothing left to replay)."""
        if self.gw.phase is Phase.HIBERNATING:
            self._wake()
        for _ in range(3):
            self._deliver_all_to_runner()
            while self.to_gateway:
                self.gateway_receives()
        assert self.received == self.sent
        assert not self.gw.has_pending
        assert self.gw.pending_size == 0

    def teardown(self) -> None:
        if hasattr(self, "gw") and not self.closed:
            self.settle()


def test_no_message_lost_or_duplicated() -> None:
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        HibernationMachine,
        settings=settings(max_examples=200, stateful_step_count=40, deadline=None),
    )
