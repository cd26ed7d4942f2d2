"""Unit tests of the sans-IO runner core against runner-lifecycle.md and hibernation.md §8.

Each test drives one :class:`RunnerCore` through :class:`FakeEngine` and asserts on exactly what
crossed the boundary (``ToServer`` messages and driver events).
"""

from __future__ import annotations

import json

import pytest

import codec
from codec import v8
from rivetpy.protocol import (
    InstanceState,
    LocalProtocolError,
    RemoteProtocolError,
    RunnerConfig,
    RunnerCore,
)
from rivetpy.protocol import events as ev
from rivetpy.protocol.kv import U32, KvTable
from rivetpy.protocol.tunnel import MAX_TUNNEL_PAYLOAD
from tests.protocol.helpers import (
    ACTOR,
    OTHER,
    RUNNER_ID,
    FakeEngine,
    ack_events,
    actor_config,
    commands,
    event_wrappers,
    http_start,
    init,
    key,
    kv_error,
    kv_get,
    kv_get_response,
    kv_response,
    metadata,
    of_type,
    start,
    stop,
    tunnel,
    tunnel_out,
    ws_message,
    ws_open,
)

NOT_FOUND_503 = v8.ToServerResponseStart(
    503, {"x-rivet-error": "runner.actor_not_found"}, None, False
)


def connected(config: RunnerConfig | None = None) -> FakeEngine:
    engine = FakeEngine(config=config)
    engine.connect()
    engine.take_events()
    return engine


def hosting(*actors: str, complete: bool = True) -> FakeEngine:
    """A connected core hosting generation 1 of each actor; sent/events cleared."""
    engine = connected()
    for actor in actors:
        engine.start_actor(actor, 1, complete=complete)
    engine.take_events()
    engine.sent.clear()
    return engine


def stopped_event(code: v8.StopCode, message: str | None = None) -> v8.Event:
    return v8.EventActorStateUpdate(v8.ActorStateStopped(code, message))


RUNNING: v8.Event = v8.EventActorStateUpdate(v8.ActorStateRunning())


def ws_frame(
    k: ev.TunnelKey, index: int, kind: v8.ToServerTunnelMessageKind
) -> v8.ToServerTunnelMessage:
    return v8.ToServerTunnelMessage(v8.MessageId(k[0], k[1], index), kind)


# == 4. handshake =================================================================================
class TestHandshake:
    def test_init_is_the_first_frame_and_carries_the_config(self) -> None:
        config = RunnerConfig(
            "pool",
            total_slots=12,
            version=3,
            actor_names={"counter": {"name": "Counter", "icon": "c"}, "chat": {}},
            metadata={"region": "eu"},
        )
        core = RunnerCore(config)
        core.connection_made()
        out = core.messages_to_send()
        assert len(out) == 1
        msg = out[0]
        assert isinstance(msg, v8.ToServerInit)
        assert (msg.name, msg.version, msg.total_slots) == ("pool", 3, 12)
        assert msg.prepopulate_actor_names is not None
        assert set(msg.prepopulate_actor_names) == {"counter", "chat"}
        counter = json.loads(msg.prepopulate_actor_names["counter"].metadata)
        assert counter == {"name": "Counter", "icon": "c"}
        assert json.loads(msg.prepopulate_actor_names["chat"].metadata) == {}
        assert msg.metadata is not None and json.loads(msg.metadata) == {"region": "eu"}
        # the init frame is encodable as sent
        codec.TO_SERVER.encode(msg, 8)

    def test_prepopulate_actor_names_always_present_metadata_absent_by_default(self) -> None:
        core = RunnerCore(RunnerConfig("pool", 1))
        core.connection_made()
        [msg] = core.messages_to_send()
        assert msg == v8.ToServerInit("pool", 1, 1, {}, None)

    def test_connected_event_and_state(self) -> None:
        engine = FakeEngine()
        assert not engine.core.connected
        engine.core.connection_made()
        engine.pump()
        assert not engine.core.connected  # handshaking until ToClientInit
        meta = metadata(lost=1_000, stop=2_000, drain=3_000)
        engine.send(init("r-9", meta))
        assert engine.core.connected
        assert engine.core.runner_id == "r-9"
        assert engine.core.metadata == meta
        assert engine.take_events() == [ev.Connected("r-9", meta, True)]
        engine.reconnect("r-9")
        assert engine.take_events() == [ev.Connected("r-9", metadata(), False)]

    @pytest.mark.parametrize(
        "msg",
        [
            v8.ToClientPing(1),
            commands(start()),
            ack_events((ACTOR, 1, 0)),
            kv_response(0),
            tunnel(key(1), 0, http_start()),
        ],
        ids=lambda m: type(m).__name__,
    )
    def test_message_before_init_is_a_remote_error(self, msg: v8.ToClient) -> None:
        core = RunnerCore(RunnerConfig("pool", 1))
        core.connection_made()
        core.messages_to_send()
        with pytest.raises(RemoteProtocolError):
            core.receive_message(msg)
        assert not core.connected
        assert core.next_events() == []

    def test_second_init_is_a_remote_error(self) -> None:
        engine = connected()
        with pytest.raises(RemoteProtocolError):
            engine.core.receive_message(init())

    @pytest.mark.parametrize("version", [7, 8])
    def test_receive_frame_decodes_with_the_announced_version(self, version: int) -> None:
        engine = FakeEngine(config=RunnerConfig("pool", 1, protocol_version=version))
        engine.core.connection_made()
        engine.core.receive_frame(codec.TO_CLIENT.encode(init(), version))
        assert engine.core.connected
        engine.pump()
        engine.core.receive_frame(codec.TO_CLIENT.encode(v8.ToClientPing(77), version))
        assert engine.pump() == [v8.ToServerPong(77)]

    @pytest.mark.parametrize(
        "frame",
        [
            b"",
            b"\xff",
            codec.TO_CLIENT.encode(init(), 8)[:-1],
            codec.TO_CLIENT.encode(init(), 8) + b"\x00",
            codec.TO_CLIENT.encode(v8.ToClientPing(1), 8)[:-1],
        ],
        ids=["empty", "bad-tag", "truncated-init", "trailing-byte", "truncated-ping"],
    )
    def test_undecodable_frame_is_a_remote_error(self, frame: bytes) -> None:
        core = RunnerCore(RunnerConfig("pool", 1))
        core.connection_made()
        with pytest.raises(RemoteProtocolError):
            core.receive_frame(frame)
        assert not core.connected

    def test_undecodable_frame_after_init_is_a_remote_error(self) -> None:
        engine = connected()
        with pytest.raises(RemoteProtocolError):
            engine.core.receive_frame(b"\x05")  # ToClientPing without its i64

    def test_receiving_while_disconnected_is_a_local_error(self) -> None:
        core = RunnerCore(RunnerConfig("pool", 1))
        with pytest.raises(LocalProtocolError):
            core.receive_message(init())
        with pytest.raises(LocalProtocolError):
            core.receive_frame(codec.TO_CLIENT.encode(init(), 8))
        engine = connected()
        engine.disconnect()
        with pytest.raises(LocalProtocolError):
            engine.core.receive_message(v8.ToClientPing(1))

    def test_connection_made_twice_is_a_local_error(self) -> None:
        core = RunnerCore(RunnerConfig("pool", 1))
        core.connection_made()
        with pytest.raises(LocalProtocolError):
            core.connection_made()
        core.receive_message(init())
        with pytest.raises(LocalProtocolError):
            core.connection_made()

    def test_connection_made_after_shutdown_is_a_local_error(self) -> None:
        core = RunnerCore(RunnerConfig("pool", 1))
        core.shutdown()
        with pytest.raises(LocalProtocolError):
            core.connection_made()

    def test_connection_lost_twice_is_harmless(self) -> None:
        engine = connected()
        engine.disconnect()
        engine.disconnect()
        assert engine.connect() == []

    def test_invalid_protocol_version(self) -> None:
        with pytest.raises(LocalProtocolError):
            RunnerCore(RunnerConfig("pool", 1, protocol_version=6))

    def test_flush_order_after_init(self) -> None:
        """§4.3: KV requests, then one ToServerEvents with all history, then tunnel."""
        engine = hosting(ACTOR, OTHER)
        core = engine.core
        http = key(1)
        engine.send(tunnel(http, 0, http_start(ACTOR)))
        engine.disconnect()
        core.sleep(ACTOR, 1)
        rid = core.kv_request(OTHER, 1, kv_get(b"k"), now=0.0)
        assert core.send_http_response(http, 200, {}, b"ok")
        core.set_alarm(OTHER, 1, 5)
        assert engine.pump() == []  # nothing leaves while disconnected

        flush = engine.connect()
        assert [type(m) for m in flush] == [
            v8.ToServerKvRequest,
            v8.ToServerEvents,
            v8.ToServerTunnelMessage,
        ]
        assert flush[0] == v8.ToServerKvRequest(OTHER, rid, kv_get(b"k"))
        events = event_wrappers(flush)
        by_actor = {
            a: [(w.checkpoint.index, w.inner) for w in events if w.checkpoint.actor_id == a]
            for a in (ACTOR, OTHER)
        }
        assert by_actor[ACTOR] == [(0, RUNNING), (1, v8.EventActorIntent(v8.ActorIntentSleep()))]
        assert by_actor[OTHER] == [(0, RUNNING), (1, v8.EventActorSetAlarm(5))]
        assert flush[2] == ws_frame(
            http, 0, v8.ToServerResponseStart(200, {"content-length": "2"}, b"ok", False)
        )

    def test_nothing_is_flushed_when_nothing_is_pending(self) -> None:
        engine = connected()
        assert engine.reconnect() == []

    def test_runner_id_change_stops_every_hosted_actor(self) -> None:
        engine = hosting(ACTOR, OTHER)
        engine.disconnect()
        engine.connect("runner-2")
        events = engine.take_events()
        stops = of_type(events, ev.ActorStopRequested)
        assert sorted(stops, key=lambda s: s.actor_id) == [
            ev.ActorStopRequested(ACTOR, 1, ev.StopReason.RUNNER_ID_CHANGED),
            ev.ActorStopRequested(OTHER, 1, ev.StopReason.RUNNER_ID_CHANGED),
        ]
        assert of_type(events, ev.Connected) == [ev.Connected("runner-2", metadata(), True)]
        assert engine.core.runner_id == "runner-2"

    def test_same_runner_id_keeps_actors(self) -> None:
        engine = hosting(ACTOR)
        engine.reconnect(RUNNER_ID)
        assert of_type(engine.take_events(), ev.ActorStopRequested) == []
        assert engine.core.hosted() == [(ACTOR, 1)]


# == 4.4 ping =====================================================================================
@pytest.mark.parametrize("ts", [0, 1_700_000_000_123, -5, 2**63 - 1])
def test_ping_is_answered_with_the_same_ts(ts: int) -> None:
    engine = connected()
    assert engine.send(v8.ToClientPing(ts)) == [v8.ToServerPong(ts)]


def test_pong_not_taken_before_the_connection_dropped_is_not_resent() -> None:
    engine = connected()
    engine.core.receive_message(v8.ToClientPing(5))
    engine.core.connection_lost()
    assert engine.connect() == []


# == 5. commands ==================================================================================
class TestCommands:
    def test_start_creates_an_instance_and_sends_running(self) -> None:
        engine = connected()
        preloaded = v8.PreloadedKv([], [b"a"], [])
        out = engine.send_commands(start(ACTOR, 3, preloaded=preloaded, hibernating=[key(9)]))
        assert out == [
            v8.ToServerEvents([v8.EventWrapper(v8.ActorCheckpoint(ACTOR, 3, 0), RUNNING)])
        ]
        [started] = engine.take_events()
        assert started == ev.ActorStartRequested(ACTOR, 3, actor_config(), preloaded, (key(9),))
        inst = engine.core.instance(ACTOR, 3)
        assert inst is not None and inst.state is InstanceState.STARTING

    def test_replayed_start_is_dropped_and_acked(self) -> None:
        engine = hosting(ACTOR)
        engine.reconnect()
        engine.take_events()
        engine.sent.clear()
        out = engine.send_commands(start(ACTOR, 1, 0))
        assert engine.take_events() == []
        assert event_wrappers(out) == []  # no second ActorStateRunning
        assert out == [v8.ToServerAckCommands([v8.ActorCheckpoint(ACTOR, 1, 0)])]
        inst = engine.core.instance(ACTOR, 1)
        assert inst is not None and inst.state is InstanceState.RUNNING

    def test_fresh_commands_are_not_acked_immediately(self) -> None:
        engine = connected()
        out = engine.send_commands(start(ACTOR, 1), start(OTHER, 1))
        assert of_type(out, v8.ToServerAckCommands) == []

    def test_replay_with_fresh_and_old_commands(self) -> None:
        """A replay frame mixes processed commands (dropped) and new ones (handled)."""
        engine = hosting(ACTOR)
        out = engine.send_commands(start(ACTOR, 1, 0), stop(ACTOR, 1, 1), start(OTHER, 4, 0))
        events = engine.take_events()
        assert events == [
            ev.ActorStopRequested(ACTOR, 1, ev.StopReason.COMMAND),
            ev.ActorStartRequested(OTHER, 4, actor_config(), None, ()),
        ]
        [ack] = of_type(out, v8.ToServerAckCommands)
        assert set(ack.last_command_checkpoints) == {
            v8.ActorCheckpoint(ACTOR, 1, 1),
            v8.ActorCheckpoint(OTHER, 4, 0),
        }

    def test_older_generation_start_while_newer_hosted_is_dropped_and_acked(self) -> None:
        engine = connected()
        engine.start_actor(ACTOR, 5)
        engine.take_events()
        out = engine.send_commands(start(ACTOR, 4, 0))
        assert engine.take_events() == []
        assert event_wrappers(out) == []
        [ack] = of_type(out, v8.ToServerAckCommands)
        assert v8.ActorCheckpoint(ACTOR, 4, 0) in ack.last_command_checkpoints
        assert engine.core.hosted() == [(ACTOR, 5)]

    def test_older_generation_start_after_newer_stopped_is_dropped(self) -> None:
        engine = connected()
        engine.start_actor(ACTOR, 5)
        engine.send_commands(stop(ACTOR, 5))
        engine.core.stop_completed(ACTOR, 5)
        engine.take_events()
        engine.send_commands(start(ACTOR, 2))
        assert engine.take_events() == []
        assert engine.core.hosted() == []

    def test_newer_generation_start_replaces_the_hosted_one(self) -> None:
        engine = hosting(ACTOR)
        engine.send_commands(start(ACTOR, 2))
        assert engine.take_events() == [
            ev.ActorStopRequested(ACTOR, 1, ev.StopReason.REPLACED),
            ev.ActorStartRequested(ACTOR, 2, actor_config(), None, ()),
        ]
        assert sorted(engine.core.hosted()) == [(ACTOR, 1), (ACTOR, 2)]

    def test_replayed_stop_is_ignored(self) -> None:
        engine = hosting(ACTOR)
        engine.send_commands(stop(ACTOR, 1))
        assert engine.take_events() == [ev.ActorStopRequested(ACTOR, 1, ev.StopReason.COMMAND)]
        engine.send_commands(stop(ACTOR, 1))  # while still stopping
        assert engine.take_events() == []
        engine.core.stop_completed(ACTOR, 1)
        engine.reconnect()
        engine.take_events()
        engine.send_commands(start(ACTOR, 1, 0), stop(ACTOR, 1, 1))  # after it is gone
        assert engine.take_events() == []
        assert engine.core.hosted() == []

    def test_stop_for_an_unknown_generation_is_ignored(self) -> None:
        engine = hosting(ACTOR)
        engine.send_commands(stop(ACTOR, 7), stop(OTHER, 1))
        assert engine.take_events() == []
        assert engine.core.hosted() == [(ACTOR, 1)]

    def test_ack_carries_highest_index_of_start_and_stop(self) -> None:
        engine = hosting(ACTOR, OTHER)
        core = engine.core
        assert core.ack_commands()
        [ack] = engine.pump()
        assert isinstance(ack, v8.ToServerAckCommands)
        assert set(ack.last_command_checkpoints) == {
            v8.ActorCheckpoint(ACTOR, 1, 0),
            v8.ActorCheckpoint(OTHER, 1, 0),
        }
        engine.send_commands(stop(ACTOR, 1, 1))
        core.ack_commands()
        [ack] = engine.pump()
        assert isinstance(ack, v8.ToServerAckCommands)
        assert v8.ActorCheckpoint(ACTOR, 1, 1) in ack.last_command_checkpoints

    def test_empty_ack_is_still_sent(self) -> None:
        engine = connected()
        assert engine.core.ack_commands()
        assert engine.pump() == [v8.ToServerAckCommands([])]

    def test_ack_while_disconnected_is_not_queued(self) -> None:
        engine = hosting(ACTOR)
        engine.disconnect()
        assert not engine.core.ack_commands()
        assert engine.connect() == [
            v8.ToServerEvents([v8.EventWrapper(v8.ActorCheckpoint(ACTOR, 1, 0), RUNNING)])
        ]

    def test_stopped_generation_is_acked_until_two_acks_later(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        engine.send_commands(stop(ACTOR, 1))
        core.stop_completed(ACTOR, 1)
        engine.pump()
        gone = v8.ActorCheckpoint(ACTOR, 1, 1)
        seen = []
        for _ in range(3):
            core.ack_commands()
            [ack] = engine.pump()
            assert isinstance(ack, v8.ToServerAckCommands)
            seen.append(gone in ack.last_command_checkpoints)
        assert seen == [True, True, False]

    def test_hosted_generation_is_acked_forever(self) -> None:
        engine = hosting(ACTOR)
        for _ in range(4):
            engine.core.ack_commands()
            [ack] = engine.pump()
            assert isinstance(ack, v8.ToServerAckCommands)
            assert ack.last_command_checkpoints == [v8.ActorCheckpoint(ACTOR, 1, 0)]

    def test_stop_for_a_generation_never_hosted_ages_out_of_acks(self) -> None:
        """A stop for a generation that is not hosted is acked (so the engine purges it), then
        forgotten like any other gone generation."""
        engine = connected()
        engine.send_commands(stop(ACTOR, 3, 1))
        seen = []
        for _ in range(3):
            engine.core.ack_commands()
            [ack] = engine.pump()
            assert isinstance(ack, v8.ToServerAckCommands)
            seen.append(v8.ActorCheckpoint(ACTOR, 3, 1) in ack.last_command_checkpoints)
        assert seen == [True, True, False]

    def test_stale_start_ages_out_of_acks(self) -> None:
        engine = connected()
        engine.start_actor(ACTOR, 5)
        engine.send_commands(start(ACTOR, 4))  # acked once by the replay rule
        seen = []
        for _ in range(2):
            engine.core.ack_commands()
            [ack] = engine.pump()
            assert isinstance(ack, v8.ToServerAckCommands)
            seen.append(v8.ActorCheckpoint(ACTOR, 4, 0) in ack.last_command_checkpoints)
        assert seen == [True, False]

    def test_replayed_start_after_its_entry_was_forgotten_is_still_dropped(self) -> None:
        engine = hosting(ACTOR)
        engine.send_commands(stop(ACTOR, 1))
        engine.core.stop_completed(ACTOR, 1)
        for _ in range(3):
            engine.core.ack_commands()
        engine.take_events()
        engine.send_commands(start(ACTOR, 1, 0))
        assert engine.take_events() == []
        assert engine.core.hosted() == []


# == 6. events ====================================================================================
class TestEvents:
    def test_indexes_start_at_zero_per_instance(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        core.sleep(ACTOR, 1)
        engine.send_commands(start(ACTOR, 2))
        core.set_alarm(ACTOR, 2, 99)
        engine.pump()
        assert [
            (w.checkpoint.generation, w.checkpoint.index, w.inner)
            for w in event_wrappers(engine.sent)
        ] == [
            (1, 1, v8.EventActorIntent(v8.ActorIntentSleep())),
            (2, 0, RUNNING),
            (2, 1, v8.EventActorSetAlarm(99)),
        ]

    def test_each_event_is_sent_immediately_in_its_own_frame(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        core.sleep(ACTOR, 1)
        core.stop(ACTOR, 1)
        core.set_alarm(ACTOR, 1, None)
        out = engine.pump()
        assert [len(m.value) for m in of_type(out, v8.ToServerEvents)] == [1, 1, 1]
        assert [w.inner for w in event_wrappers(out)] == [
            v8.EventActorIntent(v8.ActorIntentSleep()),
            v8.EventActorIntent(v8.ActorIntentStop()),
            v8.EventActorSetAlarm(None),
        ]

    def test_running_is_sent_before_the_start_completes(self) -> None:
        engine = connected()
        engine.start_actor(ACTOR, 1, complete=False)
        assert [w.inner for w in event_wrappers(engine.sent)] == [RUNNING]

    def test_local_calls_for_an_actor_not_hosted_are_local_errors(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        for call in (
            lambda: core.sleep(ACTOR, 2),
            lambda: core.stop(OTHER, 1, destroy=True),
            lambda: core.set_alarm(ACTOR, 2, 1),
            lambda: core.start_completed(OTHER, 1),
            lambda: core.start_failed(OTHER, 1, "x"),
            lambda: core.stop_completed(ACTOR, 2),
            lambda: core.kv_request(OTHER, 1, kv_get(), 0.0),
        ):
            with pytest.raises(LocalProtocolError):
                call()
        assert engine.pump() == []

    def test_start_completed_twice_is_a_local_error(self) -> None:
        engine = hosting(ACTOR)
        with pytest.raises(LocalProtocolError):
            engine.core.start_completed(ACTOR, 1)
        with pytest.raises(LocalProtocolError):
            engine.core.start_failed(ACTOR, 1, "late")

    def test_history_is_kept_while_disconnected_and_resent_once(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        engine.disconnect()
        core.sleep(ACTOR, 1)
        assert engine.pump() == []
        flush = engine.connect()
        assert of_type(flush, v8.ToServerEvents) == [
            v8.ToServerEvents(
                [
                    v8.EventWrapper(v8.ActorCheckpoint(ACTOR, 1, 0), RUNNING),
                    v8.EventWrapper(
                        v8.ActorCheckpoint(ACTOR, 1, 1),
                        v8.EventActorIntent(v8.ActorIntentSleep()),
                    ),
                ]
            )
        ]
        core.set_alarm(ACTOR, 1, 3)
        later = engine.pump()
        assert [w.checkpoint.index for w in event_wrappers(later)] == [2]

    def test_events_produced_while_handshaking_are_flushed_after_init(self) -> None:
        engine = hosting(ACTOR)
        engine.disconnect()
        engine.core.connection_made()
        engine.pump()
        engine.core.sleep(ACTOR, 1)
        assert engine.pump() == []
        out = engine.send(init())
        assert [w.checkpoint.index for w in event_wrappers(out)] == [0, 1]

    def test_events_lost_with_the_outbox_are_resent(self) -> None:
        engine = hosting(ACTOR)
        engine.core.sleep(ACTOR, 1)  # queued, never taken
        engine.core.connection_lost()
        flush = engine.connect()
        assert [w.checkpoint.index for w in event_wrappers(flush)] == [0, 1]

    def test_ack_prunes_history(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        core.sleep(ACTOR, 1)
        core.set_alarm(ACTOR, 1, 1)
        engine.send(ack_events((ACTOR, 1, 1)))
        flush = engine.reconnect()
        assert [w.checkpoint.index for w in event_wrappers(flush)] == [2]
        engine.send(ack_events((ACTOR, 1, 2)))
        assert engine.reconnect() == []

    @pytest.mark.parametrize("old_still_hosted", [True, False])
    def test_ack_for_an_older_generation_does_not_prune_the_newer_instance(
        self, old_still_hosted: bool
    ) -> None:
        engine = hosting(ACTOR)
        engine.core.sleep(ACTOR, 1)
        engine.send_commands(start(ACTOR, 2))
        if not old_still_hosted:
            engine.core.stop_completed(ACTOR, 1)
        engine.core.sleep(ACTOR, 2)
        engine.send(ack_events((ACTOR, 1, 10)))
        flush = engine.reconnect()
        gen2 = [w.checkpoint.index for w in event_wrappers(flush) if w.checkpoint.generation == 2]
        assert gen2 == [0, 1]

    def test_ack_for_unknown_actor_is_harmless(self) -> None:
        engine = hosting(ACTOR)
        assert engine.send(ack_events((OTHER, 1, 5), ("nope", 9, 0))) == []
        assert [w.checkpoint.index for w in event_wrappers(engine.reconnect())] == [0]

    def test_stopped_while_disconnected_is_reported_after_reconnect(self) -> None:
        """The final ActorStateStopped of an instance that stopped while disconnected must
        reach the engine (otherwise a destroy/sleep becomes a 'lost' actor)."""
        engine = hosting(ACTOR)
        core = engine.core
        core.stop(ACTOR, 1, destroy=True)
        engine.send_commands(stop(ACTOR, 1))
        engine.disconnect()
        core.stop_completed(ACTOR, 1)
        flush = engine.connect()
        assert [(w.checkpoint.index, w.inner) for w in event_wrappers(flush)] == [
            (0, RUNNING),
            (1, v8.EventActorIntent(v8.ActorIntentStop())),
            (2, stopped_event(v8.StopCode.OK)),
        ]
        assert engine.reconnect() == []  # sent once; the instance is gone

    def test_stopped_event_lost_with_the_outbox_is_resent(self) -> None:
        engine = hosting(ACTOR)
        engine.send_commands(stop(ACTOR, 1))
        engine.core.stop_completed(ACTOR, 1)
        engine.core.connection_lost()  # the Stopped frame was never taken
        flush = engine.connect()
        assert [w.inner for w in event_wrappers(flush)][-1] == stopped_event(v8.StopCode.ERROR)


# == 7. stop codes ================================================================================
class TestStopCodes:
    def _stop(self, engine: FakeEngine, error: str | None = None) -> v8.Event:
        engine.send_commands(stop(ACTOR, 1))
        engine.core.stop_completed(ACTOR, 1, error)
        return event_wrappers(engine.pump())[-1].inner

    def test_error_by_default(self) -> None:
        assert self._stop(hosting(ACTOR)) == stopped_event(v8.StopCode.ERROR)

    def test_error_after_sleep_or_plain_stop_intent(self) -> None:
        engine = hosting(ACTOR)
        engine.core.sleep(ACTOR, 1)
        engine.core.stop(ACTOR, 1)
        assert self._stop(engine) == stopped_event(v8.StopCode.ERROR)

    def test_ok_after_destroy_intent(self) -> None:
        engine = hosting(ACTOR)
        engine.core.stop(ACTOR, 1, destroy=True)
        engine.core.stop(ACTOR, 1)  # a later plain stop does not clear the destroy flag
        assert self._stop(engine) == stopped_event(v8.StopCode.OK)

    def test_ok_while_draining(self) -> None:
        engine = hosting(ACTOR)
        engine.core.begin_drain()
        assert self._stop(engine) == stopped_event(v8.StopCode.OK)

    def test_error_with_message_when_the_stop_path_failed(self) -> None:
        engine = hosting(ACTOR)
        engine.core.stop(ACTOR, 1, destroy=True)
        assert self._stop(engine, "boom") == stopped_event(v8.StopCode.ERROR, "boom")

    def test_start_failure_reports_error_with_its_message(self) -> None:
        engine = hosting(ACTOR, complete=False)
        engine.core.start_failed(ACTOR, 1, "start exploded")
        assert engine.take_events() == [ev.ActorStopRequested(ACTOR, 1, ev.StopReason.START_FAILED)]
        engine.core.begin_drain()  # even while draining a failed start is an error
        engine.core.stop_completed(ACTOR, 1)
        last = event_wrappers(engine.pump())[-1]
        assert last.inner == stopped_event(v8.StopCode.ERROR, "start exploded")

    def test_instance_is_removed_after_stop(self) -> None:
        engine = hosting(ACTOR)
        self._stop(engine)
        assert engine.core.hosted() == []
        with pytest.raises(LocalProtocolError):
            engine.core.sleep(ACTOR, 1)


# == 8. KV ========================================================================================
class TestKv:
    def test_ids_start_at_zero_and_increment(self) -> None:
        engine = hosting(ACTOR, OTHER)
        core = engine.core
        ids = [core.kv_request(a, 1, kv_get(b"k"), 0.0) for a in (ACTOR, OTHER, ACTOR)]
        assert ids == [0, 1, 2]
        assert engine.pump() == [
            v8.ToServerKvRequest(ACTOR, 0, kv_get(b"k")),
            v8.ToServerKvRequest(OTHER, 1, kv_get(b"k")),
            v8.ToServerKvRequest(ACTOR, 2, kv_get(b"k")),
        ]

    def test_ids_wrap_at_2_32_skipping_ids_in_flight(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        assert [core.kv_request(ACTOR, 1, kv_get(), 0.0) for _ in range(2)] == [0, 1]
        core._kv._next = U32 - 2
        ids = [core.kv_request(ACTOR, 1, kv_get(), 0.0) for _ in range(3)]
        assert ids == [U32 - 2, U32 - 1, 2]
        engine.send(kv_response(0))
        assert core.kv_request(ACTOR, 1, kv_get(), 0.0) == 3
        core._kv._next = U32 - 1
        assert core.kv_request(ACTOR, 1, kv_get(), 0.0) == 0  # freed, reused after the wrap
        for msg in of_type(engine.pump(), v8.ToServerKvRequest):
            assert 0 <= msg.request_id < U32
            codec.TO_SERVER.encode(msg, 8)

    def test_kv_table_wraps_from_its_first_id(self) -> None:
        table = KvTable(first_id=U32 - 1)
        assert [table.create("a", 1, kv_get(), 0.0).request_id for _ in range(2)] == [U32 - 1, 0]

    def test_ids_are_not_reset_by_reconnect(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        rid = core.kv_request(ACTOR, 1, kv_get(), 0.0)
        engine.send(kv_response(rid))
        engine.reconnect()
        assert core.kv_request(ACTOR, 1, kv_get(), 0.0) == rid + 1

    def test_queued_while_disconnected_and_sent_after_init(self) -> None:
        engine = hosting(ACTOR)
        engine.disconnect()
        rid = engine.core.kv_request(ACTOR, 1, kv_get(b"q"), 0.0)
        assert engine.pump() == []
        engine.core.connection_made()
        assert [type(m) for m in engine.pump()] == [v8.ToServerInit]  # not before init
        flush = engine.send(init())
        assert flush[0] == v8.ToServerKvRequest(ACTOR, rid, kv_get(b"q"))

    def test_in_flight_request_is_resent_after_reconnect(self) -> None:
        engine = hosting(ACTOR)
        rid = engine.core.kv_request(ACTOR, 1, kv_get(b"f"), 0.0)
        engine.pump()
        flush = engine.reconnect()
        assert of_type(flush, v8.ToServerKvRequest) == [
            v8.ToServerKvRequest(ACTOR, rid, kv_get(b"f"))
        ]

    def test_response_resolves_and_late_duplicate_is_ignored(self) -> None:
        engine = hosting(ACTOR)
        rid = engine.core.kv_request(ACTOR, 1, kv_get(b"k"), 0.0)
        engine.reconnect()
        engine.take_events()
        data = kv_get_response([b"k"], [b"v"])
        engine.send(kv_response(rid, data))
        engine.send(kv_response(rid, kv_get_response()))
        assert engine.take_events() == [ev.KvResponded(rid, ACTOR, data)]
        assert engine.core.pending_kv() == 0

    def test_unknown_response_id_is_ignored(self) -> None:
        engine = hosting(ACTOR)
        assert engine.send(kv_response(12345)) == []
        assert engine.take_events() == []

    def test_error_response_fails_the_request(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        a = core.kv_request(ACTOR, 1, kv_get(), 0.0)
        b = core.kv_request(ACTOR, 1, kv_get(), 0.0)
        engine.send(kv_error(b, "actor does not belong to runner"))
        engine.send(kv_error(a, ""))
        assert engine.take_events() == [
            ev.KvFailed(b, ACTOR, "actor does not belong to runner"),
            ev.KvFailed(a, ACTOR, "Unknown KV error"),
        ]

    def test_timeouts(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        a = core.kv_request(ACTOR, 1, kv_get(), 10.0)
        b = core.kv_request(ACTOR, 1, kv_get(), 20.0)
        assert core.kv_next_deadline() == 40.0
        core.expire_kv(39.9)
        assert engine.take_events() == []
        core.expire_kv(40.0)
        assert engine.take_events() == [ev.KvFailed(a, ACTOR, "KV request timed out", True)]
        assert core.kv_next_deadline() == 50.0
        core.expire_kv(100.0)
        assert engine.take_events() == [ev.KvFailed(b, ACTOR, "KV request timed out", True)]
        assert core.kv_next_deadline() is None
        engine.send(kv_response(a))  # a late answer to a timed-out request
        assert engine.take_events() == []

    def test_unsent_requests_time_out_too(self) -> None:
        engine = hosting(ACTOR)
        engine.disconnect()
        rid = engine.core.kv_request(ACTOR, 1, kv_get(), 0.0)
        engine.core.expire_kv(30.0)
        assert engine.take_events() == [ev.KvFailed(rid, ACTOR, "KV request timed out", True)]
        assert of_type(engine.connect(), v8.ToServerKvRequest) == []

    def test_custom_timeout(self) -> None:
        engine = connected(RunnerConfig("pool", 1, kv_timeout=1.0))
        engine.start_actor(ACTOR, 1)
        rid = engine.core.kv_request(ACTOR, 1, kv_get(), 0.0)
        engine.core.expire_kv(1.0)
        assert of_type(engine.take_events(), ev.KvFailed) == [
            ev.KvFailed(rid, ACTOR, "KV request timed out", True)
        ]

    def test_runner_lost_fails_every_request_and_stops_every_actor(self) -> None:
        engine = hosting(ACTOR, OTHER)
        core = engine.core
        a = core.kv_request(ACTOR, 1, kv_get(), 0.0)
        engine.disconnect()
        b = core.kv_request(OTHER, 1, kv_get(), 0.0)
        core.runner_lost()
        events = engine.take_events()
        failed = of_type(events, ev.KvFailed)
        assert [(f.request_id, f.actor_id) for f in failed] == [(a, ACTOR), (b, OTHER)]
        assert all("lost" in f.message and not f.timed_out for f in failed)
        assert {(s.actor_id, s.reason) for s in of_type(events, ev.ActorStopRequested)} == {
            (ACTOR, ev.StopReason.RUNNER_LOST),
            (OTHER, ev.StopReason.RUNNER_LOST),
        }
        assert core.pending_kv() == 0
        assert of_type(engine.connect(), v8.ToServerKvRequest) == []

    def test_shutdown_fails_every_request_and_refuses_new_ones(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        rid = core.kv_request(ACTOR, 1, kv_get(), 0.0)
        core.shutdown()
        events = engine.take_events()
        assert of_type(events, ev.KvFailed) == [ev.KvFailed(rid, ACTOR, "runner shut down")]
        assert of_type(events, ev.ActorStopRequested) == [
            ev.ActorStopRequested(ACTOR, 1, ev.StopReason.SHUTDOWN)
        ]
        with pytest.raises(LocalProtocolError):
            core.kv_request(ACTOR, 1, kv_get(), 0.0)
        core.shutdown(ev.StopReason.EVICTED)  # idempotent
        assert engine.take_events() == []

    def test_eviction_reason(self) -> None:
        engine = hosting(ACTOR)
        engine.core.shutdown(ev.StopReason.EVICTED)
        assert engine.take_events() == [ev.ActorStopRequested(ACTOR, 1, ev.StopReason.EVICTED)]


# == 10. tunnel ===================================================================================
class TestTunnel:
    def test_http_to_unknown_actor_gets_503(self) -> None:
        engine = hosting(ACTOR)
        k = key(1)
        out = engine.send(tunnel(k, 0, http_start(OTHER)))
        assert out == [ws_frame(k, 0, NOT_FOUND_503)]
        assert engine.take_events() == []

    def test_http_to_a_stopping_actor_gets_503(self) -> None:
        engine = hosting(ACTOR)
        engine.send_commands(stop(ACTOR, 1))
        out = engine.send(tunnel(key(1), 0, http_start(ACTOR)))
        assert out == [ws_frame(key(1), 0, NOT_FOUND_503)]

    def test_websocket_open_to_unknown_actor_is_closed(self) -> None:
        engine = connected()
        k = key(2)
        out = engine.send(tunnel(k, 0, ws_open(ACTOR)))
        assert out == [ws_frame(k, 0, v8.ToServerWebSocketClose(1011, "Actor not found", False))]
        assert engine.take_events() == []

    def test_http_request_is_delivered_and_answered(self) -> None:
        engine = hosting(ACTOR)
        k = key(3)
        engine.send(tunnel(k, 0, http_start(ACTOR, "POST", "/x?y=1", {"a": "b"}, b"in")))
        assert engine.take_events() == [
            ev.HttpRequestReceived(k, ACTOR, "POST", "/x?y=1", {"a": "b"}, b"in", False)
        ]
        assert engine.core.send_http_response(k, 201, {"x": "1"}, b"hello")
        assert engine.pump() == [
            ws_frame(
                k,
                0,
                v8.ToServerResponseStart(201, {"x": "1", "content-length": "5"}, b"hello", False),
            )
        ]
        assert not engine.core.send_http_response(k, 200, {}, None)  # already answered
        assert engine.pump() == []

    @pytest.mark.parametrize(
        ("headers", "body", "expected"),
        [
            ({}, None, {}),
            ({}, b"", {}),
            ({"Content-Length": "3"}, b"abc", {"Content-Length": "3"}),
            ({"content-length": "3"}, b"abc", {"content-length": "3"}),
            ({"a": "b"}, b"abcd", {"a": "b", "content-length": "4"}),
        ],
    )
    def test_content_length(
        self, headers: dict[str, str], body: bytes | None, expected: dict[str, str]
    ) -> None:
        engine = hosting(ACTOR)
        engine.send(tunnel(key(1), 0, http_start(ACTOR)))
        engine.core.send_http_response(key(1), 200, headers, body)
        [msg] = tunnel_out(engine.pump())
        assert isinstance(msg.message_kind, v8.ToServerResponseStart)
        assert msg.message_kind.headers == expected

    def test_invalid_status_is_a_local_error(self) -> None:
        engine = hosting(ACTOR)
        engine.send(tunnel(key(1), 0, http_start(ACTOR)))
        with pytest.raises(LocalProtocolError):
            engine.core.send_http_response(key(1), 42, {}, None)
        assert engine.core.send_http_response(key(1), 200, {}, None)

    def test_payload_limit(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        http, ws = key(1), key(2)
        engine.send(tunnel(http, 0, http_start(ACTOR)))
        engine.send(tunnel(ws, 0, ws_open(ACTOR)))
        core.accept_websocket(ws, False)
        engine.pump()
        too_big = bytes(MAX_TUNNEL_PAYLOAD + 1)
        with pytest.raises(LocalProtocolError):
            core.send_http_response(http, 200, {}, too_big)
        with pytest.raises(LocalProtocolError):
            core.send_websocket_message(ws, too_big, True)
        assert engine.pump() == []
        # state unchanged: the request can still be answered, indexes were not consumed
        assert core.send_http_response(http, 200, {}, bytes(MAX_TUNNEL_PAYLOAD))
        assert core.send_websocket_message(ws, bytes(MAX_TUNNEL_PAYLOAD), True)
        out = engine.pump()
        assert [m.message_id.message_index for m in tunnel_out(out, http)] == [0]
        assert [m.message_id.message_index for m in tunnel_out(out, ws)] == [1]

    def test_streamed_chunk_payload_limit(self) -> None:
        engine = hosting(ACTOR)
        engine.send(tunnel(key(1), 0, http_start(ACTOR)))
        assert engine.core.start_http_response(key(1), 200, {})
        with pytest.raises(LocalProtocolError):
            engine.core.send_http_chunk(key(1), bytes(MAX_TUNNEL_PAYLOAD + 1), True)

    def test_outgoing_index_is_per_request_from_zero(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        a, b = key(1), key(2)
        engine.send(tunnel(a, 0, ws_open(ACTOR)))
        engine.send(tunnel(b, 0, ws_open(ACTOR)))
        core.accept_websocket(a, False)
        core.send_websocket_message(a, b"1", False)
        core.accept_websocket(b, False)
        core.send_websocket_message(a, b"2", True)
        core.close_websocket(b, 1000, "bye")
        out = engine.pump()
        assert [(m.message_id.message_index, m.message_kind) for m in tunnel_out(out, a)] == [
            (0, v8.ToServerWebSocketOpen(False)),
            (1, v8.ToServerWebSocketMessage(b"1", False)),
            (2, v8.ToServerWebSocketMessage(b"2", True)),
        ]
        assert [(m.message_id.message_index, m.message_kind) for m in tunnel_out(out, b)] == [
            (0, v8.ToServerWebSocketOpen(False)),
            (1, v8.ToServerWebSocketClose(1000, "bye", False)),
        ]
        assert not core.send_websocket_message(b, b"late", True)

    def test_messages_buffered_while_disconnected_get_indexes_when_sent(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        ws, http = key(1), key(2)
        engine.send(tunnel(ws, 0, ws_open(ACTOR)))
        engine.send(tunnel(http, 0, http_start(ACTOR)))
        core.accept_websocket(ws, False)
        assert [m.message_id.message_index for m in tunnel_out(engine.pump())] == [0]
        engine.disconnect()
        assert core.send_websocket_message(ws, b"a", True)
        assert core.send_websocket_message(ws, b"b", True)
        assert core.send_http_response(http, 204, {}, None)
        assert engine.pump() == []
        engine.core.connection_made()
        assert [type(m) for m in engine.pump()] == [v8.ToServerInit]
        flush = engine.send(init())
        assert tunnel_out(flush) == [
            ws_frame(ws, 1, v8.ToServerWebSocketMessage(b"a", True)),
            ws_frame(ws, 2, v8.ToServerWebSocketMessage(b"b", True)),
            ws_frame(http, 0, v8.ToServerResponseStart(204, {}, None, False)),
        ]
        core.send_websocket_message(ws, b"c", True)
        assert [m.message_id.message_index for m in tunnel_out(engine.pump())] == [3]

    def test_traffic_for_a_starting_actor_is_held_until_start_completed(self) -> None:
        engine = hosting(ACTOR, complete=False)
        http, ws = key(1), key(2)
        engine.send(tunnel(http, 0, http_start(ACTOR, path="/a")))
        engine.send(tunnel(ws, 0, ws_open(ACTOR, "/b")))
        engine.send(tunnel(http, 1, v8.ToClientRequestAbort()))
        engine.send(tunnel(key(3), 0, http_start(ACTOR, path="/c")))
        assert engine.take_events() == []
        assert engine.pump() == []
        engine.core.start_completed(ACTOR, 1)
        assert engine.take_events() == [
            ev.HttpRequestReceived(http, ACTOR, "GET", "/a", {}, None, False),
            ev.WebSocketOpenRequested(ws, ACTOR, "/b", {}),
            ev.HttpRequestAborted(http),
            ev.HttpRequestReceived(key(3), ACTOR, "GET", "/c", {}, None, False),
        ]
        assert not engine.core.send_http_response(http, 200, {}, None)  # aborted
        assert engine.core.send_http_response(key(3), 200, {}, None)

    def test_held_traffic_is_refused_when_the_start_fails(self) -> None:
        engine = hosting(ACTOR, complete=False)
        http, ws = key(1), key(2)
        engine.send(tunnel(http, 0, http_start(ACTOR)))
        engine.send(tunnel(ws, 0, ws_open(ACTOR)))
        engine.core.start_failed(ACTOR, 1, "nope")
        out = engine.pump()
        assert tunnel_out(out) == [
            ws_frame(http, 0, NOT_FOUND_503),
            ws_frame(ws, 0, v8.ToServerWebSocketClose(1011, "Actor not found", False)),
        ]
        assert of_type(engine.take_events(), ev.HttpRequestReceived) == []

    def test_websocket_close_from_the_engine(self) -> None:
        engine = hosting(ACTOR)
        ws = key(1)
        engine.send(tunnel(ws, 0, ws_open(ACTOR)))
        engine.core.accept_websocket(ws, False)
        engine.send(tunnel(ws, 1, v8.ToClientWebSocketClose(1001, "away")))
        assert engine.take_events()[-1] == ev.WebSocketClosed(ws, 1001, "away", True, False)
        assert not engine.core.send_websocket_message(ws, b"x", True)

    def test_accept_twice_is_a_local_error(self) -> None:
        engine = hosting(ACTOR)
        engine.send(tunnel(key(1), 0, ws_open(ACTOR)))
        assert engine.core.accept_websocket(key(1), True)
        with pytest.raises(LocalProtocolError):
            engine.core.accept_websocket(key(1), True)
        assert not engine.core.accept_websocket(key(9), True)

    def test_non_hibernatable_socket_skips_index_validation(self) -> None:
        engine = hosting(ACTOR)
        ws = key(1)
        engine.send(tunnel(ws, 0, ws_open(ACTOR)))
        engine.core.accept_websocket(ws, False)
        engine.take_events()
        for index in (5, 5, 2):
            engine.send(tunnel(ws, index, ws_message(b"m")))
        assert [e.index for e in of_type(engine.take_events(), ev.WebSocketMessageReceived)] == [
            5,
            5,
            2,
        ]
        with pytest.raises(LocalProtocolError):
            engine.core.ack_websocket(ws, 5)


# == hibernation.md §8 ============================================================================
class TestHibernation:
    def _open_hws(self, engine: FakeEngine, ws: ev.TunnelKey, index: int = 0) -> None:
        engine.send(tunnel(ws, index, ws_open(ACTOR)))
        assert engine.core.accept_websocket(ws, True)
        engine.take_events()
        engine.pump()

    def test_duplicate_ignored_gap_closes_with_1008(self) -> None:
        engine = hosting(ACTOR)
        ws = key(1)
        self._open_hws(engine, ws)
        engine.send(tunnel(ws, 1, ws_message(b"1")))
        engine.send(tunnel(ws, 1, ws_message(b"1 again")))
        engine.send(tunnel(ws, 0, ws_message(b"older")))
        out = engine.send(tunnel(ws, 3, ws_message(b"gap")))
        assert out == [
            ws_frame(ws, 1, v8.ToServerWebSocketClose(1008, "ws.message_index_skip", False))
        ]
        assert engine.take_events() == [
            ev.WebSocketMessageReceived(ws, b"1", True, 1),
            ev.WebSocketClosed(ws, 1008, "ws.message_index_skip", False, True),
        ]
        engine.send(tunnel(ws, 2, ws_message(b"after close")))
        assert engine.take_events() == []

    def test_index_wraps_past_65535(self) -> None:
        engine = hosting(ACTOR)
        ws = key(1)
        self._open_hws(engine, ws, index=65534)
        for index in (65535, 0, 1):
            engine.send(tunnel(ws, index, ws_message(bytes([index % 256]))))
        engine.send(tunnel(ws, 65535, ws_message(b"dup")))  # behind 1 on the circle
        assert [e.index for e in of_type(engine.take_events(), ev.WebSocketMessageReceived)] == [
            65535,
            0,
            1,
        ]
        assert of_type(engine.pump(), v8.ToServerTunnelMessage) == []

    def test_ack(self) -> None:
        engine = hosting(ACTOR)
        ws = key(1)
        self._open_hws(engine, ws)
        assert engine.core.ack_websocket(ws, 7)
        assert engine.pump() == [ws_frame(ws, 1, v8.ToServerWebSocketMessageAck(7))]
        for bad in (-1, 65536):
            with pytest.raises(LocalProtocolError):
                engine.core.ack_websocket(ws, bad)
        assert not engine.core.ack_websocket(key(9), 1)

    def test_duplicate_open_confirms_and_resets_indexes_on_zero(self) -> None:
        engine = hosting(ACTOR)
        ws = key(1)
        self._open_hws(engine, ws, index=0)
        engine.send(tunnel(ws, 1, ws_message(b"1")))
        engine.send(tunnel(ws, 2, ws_message(b"2")))
        engine.core.send_websocket_message(ws, b"out", True)
        engine.take_events()
        engine.pump()
        out = engine.send(tunnel(ws, 0, ws_open(ACTOR)))  # the gateway retried the open
        assert [m.message_kind for m in tunnel_out(out)] == [v8.ToServerWebSocketOpen(True)]
        assert engine.take_events() == []  # not a new socket
        engine.send(tunnel(ws, 1, ws_message(b"again")))  # indexes were reset to 0
        assert engine.take_events() == [ev.WebSocketMessageReceived(ws, b"again", True, 1)]
        engine.core.send_websocket_message(ws, b"o", True)
        assert [m.message_id.message_index for m in tunnel_out(engine.pump())] == [0]

    def test_restore_with_persisted_indexes(self) -> None:
        engine = connected()
        a, b = key(1), key(2)
        engine.send_commands(start(ACTOR, 1, hibernating=[a, b]))
        [started] = of_type(engine.take_events(), ev.ActorStartRequested)
        assert started.hibernating_requests == (a, b)
        # the gateway replays buffered messages before the actor restored the socket
        for index in (9, 10, 11):
            engine.send(tunnel(a, index, ws_message(bytes([index]))))
        engine.send(tunnel(b, 4, ws_message(b"b")))
        assert engine.take_events() == []
        engine.core.restore_websocket(ACTOR, 1, a, server_index=10, client_index=7)
        engine.core.send_websocket_message(a, b"restored", False)  # allowed while starting
        engine.core.start_completed(ACTOR, 1)
        out = engine.pump()
        assert tunnel_out(out) == [
            ws_frame(a, 7, v8.ToServerWebSocketMessage(b"restored", False)),
            ws_frame(
                b, 0, v8.ToServerWebSocketClose(1000, "ws.meta_not_found_during_restore", False)
            ),
            # the replayed 9 and 10 are at or below the persisted index: acknowledged again
            # (the gateway replays them only because their ack was lost)
            ws_frame(a, 8, v8.ToServerWebSocketMessageAck(10)),
            ws_frame(a, 9, v8.ToServerWebSocketMessageAck(10)),
        ]
        assert engine.take_events() == [ev.WebSocketMessageReceived(a, bytes([11]), True, 11)]
        engine.send(tunnel(a, 12, ws_message(b"live")))
        assert engine.take_events() == [ev.WebSocketMessageReceived(a, b"live", True, 12)]
        assert engine.core.ack_websocket(a, 12)
        assert tunnel_out(engine.pump())[0].message_id.message_index == 10

    def test_restore_wraps_past_65535(self) -> None:
        engine = connected()
        a = key(1)
        engine.send_commands(start(ACTOR, 1, hibernating=[a]))
        engine.core.restore_websocket(ACTOR, 1, a, server_index=65535, client_index=65535)
        engine.core.start_completed(ACTOR, 1)
        engine.send(tunnel(a, 0, ws_message(b"w")))
        assert of_type(engine.take_events(), ev.WebSocketMessageReceived) == [
            ev.WebSocketMessageReceived(a, b"w", True, 0)
        ]
        engine.core.send_websocket_message(a, b"o", True)
        engine.core.send_websocket_message(a, b"p", True)
        assert [m.message_id.message_index for m in tunnel_out(engine.pump())] == [65535, 0]

    def test_restore_errors(self) -> None:
        engine = connected()
        a = key(1)
        engine.send_commands(start(ACTOR, 1, hibernating=[a]))
        core = engine.core
        with pytest.raises(LocalProtocolError):
            core.restore_websocket(ACTOR, 1, key(2), 0, 0)  # not listed
        with pytest.raises(LocalProtocolError):
            core.restore_websocket(ACTOR, 1, a, 65536, 0)
        with pytest.raises(LocalProtocolError):
            core.restore_websocket(ACTOR, 2, a, 0, 0)  # not hosted
        core.restore_websocket(ACTOR, 1, a, 0, 0)
        with pytest.raises(LocalProtocolError):
            core.restore_websocket(ACTOR, 1, a, 0, 0)  # restored twice
        core.start_completed(ACTOR, 1)
        assert engine.pump() == []  # restored: nothing to close

    def test_no_restore_after_start_completed(self) -> None:
        engine = connected()
        a = key(1)
        engine.send_commands(start(ACTOR, 1, hibernating=[a]))
        engine.core.start_completed(ACTOR, 1)
        with pytest.raises(LocalProtocolError):
            engine.core.restore_websocket(ACTOR, 1, a, 0, 0)

    def test_stop_completed_closes_local_sockets_and_aborts_http(self) -> None:
        engine = hosting(ACTOR)
        core = engine.core
        http, plain, hws = key(1), key(2), key(3)
        engine.send(tunnel(http, 0, http_start(ACTOR)))
        engine.send(tunnel(plain, 0, ws_open(ACTOR)))
        engine.send(tunnel(hws, 0, ws_open(ACTOR)))
        core.accept_websocket(plain, False)
        core.accept_websocket(hws, True)
        engine.pump()
        engine.take_events()
        engine.send_commands(stop(ACTOR, 1))
        engine.take_events()
        core.stop_completed(ACTOR, 1)
        out = engine.pump()
        assert tunnel_out(out) == []  # nothing reported to the engine
        assert of_type(out, v8.ToServerEvents) != []
        assert engine.take_events() == [
            ev.HttpRequestAborted(http),
            ev.WebSocketClosed(plain, 1000, "actor.stopped", False, False),
        ]
        assert not core.send_http_response(http, 200, {}, None)
        assert not core.send_websocket_message(plain, b"x", True)
        assert not core.send_websocket_message(hws, b"x", True)
        assert engine.pump() == []


# == 12. drain ====================================================================================
class TestDrain:
    def test_drain_sends_stopping_once(self) -> None:
        engine = connected()
        engine.core.begin_drain()
        engine.core.begin_drain()
        assert engine.pump() == [v8.ToServerStopping()]

    def test_drain_begun_while_disconnected_is_sent_after_reconnect(self) -> None:
        engine = hosting(ACTOR)
        engine.disconnect()
        engine.core.begin_drain()
        assert engine.pump() == []
        engine.core.connection_made()
        assert [type(m) for m in engine.pump()] == [v8.ToServerInit]
        flush = engine.send(init())
        assert [type(m) for m in flush] == [v8.ToServerEvents, v8.ToServerStopping]

    def test_drain_is_repeated_after_a_reconnect(self) -> None:
        engine = connected()
        engine.core.begin_drain()
        engine.pump()
        assert engine.reconnect() == [v8.ToServerStopping()]


def test_hibernatable_message_for_a_stopping_actor_is_neither_delivered_nor_consumed() -> None:
    core = RunnerCore(RunnerConfig(name="py", total_slots=1))
    core.connection_made()
    core.receive_message(v8.ToClientInit("r", v8.ProtocolMetadata(15_000, 30_000, None)))
    start = v8.CommandStartActor(v8.ActorConfig("a", None, 0, None), [], None)
    core.receive_message(
        v8.ToClientCommands([v8.CommandWrapper(v8.ActorCheckpoint("x", 1, 0), start)])
    )
    core.start_completed("x", 1)
    key = (b"gwid", b"rqid")
    core.receive_message(
        v8.ToClientTunnelMessage(v8.MessageId(*key, 0), v8.ToClientWebSocketOpen("x", "/", {}))
    )
    core.accept_websocket(key, True)
    core.next_events()
    core.receive_message(
        v8.ToClientCommands(
            [v8.CommandWrapper(v8.ActorCheckpoint("x", 1, 1), v8.CommandStopActor())]
        )
    )
    core.receive_message(
        v8.ToClientTunnelMessage(v8.MessageId(*key, 1), v8.ToClientWebSocketMessage(b"late", True))
    )
    events = core.next_events()
    assert not any(isinstance(e, ev.WebSocketMessageReceived) for e in events)
    assert any(isinstance(e, ev.ActorStopRequested) for e in events)
