"""The sans-IO engine connection core: handshake, hydration, event dedup and acks, pings."""

from __future__ import annotations

import pytest

import codec
from codec import v8
from rivetpy.protocol import engine as proto
from rivetpy.protocol.engine import EngineConnection, HandshakeError, Hydration, QueuedCommand
from rivetpy.protocol.errors import LocalProtocolError

INIT = v8.ToServerInit("py", 1, 10, {"echo": v8.ActorName("{}")}, None)
META = v8.ProtocolMetadata(15_000, 30_000, None)
KV_META = v8.KvMetadata(b"1", 2)
PRELOAD = v8.PreloadedKv([v8.PreloadedKvEntry(b"\x01", b"v", KV_META)], [b"\x01"], [b"\x08\x01"])
HIB = [v8.HibernatingRequest(b"gwid", b"rqid")]


def start(gen: int = 0, index: int = 0) -> QueuedCommand:
    config = v8.ActorConfig("echo", None, 1, None)
    return QueuedCommand(
        v8.ActorCheckpoint("a", gen, index), v8.CommandStartActor(config, [], None)
    )


def opened(version: int = 8) -> EngineConnection:
    conn = EngineConnection(version, now_ms=0)
    events = conn.receive_frame(codec.TO_SERVER.encode(INIT, version))
    assert events == [proto.InitReceived(INIT)]
    conn.send_init("runner", META)
    assert len(conn.data_to_send()) == 1
    return conn


def sent(conn: EngineConnection) -> list[v8.ToClient]:
    return [codec.TO_CLIENT.decode(f, conn.protocol_version) for f in conn.data_to_send()]


@pytest.mark.parametrize(
    ("frame", "close"),
    [
        ("text", proto.INVALID_INITIAL_PACKET),
        (b"\xff\xff", proto.INVALID_PACKET),
        (codec.TO_SERVER.encode(v8.ToServerPong(1), 8), proto.INVALID_INITIAL_PACKET),
    ],
)
def test_handshake_errors_map_to_close_reasons(frame: bytes | str, close: object) -> None:
    conn = EngineConnection(8, now_ms=0)
    with pytest.raises(HandshakeError) as info:
        conn.receive_frame(frame)
    assert info.value.close == close
    assert info.value.close.code == 1011


def test_connect_query_errors() -> None:
    ok = proto.parse_connect_query(
        {"protocol_version": ["7"], "namespace": ["d"], "runner_key": ["k"]}
    )
    assert ok == proto.ConnectParams(7, "d", "k")
    with pytest.raises(HandshakeError) as info:
        proto.parse_connect_query({"namespace": ["d"], "runner_key": ["k"]})
    assert info.value.close == proto.INVALID_URL
    with pytest.raises(HandshakeError) as info:
        proto.parse_connect_query(
            {"protocol_version": ["99"], "namespace": ["d"], "runner_key": ["k"]}
        )
    assert info.value.close == proto.INVALID_PACKET
    assert proto.EVICTION.reason("ray") == "ws.eviction#ray"
    assert len(proto.INTERNAL_ERROR.reason("x" * 500).encode()) == 123


def test_init_twice_is_ignored_and_no_commands_before_handshake() -> None:
    conn = EngineConnection(8, now_ms=0)
    with pytest.raises(LocalProtocolError):
        conn.send_commands([start()], {start().key: Hydration()})
    conn = opened()
    assert conn.receive_frame(codec.TO_SERVER.encode(INIT, 8)) == []


def test_hydration_fills_each_send_and_never_touches_the_stored_command() -> None:
    conn = opened(8)
    stored = start()
    conn.send_commands([stored], {stored.key: Hydration(HIB, PRELOAD)})
    (msg,) = sent(conn)
    assert isinstance(msg, v8.ToClientCommands)
    inner = msg.value[0].inner
    assert isinstance(inner, v8.CommandStartActor)
    assert inner.preloaded_kv == PRELOAD
    assert inner.hibernating_requests == HIB
    # the stored form is unchanged and re-sending uses the fresh data of that send
    assert isinstance(stored.command, v8.CommandStartActor)
    assert stored.command.preloaded_kv is None and stored.command.hibernating_requests == []
    fresh = v8.PreloadedKv([], [b"\x01"], [])
    conn.send_commands([stored], {stored.key: Hydration([], fresh)})
    (replay,) = sent(conn)
    assert isinstance(replay, v8.ToClientCommands)
    again = replay.value[0].inner
    assert isinstance(again, v8.CommandStartActor)
    assert again.preloaded_kv == fresh and again.hibernating_requests == []
    assert conn.hydrated_sends == 2


def test_hydration_is_required_and_stored_commands_must_be_bare() -> None:
    conn = opened(8)
    with pytest.raises(LocalProtocolError):
        conn.send_commands([start()], {})
    config = v8.ActorConfig("echo", None, 1, None)
    hydrated = QueuedCommand(
        v8.ActorCheckpoint("a", 0, 0), v8.CommandStartActor(config, [], PRELOAD)
    )
    with pytest.raises(LocalProtocolError):
        conn.send_commands([hydrated], {hydrated.key: Hydration()})
    with pytest.raises(LocalProtocolError):
        proto.check_stored(hydrated.command)
    assert conn.data_to_send() == []


def test_v7_connection_gets_no_preload() -> None:
    conn = opened(7)
    assert not conn.wants_preload
    stored = start()
    conn.send_commands([stored], {stored.key: Hydration(HIB, PRELOAD)})
    (msg,) = sent(conn)
    assert isinstance(msg, v8.ToClientCommands)
    inner = msg.value[0].inner
    assert isinstance(inner, v8.CommandStartActor)
    assert inner.preloaded_kv is None and inner.hibernating_requests == HIB


def event(index: int, gen: int = 0) -> v8.EventWrapper:
    return v8.EventWrapper(
        v8.ActorCheckpoint("a", gen, index), v8.EventActorStateUpdate(v8.ActorStateRunning())
    )


def events_frame(*wrappers: v8.EventWrapper) -> bytes:
    return codec.TO_SERVER.encode(v8.ToServerEvents(list(wrappers)), 8)


def test_event_dedup_accepts_only_the_next_index() -> None:
    conn = opened()
    (got,) = conn.receive_frame(events_frame(event(0), event(1)))
    assert isinstance(got, proto.ActorEventsReceived) and len(got.events) == 2
    # a resent history: only the new tail is reported; a gap is dropped
    (got,) = conn.receive_frame(events_frame(event(0), event(1), event(2), event(4)))
    assert isinstance(got, proto.ActorEventsReceived)
    assert [e.checkpoint.index for e in got.events] == [2]
    assert conn.receive_frame(events_frame(event(1))) == []
    # generations are independent; seeded indexes come from the durable state
    conn.seed_event_index("a", 5, 9)
    (got,) = conn.receive_frame(events_frame(event(9, 5), event(10, 5), event(0, 1)))
    assert isinstance(got, proto.ActorEventsReceived)
    assert [(e.checkpoint.generation, e.checkpoint.index) for e in got.events] == [(5, 10), (1, 0)]
    assert conn.data_to_send() == []


def test_event_acks_are_batched_every_250() -> None:
    conn = opened()
    conn.receive_frame(events_frame(*[event(i) for i in range(249)]))
    assert conn.data_to_send() == []
    conn.receive_frame(events_frame(event(249)))
    (ack,) = sent(conn)
    assert ack == v8.ToClientAckEvents([v8.ActorCheckpoint("a", 0, 249)])
    conn.receive_frame(events_frame(*[event(i) for i in range(250, 499)]))
    assert conn.data_to_send() == []
    conn.receive_frame(events_frame(event(499)))
    assert sent(conn) == [v8.ToClientAckEvents([v8.ActorCheckpoint("a", 0, 499)])]


def test_command_acks_kv_tunnel_stopping_and_pong_are_surfaced() -> None:
    conn = opened()
    cp = v8.ActorCheckpoint("a", 0, 3)
    assert conn.receive_frame(codec.TO_SERVER.encode(v8.ToServerAckCommands([cp]), 8)) == [
        proto.CommandsAcked([cp])
    ]
    kv = v8.ToServerKvRequest("a", 7, v8.KvGetRequest([b"k"]))
    assert conn.receive_frame(codec.TO_SERVER.encode(kv, 8)) == [
        proto.KvRequestReceived("a", 7, v8.KvGetRequest([b"k"]))
    ]
    assert conn.receive_frame(codec.TO_SERVER.encode(v8.ToServerStopping(), 8)) == [
        proto.StoppingReceived()
    ]
    conn.send_ping(1_000)
    assert sent(conn) == [v8.ToClientPing(1_000)]
    assert conn.receive_frame(codec.TO_SERVER.encode(v8.ToServerPong(1_000), 8), 1_040) == [
        proto.PongReceived(40)
    ]
    assert not conn.ping_timed_out(16_000)
    assert conn.ping_timed_out(16_041)
    # a pong from the future is recorded as u32::MAX
    conn.receive_frame(codec.TO_SERVER.encode(v8.ToServerPong(5_000), 8), 2_000)
    assert conn.rtt_ms == proto.U32_MAX
    # garbage after the handshake is ignored
    assert conn.receive_frame(b"\xff\xff\xff") == []
    conn.send_kv_response(7, v8.KvPutResponse())
    assert sent(conn) == [v8.ToClientKvResponse(7, v8.KvPutResponse())]
