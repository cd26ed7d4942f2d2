"""Invalid input: every strictness rule of runner-protocol.md §3, on every decoding path.

Each decode case must make the versioned API raise :class:`DecodeError` (never anything else)
with the failing field's path and byte offset, and must be rejected by the compiled decoder
(``compile_type(t).decode_at``) and by the interpreted Construct path (``t._parse``): strictness
has to survive compilation. Each encode case must make the versioned API raise
:class:`EncodeError` with the failing field's path, and be rejected by both encoders.
"""

from __future__ import annotations

import collections
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from codec import versioned
from codec.bare import BareBuildError, BareParseError, BareType, compile_type
from codec.errors import DecodeError, EncodeError
from codec.generated import v7, v8
from tests.strategies import values_for

VECTORS = Path(__file__).resolve().parent / "vectors" / "v7.json"
GOLDEN: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]

#: Text the codec puts in an error when its compiled and interpreted paths disagree.
BUG_MARKERS = ("(bug)", "internal decoder error")

TOP_LEVEL: dict[str, versioned.TopLevel[Any]] = {
    "ToClient": versioned.TO_CLIENT,
    "ToServer": versioned.TO_SERVER,
    "ToRunner": versioned.TO_RUNNER,
    "ToGateway": versioned.TO_GATEWAY,
    "ToServerlessServer": versioned.TO_SERVERLESS_SERVER,
    "ActorCommandKeyData": versioned.ACTOR_COMMAND_KEY_DATA,
}


def h(text: str) -> bytes:
    """Hex with spaces allowed."""
    return bytes.fromhex(text.replace(" ", ""))


def compiled_accepts(t: BareType, data: bytes) -> bool:
    """The compiled decoder accepts iff it returns without raising and consumes every byte."""
    try:
        _, end = compile_type(t).decode_at(data, 0, len(data))
    except Exception:
        return False
    return end == len(data)


def interpreted_reject(t: BareType, data: bytes, name: str) -> BareParseError | None:
    """Run the interpreted path: its BareParseError, or None if it stopped before the end.

    Fails the test if it accepts the whole input or raises anything but BareParseError.
    """
    stream = io.BytesIO(data)
    try:
        t._parse(stream, None, name)
    except BareParseError as exc:
        return exc
    assert stream.tell() < len(data), f"interpreted path accepts {data.hex()}"
    return None


def assert_decode_error(name: str, version: int, data: bytes) -> DecodeError:
    """decode_raw and decode (and the TopLevel object) raise DecodeError and nothing else."""
    with pytest.raises(DecodeError) as info:
        versioned.decode_raw(name, data, version)
    err = info.value
    assert not any(m in err.reason for m in BUG_MARKERS), err
    assert err.offset is not None
    assert 0 <= err.offset <= len(data)
    with pytest.raises(DecodeError) as again:
        versioned.decode(name, data, version)
    assert (again.value.path, again.value.offset) == (err.path, err.offset)
    if name in TOP_LEVEL:
        with pytest.raises(DecodeError) as top:
            TOP_LEVEL[name].decode(data, version)
        assert (top.value.path, top.value.offset) == (err.path, err.offset)
    return err


# -- decode tables -------------------------------------------------------------------------------

INIT = "00 00 00000000 00000000"  # ToServer tag 0, name "", version 0, totalSlots 0
TUNNEL_ID = "00000000 00000000 0000"  # MessageId: gatewayId, requestId, messageIndex
KV_REQ = "05 0161 07000000"  # ToServerKvRequest, actorId "a", requestId 7
REQ_START = "04" + TUNNEL_ID + "00 0161 03474554 012f"  # ToClientRequestStart up to headers
EVENT = "01 01 0161 01000000 0000000000000000"  # ToServerEvents, 1 event, checkpoint
COUNT_2_40 = "80 80 80 80 80 20"
HUGE = "ff ff ff ff ff ff ff ff 7f"  # 2**63 - 1
# ToClientCommands with one CommandWrapper{actor "a", start{name "", no key, ts 0, no input, []}},
# up to (excluding) the v8 preloadedKv optional tag.
V8_START = "01 01 0161 00000000 0000000000000000 00 00 00 0000000000000000 00 00"
START = "ToClient.ToClientCommands[0].inner.CommandStartActor"

EVENT_CODE = "ToServer.ToServerEvents[0].inner.EventActorStateUpdate.state.ActorStateStopped.code"
TUNNEL_WS_OPEN = "ToServer.ToServerTunnelMessage.messageKind.ToServerWebSocketOpen.canHibernate"
REQ_HEADERS = "ToClient.ToClientTunnelMessage.messageKind.ToClientRequestStart.headers"

DECODE_CASES = [
    # varints: non-canonical, over-long, over 64 bits, truncated
    pytest.param("ToServer", 7, "80 00", "ToServer", 0, id="varint-80-00"),
    pytest.param("ToServer", 7, "ff 00", "ToServer", 0, id="varint-ff-00"),
    pytest.param("ToServer", 7, "80 80 00", "ToServer", 0, id="varint-80-80-00"),
    pytest.param("ToClient", 8, "83 00", "ToClient", 0, id="varint-83-00-union-tag"),
    pytest.param("KvKey", 7, "81 00 61", "KvKey", 0, id="varint-noncanonical-data-length"),
    pytest.param(
        "ToServer", 7, "05 80 00 61 07000000 05", "ToServer.ToServerKvRequest.actorId", 1,
        id="varint-noncanonical-str-length",
    ),
    pytest.param(
        "ToServer", 7, "02 80 00", "ToServer.ToServerAckCommands.lastCommandCheckpoints", 1,
        id="varint-noncanonical-list-count",
    ),
    pytest.param("KvKey", 7, "80" * 10 + "00", "KvKey", 0, id="varint-11-bytes"),
    pytest.param("KvKey", 7, "ff" * 10 + "01", "KvKey", 0, id="varint-11-bytes-ff"),
    pytest.param("KvKey", 7, "ff" * 9 + "02", "KvKey", 0, id="varint-over-64-bits"),
    pytest.param("KvKey", 7, "ff" * 9 + "7f", "KvKey", 0, id="varint-over-64-bits-7f"),
    pytest.param("KvKey", 7, "80", "KvKey", 1, id="varint-truncated-1"),
    pytest.param("ToServer", 7, "ff ff", "ToServer", 2, id="varint-truncated-2"),
    pytest.param("KvKey", 7, "ff" * 9, "KvKey", 9, id="varint-truncated-9"),
    # bool
    pytest.param("ToServerWebSocketOpen", 7, "02", "ToServerWebSocketOpen.canHibernate", 0,
                 id="bool-02"),
    pytest.param("ToServerWebSocketOpen", 8, "ff", "ToServerWebSocketOpen.canHibernate", 0,
                 id="bool-ff"),
    pytest.param("ToServer", 7, "06" + TUNNEL_ID + "03 02", TUNNEL_WS_OPEN, 12,
                 id="bool-02-nested"),
    pytest.param("ToServer", 8, "06" + TUNNEL_ID + "03 80", TUNNEL_WS_OPEN, 12,
                 id="bool-80-nested"),
    # optional
    pytest.param("ToServer", 7, INIT + "00 02", "ToServer.ToServerInit.metadata", 11,
                 id="optional-tag-02"),
    pytest.param("ToServer", 7, INIT + "ff", "ToServer.ToServerInit.prepopulateActorNames", 10,
                 id="optional-tag-ff"),
    pytest.param("ToClientWebSocketClose", 7, "02 0000 00", "ToClientWebSocketClose.code", 0,
                 id="optional-tag-02-u16"),
    # unknown union tags
    pytest.param("ToClient", 7, "06", "ToClient", 0, id="union-ToClient-6"),
    pytest.param("ToClient", 8, "06", "ToClient", 0, id="union-ToClient-6-v8"),
    pytest.param("ToClient", 7, "7f", "ToClient", 0, id="union-ToClient-7f"),
    pytest.param("ToClient", 8, "80 01", "ToClient", 0, id="union-ToClient-128"),
    pytest.param("ToServer", 7, "07", "ToServer", 0, id="union-ToServer-7"),
    pytest.param("ToServerlessServer", 7, "01", "ToServerlessServer", 0,
                 id="union-ToServerlessServer-1"),
    pytest.param("ActorCommandKeyData", 8, "02", "ActorCommandKeyData", 0,
                 id="union-ActorCommandKeyData-2"),
    pytest.param("ToServer", 7, KV_REQ + "06", "ToServer.ToServerKvRequest.data", 7,
                 id="union-KvRequestData-6"),
    # unknown enum values
    pytest.param("StopCode", 7, "02", "StopCode", 0, id="enum-StopCode-2"),
    pytest.param("StopCode", 8, "80 01", "StopCode", 0, id="enum-StopCode-128"),
    pytest.param("ToServer", 7, EVENT + "01 01 02 00", EVENT_CODE, 18, id="enum-nested"),
    # duplicate map keys
    pytest.param(
        "ToServer", 7, INIT + "01 02 0161 027b7d 0161 027b7d 00",
        "ToServer.ToServerInit.prepopulateActorNames", 17, id="map-duplicate-actor-name",
    ),
    pytest.param(
        "ToClient", 7, REQ_START + "02 016b 0176 016b 0177 00 00", REQ_HEADERS, 25,
        id="map-duplicate-header",
    ),
    pytest.param(
        "ToClient", 8, REQ_START + "03 016b 0176 016c 0176 016b 0177 00 00", REQ_HEADERS, 29,
        id="map-duplicate-header-not-adjacent",
    ),
    # invalid UTF-8
    pytest.param("ToServer", 7, "05 01ff 07000000 05", "ToServer.ToServerKvRequest.actorId", 1,
                 id="utf8-ff"),
    pytest.param("ToServer", 7, "05 02c080 07000000 05", "ToServer.ToServerKvRequest.actorId",
                 1, id="utf8-overlong-c0-80"),
    pytest.param("ToServer", 7, "05 03eda080 07000000 05",
                 "ToServer.ToServerKvRequest.actorId", 1, id="utf8-surrogate-ed-a0-80"),
    pytest.param("ToServer", 7, "05 01e2 07000000 05", "ToServer.ToServerKvRequest.actorId", 1,
                 id="utf8-truncated-multibyte"),
    pytest.param("ToServer", 7, "05 02e282 07000000 05", "ToServer.ToServerKvRequest.actorId",
                 1, id="utf8-truncated-3-byte-sequence"),
    pytest.param("Id", 8, "04 f4908080", "Id", 0, id="utf8-above-U+10FFFF"),
    pytest.param("ToClient", 7, REQ_START + "01 01ff 0176 00 00", REQ_HEADERS + "{key 0}", 21,
                 id="utf8-in-map-key"),
    # lengths and counts beyond the input
    pytest.param("KvKey", 7, "05 0102", "KvKey", 1, id="data-length-beyond-remaining"),
    pytest.param("Id", 7, "02 61", "Id", 1, id="str-length-beyond-remaining"),
    pytest.param("ToServer", 7, KV_REQ + "00 01 05 0102", "ToServer.ToServerKvRequest.data"
                 ".KvGetRequest.keys[0]", 10, id="nested-data-length-beyond-remaining"),
    pytest.param("ToServer", 7, "02" + COUNT_2_40,
                 "ToServer.ToServerAckCommands.lastCommandCheckpoints", 7, id="list-count-2**40"),
    pytest.param("ToServer", 7, "02 02" + "0161 01000000 0000000000000000",
                 "ToServer.ToServerAckCommands.lastCommandCheckpoints", 2,
                 id="list-count-beyond-remaining"),
    pytest.param("KvKey", 7, HUGE, "KvKey", 9, id="huge-data-length"),
    pytest.param("Id", 7, HUGE + "61", "Id", 9, id="huge-str-length"),
    pytest.param("ToClient", 7, "01" + HUGE, "ToClient.ToClientCommands", 10,
                 id="huge-list-count"),
    pytest.param("ToServer", 7, INIT + "01" + HUGE,
                 "ToServer.ToServerInit.prepopulateActorNames", 20, id="huge-map-count"),
    pytest.param("ToServer", 7, "01" + COUNT_2_40, "ToServer.ToServerEvents", 7,
                 id="list-count-2**40-wrapper"),
    pytest.param("ToClient", 8, V8_START + "02", f"{START}.preloadedKv", 29,
                 id="v8-preloaded-kv-tag-02"),
    pytest.param("ToClient", 8, V8_START + "01 01", f"{START}.preloadedKv.entries", 31,
                 id="v8-preloaded-kv-entries-beyond-remaining"),
    pytest.param("ToClient", 7, V8_START + "00", "ToClient", 29,
                 id="v8-start-command-fed-to-v7"),
    # truncation, trailing bytes, empty input
    pytest.param("ToServer", 7, "", "ToServer", 0, id="empty"),
    pytest.param("KvMetadata", 7, "", "KvMetadata.version", 0, id="empty-struct"),
    pytest.param("ToServer", 7, "04 0068e5cf8b0100", "ToServer.ToServerPong.ts", 1,
                 id="truncated-i64"),
    pytest.param("ToRunner", 7, "00 01020304 010203", "ToRunner.ToRunnerPing.requestId", 5,
                 id="truncated-data4"),
    pytest.param("ToServer", 7, "03 00", "ToServer", 1, id="trailing-after-void"),
    pytest.param("ToServer", 8, "04 0068e5cf8b010000 00", "ToServer", 9, id="trailing-after-pong"),
    pytest.param("ToServerStopping", 7, "00", "ToServerStopping", 0, id="trailing-void-struct"),
    pytest.param("KvListAllQuery", 8, "ff", "KvListAllQuery", 0, id="trailing-void-type"),
]


@pytest.mark.parametrize(("name", "version", "hex_", "path", "offset"), DECODE_CASES)
def test_invalid_bytes_are_rejected_on_every_path(
    name: str, version: int, hex_: str, path: str, offset: int
) -> None:
    data = h(hex_)
    err = assert_decode_error(name, version, data)
    assert (err.path, err.offset) == (path, offset), err
    t = versioned.bare_type(name, version)
    assert not compiled_accepts(t, data)
    exc = interpreted_reject(t, data, name)
    if exc is not None:
        assert (exc.path, exc.offset) == (path, offset)


def test_v7_decoder_rejects_v8_start_command_with_trailing_byte_at_67() -> None:
    """Spec §8.3: the 68-byte v8 start command (preloadedKv absent) fed to a v7 decoder."""
    actor = b"5jxlv5boumuljx2d2nvyat0o2edl00"
    v7_frame = (
        b"\x01\x01\x1e" + actor + b"\x01\x00\x00\x00" + bytes(8) + b"\x00"
        b"\x07counter" + b"\x01\x01k" + h("0068e5cf8b010000") + b"\x00" + b"\x00"
    )
    assert len(v7_frame) == 67
    assert versioned.decode_raw("ToClient", v7_frame, 7)
    err = assert_decode_error("ToClient", 7, v7_frame + b"\x00")
    assert (err.path, err.offset) == ("ToClient", 67)
    assert "trailing" in err.reason


@pytest.mark.parametrize(
    ("data", "max_size", "ok"),
    [
        pytest.param(h("040068e5cf8b010000"), 9, True, id="at-limit"),
        pytest.param(h("040068e5cf8b010000"), 8, False, id="one-over"),
        pytest.param(h("03"), 0, False, id="zero-limit"),
        pytest.param(b"\x03" + bytes(100), 50, False, id="checked-before-parsing"),
    ],
)
def test_max_size(data: bytes, max_size: int, ok: bool) -> None:
    if ok:
        assert versioned.decode_raw("ToServer", data, 7, max_size=max_size) is not None
        assert versioned.TO_SERVER.decode(data, 8, max_size=max_size) is not None
        return
    for call in (
        lambda: versioned.decode_raw("ToServer", data, 7, max_size=max_size),
        lambda: versioned.decode("ToServer", data, 8, max_size=max_size),
        lambda: versioned.TO_SERVER.decode(data, 7, max_size=max_size),
    ):
        with pytest.raises(DecodeError) as info:
            call()
        assert (info.value.path, info.value.offset) == ("ToServer", 0)
        assert "exceeds the maximum" in info.value.reason


@pytest.mark.parametrize(
    ("name", "data", "version", "path"),
    [
        pytest.param("ToServer", "03", 7, "ToServer", id="str-input"),
        pytest.param("ToServer", None, 7, "ToServer", id="none-input"),
        pytest.param("ToServer", [3], 8, "ToServer", id="list-input"),
        pytest.param("ToServer", b"\x03", 6, "ToServer", id="unsupported-version"),
        pytest.param("ToClient", b"\x05" + bytes(8), 0, "ToClient", id="version-0"),
        pytest.param("ToClient", b"\x05" + bytes(8), 9, "ToClient", id="version-above-latest"),
        pytest.param("NoSuchType", b"\x00", 7, "NoSuchType", id="unknown-type"),
        pytest.param("PreloadedKv", b"\x00\x00\x00", 7, "PreloadedKv", id="v8-only-type-at-v7"),
    ],
)
def test_bad_arguments_raise_decode_error(name: str, data: Any, version: int, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        versioned.decode_raw(name, data, version)
    assert info.value.path == path
    with pytest.raises(DecodeError):
        versioned.decode(name, data, version)


def test_accepted_variants_of_bytes_decode_like_bytes() -> None:
    data = h("040068e5cf8b010000")
    value = versioned.decode_raw("ToServer", data, 7)
    as_bytearray: Any = bytearray(data)
    as_memoryview: Any = memoryview(data)
    assert versioned.decode_raw("ToServer", as_bytearray, 7) == value
    assert versioned.decode_raw("ToServer", as_memoryview, 7) == value
    assert versioned.TO_SERVER.decode(as_bytearray, 7) == value
    assert versioned.TO_SERVER.decode(as_memoryview, 8) == value


# -- embedded version framing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "offset"),
    [
        pytest.param(b"", "version", 0, id="empty"),
        pytest.param(b"\x08", "version", 0, id="one-byte"),
        pytest.param(b"\x03\x00\x01", "version", 0, id="version-3"),
        pytest.param(b"\x09\x00\x01", "version", 0, id="version-9"),
        pytest.param(b"\x08\x00", "ActorCommandKeyData", 2, id="empty-body"),
        pytest.param(b"\x08\x00\x02", "ActorCommandKeyData", 2, id="bad-tag"),
        pytest.param(b"\x07\x00\x01\x00", "ActorCommandKeyData", 3, id="trailing"),
    ],
)
def test_embedded_decode_errors(data: bytes, path: str, offset: int) -> None:
    for call in (versioned.decode_embedded, versioned.decode_embedded_raw):
        with pytest.raises(DecodeError) as info:
            call("ActorCommandKeyData", data)
        assert (info.value.path, info.value.offset) == (path, offset)


# -- encode table ------------------------------------------------------------------------------

MID = v7.MessageId(b"gway", b"reqq", 1)
CP = v7.ActorCheckpoint("a", 1, 0)


def _init(**kw: Any) -> v7.ToServerInit:
    fields: dict[str, Any] = {
        "name": "r",
        "version": 1,
        "total_slots": 1,
        "prepopulate_actor_names": None,
        "metadata": None,
    }
    fields.update(kw)
    return v7.ToServerInit(**fields)


def _req_start(headers: Any) -> v7.ToClientTunnelMessage:
    return v7.ToClientTunnelMessage(
        MID, v7.ToClientRequestStart("a", "GET", "/", headers, None, False)
    )


def _kv(data: Any, actor_id: Any = "a") -> v7.ToServerKvRequest:
    return v7.ToServerKvRequest(actor_id, 1, data)


def _stopped(code: Any) -> v7.ToServerEvents:
    state = v7.EventActorStateUpdate(v7.ActorStateStopped(code, None))
    return v7.ToServerEvents([v7.EventWrapper(CP, state)])


def _start8(**kw: Any) -> v8.ToClientCommands:
    fields: dict[str, Any] = {
        "config": v8.ActorConfig("counter", None, 0, None),
        "hibernating_requests": [],
        "preloaded_kv": None,
    }
    fields.update(kw)
    return v8.ToClientCommands([v8.CommandWrapper(CP, v8.CommandStartActor(**fields))])


#: Values of the wrong class, typed Any so they can be put where the schema forbids them.
NOT_A_CHECKPOINT: Any = v7.ActorConfig("n", None, 0, None)
INTENT = v7.ActorIntentStop()
V7_START: Any = v7.CommandStartActor(v7.ActorConfig("n", None, 0, None), [])

KEYS = "ToServer.ToServerKvRequest.data.KvGetRequest.keys"

ENCODE_CASES = [
    # integers
    pytest.param("MessageIndex", 7, 65536, "MessageIndex", id="u16-65536"),
    pytest.param("MessageIndex", 8, -1, "MessageIndex", id="u16-minus-1"),
    pytest.param(
        "ToServer", 7,
        v7.ToServerTunnelMessage(v7.MessageId(b"gway", b"reqq", 65536), v7.ToServerResponseAbort()),
        "ToServer.ToServerTunnelMessage.messageId.messageIndex", id="u16-65536-nested",
    ),
    pytest.param("ToServer", 7, _init(version=-1), "ToServer.ToServerInit.version",
                 id="u32-minus-1"),
    pytest.param("ToServer", 7, _init(total_slots=1 << 32), "ToServer.ToServerInit.totalSlots",
                 id="u32-2**32"),
    pytest.param("ToServer", 7, v7.ToServerPong(1 << 63), "ToServer.ToServerPong.ts",
                 id="i64-2**63"),
    pytest.param("ToClient", 8, v8.ToClientPing(-(1 << 63) - 1), "ToClient.ToClientPing.ts",
                 id="i64-below-min"),
    pytest.param("ToServer", 7, v7.ToServerPong(True), "ToServer.ToServerPong.ts",
                 id="i64-given-bool"),
    pytest.param("ToServer", 7, v7.ToServerPong(1.0), "ToServer.ToServerPong.ts",  # type: ignore[arg-type]
                 id="i64-given-float"),
    pytest.param("ToServer", 7, v7.ToServerPong("1"), "ToServer.ToServerPong.ts",  # type: ignore[arg-type]
                 id="i64-given-str"),
    pytest.param("ToServerlessServer", 7, v7.ToServerlessServerInit("r", None),  # type: ignore[arg-type]
                 "ToServerlessServer.ToServerlessServerInit.runnerProtocolVersion",
                 id="u16-given-none"),
    # bool
    pytest.param(
        "ToServer", 7, v7.ToServerTunnelMessage(MID, v7.ToServerWebSocketOpen(1)),  # type: ignore[arg-type]
        "ToServer.ToServerTunnelMessage.messageKind.ToServerWebSocketOpen.canHibernate",
        id="bool-given-1",
    ),
    pytest.param("ToClientRequestChunk", 8, v7.ToClientRequestChunk(b"", None),  # type: ignore[arg-type]
                 "ToClientRequestChunk.finish", id="bool-given-none"),
    # data and data[4]
    pytest.param("ToServer", 7, _kv(v7.KvGetRequest(["a"])), f"{KEYS}[0]",  # type: ignore[list-item]
                 id="data-given-str"),
    pytest.param("KvKey", 7, [1, 2], "KvKey", id="data-given-list"),
    pytest.param("KvValue", 8, None, "KvValue", id="data-given-none"),
    pytest.param("ToRunner", 7, v7.ToRunnerPing(b"abc", b"reqq", 0),
                 "ToRunner.ToRunnerPing.gatewayId", id="data4-given-3-bytes"),
    pytest.param("ToRunner", 8, v7.ToRunnerPing(b"gway", b"abcde", 0),
                 "ToRunner.ToRunnerPing.requestId", id="data4-given-5-bytes"),
    pytest.param("GatewayId", 7, "abcd", "GatewayId", id="data4-given-str"),
    pytest.param("RequestId", 7, b"", "RequestId", id="data4-given-empty"),
    # str
    pytest.param("ToServer", 7, _init(name="\ud800"), "ToServer.ToServerInit.name",
                 id="str-lone-surrogate"),
    pytest.param("ToServer", 8, _kv(v7.KvDropRequest(), actor_id=b"a"),
                 "ToServer.ToServerKvRequest.actorId", id="str-given-bytes"),
    pytest.param("Json", 7, 5, "Json", id="str-given-int"),
    # structs and unions
    pytest.param(
        "ToServer", 7,
        v7.ToServerEvents([v7.EventWrapper(NOT_A_CHECKPOINT, v7.EventActorIntent(INTENT))]),
        "ToServer.ToServerEvents[0].checkpoint", id="wrong-dataclass-in-field",
    ),
    pytest.param(
        "ToClient", 8, v8.ToClientInit("r", v8.ActorName("{}")),  # type: ignore[arg-type]
        "ToClient.ToClientInit.metadata", id="wrong-dataclass-in-field-v8",
    ),
    pytest.param("ToServer", 7, v7.ToClientPing(1), "ToServer", id="union-non-member"),
    pytest.param("ToServer", 8, None, "ToServer", id="union-given-none"),
    pytest.param("ToServer", 7, v7.ToServerStopping, "ToServer", id="union-given-class"),
    pytest.param("ToServer", 7, _kv(v7.KvGetResponse([], [], [])),
                 "ToServer.ToServerKvRequest.data", id="union-non-member-nested"),
    pytest.param(
        "ToClient", 8,
        v8.ToClientCommands([v8.CommandWrapper(CP, V7_START)]),
        "ToClient.ToClientCommands[0].inner", id="union-v7-class-in-v8",
    ),
    pytest.param("ToClient", 8, _start8(preloaded_kv="x"), f"{START}.preloadedKv",
                 id="optional-struct-given-str"),
    pytest.param(
        "ToClient", 8, _start8(hibernating_requests=[v8.HibernatingRequest(b"gw", b"rqrq")]),
        f"{START}.hibernatingRequests[0].gatewayId", id="data4-in-list",
    ),
    # enum
    pytest.param("ToServer", 7, _stopped(1),
                 "ToServer.ToServerEvents[0].inner.EventActorStateUpdate.state.ActorStateStopped"
                 ".code", id="enum-given-int"),
    pytest.param("StopCode", 7, "OK", "StopCode", id="enum-given-name"),
    # lists, maps, optionals, wrappers
    pytest.param("ToServer", 7, v7.ToServerAckCommands({}),  # type: ignore[arg-type]
                 "ToServer.ToServerAckCommands.lastCommandCheckpoints", id="list-given-dict"),
    pytest.param("ToServer", 7, _kv(v7.KvGetRequest({b"a"})), KEYS, id="list-given-set"),  # type: ignore[arg-type]
    pytest.param("ToServer", 8, _kv(v7.KvGetRequest(b"ab")), KEYS, id="list-given-bytes"),  # type: ignore[arg-type]
    pytest.param("ToServer", 7, v7.ToServerEvents(None),  # type: ignore[arg-type]
                 "ToServer.ToServerEvents", id="wrapper-list-given-none"),
    pytest.param("ToServer", 7, _init(prepopulate_actor_names=[("a", v7.ActorName("{}"))]),
                 "ToServer.ToServerInit.prepopulateActorNames", id="map-given-list"),
    pytest.param("ToClient", 7, _req_start({"k": 1}), f"{REQ_HEADERS}['k']",
                 id="map-value-wrong-type"),
    pytest.param("ToClient", 7, _req_start({1: "v"}), REQ_HEADERS + "{key 1}",
                 id="map-key-wrong-type"),
    pytest.param("ToClient", 8, _req_start({"\udc00": "v"}), REQ_HEADERS + "{key '\\udc00'}",
                 id="map-key-lone-surrogate"),
    pytest.param("ToServer", 7, _init(metadata=5), "ToServer.ToServerInit.metadata",
                 id="optional-str-given-int"),
]


@pytest.mark.parametrize(("name", "version", "value", "path"), ENCODE_CASES)
def test_invalid_values_are_rejected_by_every_encoder(
    name: str, version: int, value: Any, path: str
) -> None:
    with pytest.raises(EncodeError) as info:
        versioned.encode_raw(name, value, version)
    assert info.value.path == path, info.value
    assert not any(m in info.value.reason for m in BUG_MARKERS), info.value
    if version == versioned.LATEST:
        with pytest.raises(EncodeError) as latest:
            versioned.encode(name, value, version)
        assert latest.value.path == path
        if name in TOP_LEVEL:
            with pytest.raises(EncodeError) as top:
                TOP_LEVEL[name].encode(value, version)
            assert top.value.path == path
    t = versioned.bare_type(name, version)
    parts: list[bytes] = []
    try:
        compile_type(t).encode_into(value, parts.append)
    except Exception:  # the compiled path signals rejection with any exception
        pass
    else:
        pytest.fail(f"compiled encoder accepted {value!r}: {b''.join(parts).hex()}")
    with pytest.raises(BareBuildError) as interpreted:
        t._build(value, io.BytesIO(), None, name)
    assert interpreted.value.path == path


def test_encode_max_size() -> None:
    value = v7.ToServerPong(1)
    assert len(versioned.encode_raw("ToServer", value, 7, max_size=9)) == 9
    with pytest.raises(EncodeError) as info:
        versioned.encode_raw("ToServer", value, 7, max_size=8)
    assert info.value.path == "ToServer"
    with pytest.raises(EncodeError):
        versioned.TO_SERVER.encode(value, 8, max_size=8)


class _Dict(dict[str, str]):
    pass


class _List(list[bytes]):
    pass


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("ToClient", _req_start(collections.OrderedDict(k="v")), id="OrderedDict"),
        pytest.param("ToClient", _req_start(_Dict(k="v")), id="dict-subclass"),
        pytest.param("ToServer", _kv(v7.KvGetRequest(_List([b"a"]))), id="list-subclass"),
        pytest.param("ToServer", _kv(v7.KvGetRequest((b"a",))), id="tuple"),  # type: ignore[arg-type]
        pytest.param(
            "ToServer",
            _kv(v7.KvGetRequest([bytearray(b"a"), memoryview(b"b")])),  # type: ignore[list-item]
            id="bytearray-memoryview",
        ),
        pytest.param("ToServer", _kv(v7.KvDropRequest()), id="plain"),
    ],
)
def test_compiled_and_interpreted_encoders_accept_the_same_values(name: str, value: Any) -> None:
    """Strictness must be the same on both paths, in both directions (accept and reject)."""
    t = versioned.bare_type(name, 7)
    parts: list[bytes] = []
    try:
        compile_type(t).encode_into(value, parts.append)
        compiled: bytes | None = b"".join(parts)
    except Exception:
        compiled = None
    try:
        interpreted: bytes | None = t.build(value)
    except BareBuildError:
        interpreted = None
    assert compiled == interpreted
    try:
        versioned.encode_raw(name, value, 7)
    except EncodeError as exc:
        assert not any(m in exc.reason for m in BUG_MARKERS), exc


# -- golden frames: truncation and trailing bytes ----------------------------------------------


def _check_truncations_and_trailing(name: str, version: int, frame: bytes) -> None:
    """Every strict prefix and the frame plus one byte are rejected with a DecodeError.

    ``decode_raw`` runs the compiled decoder and, when it rejects, the interpreted one; a value
    comes back only if the compiled path accepts, and a bug marker appears in the error if the
    interpreted path accepts or fails with anything but BareParseError. So checking
    ``decode_raw`` and the markers covers both paths at every cut.
    """
    t = versioned.bare_type(name, version)
    for i in range(len(frame)):
        with pytest.raises(DecodeError) as info:
            versioned.decode_raw(name, frame[:i], version)
        err = info.value
        assert not any(m in err.reason for m in BUG_MARKERS), (i, err)
        assert err.offset is not None
        assert 0 <= err.offset <= i
    longer = frame + b"\x00"
    err = assert_decode_error(name, version, longer)
    assert (err.path, err.offset) == (name, len(frame))
    assert not compiled_accepts(t, longer)
    assert interpreted_reject(t, longer, name) is None
    # the frame itself is valid, also when it sits between other bytes
    value, end = compile_type(t).decode_at(b"\xff" + longer, 1, len(longer) + 1)
    assert end == len(frame) + 1
    assert value == versioned.decode_raw(name, frame, version)


@pytest.mark.parametrize("vector", GOLDEN, ids=lambda v: f"{v['type']}:{v['name']}")
def test_golden_v7_frame_truncated_or_extended_is_rejected(vector: dict[str, Any]) -> None:
    _check_truncations_and_trailing(vector["type"], 7, bytes.fromhex(vector["hex"]))


@pytest.mark.parametrize("name", list(versioned.TOP_LEVEL))
def test_generated_v8_frame_truncated_or_extended_is_rejected(name: str) -> None:
    t = versioned.bare_type(name, 8)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values_for(t))
    def check(value: Any) -> None:
        _check_truncations_and_trailing(name, 8, versioned.encode_raw(name, value, 8))

    check()


@pytest.mark.parametrize(
    ("name", "hex_", "end"),
    [
        pytest.param("ToServer", "04 0068e5cf8b010000", 1, id="i64-past-end"),
        pytest.param("ToServerWebSocketMessageAck", "0100", 1, id="u16-past-end"),
        pytest.param("ToServerWebSocketOpen", "01", 0, id="bool-past-end"),
        pytest.param("ToClientWebSocketClose", "00 00", 1, id="optional-tag-past-end"),
        pytest.param("ToClient", "05 0000000000000000", 0, id="union-tag-past-end"),
        pytest.param("StopCode", "01", 0, id="enum-past-end"),
        pytest.param("GatewayId", "01020304", 3, id="data4-past-end"),
        pytest.param("KvKey", "01 61", 1, id="data-past-end"),
        pytest.param("Id", "01 61", 1, id="str-past-end"),
        pytest.param("KvGetRequest", "01 0161", 2, id="list-past-end"),
    ],
)
def test_compiled_decoder_stops_at_its_end_bound(name: str, hex_: str, end: int) -> None:
    """``Compiled.decode_at(b, p, e)`` decodes from ``b[p:e]`` (its documented contract), so a
    value that needs bytes at or past ``e`` must be rejected even when ``b`` has them."""
    data = h(hex_)
    decode_at = compile_type(versioned.bare_type(name, 8)).decode_at
    assert decode_at(data, 0, len(data))[1] == len(data)
    try:
        value, stop = decode_at(data, 0, end)
    except Exception:
        return
    pytest.fail(f"decode_at({data.hex()}, 0, {end}) returned {value!r} ending at byte {stop}")


# -- random bytes --------------------------------------------------------------------------------

GOLDEN_BY_TYPE: dict[str, list[bytes]] = collections.defaultdict(list)
for _vector in GOLDEN:
    GOLDEN_BY_TYPE[_vector["type"]].append(bytes.fromhex(_vector["hex"]))


def _random_input(rng: random.Random, name: str) -> bytes:
    """Pure random bytes, or a golden frame of the type with a few random edits."""
    if rng.random() < 0.5:
        size = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 40, 64])
        data = bytearray(rng.getrandbits(8) for _ in range(size))
        if data and rng.random() < 0.7:
            data[0] = rng.randrange(8)  # mostly a plausible union tag
        return bytes(data)
    data = bytearray(rng.choice([f for f in GOLDEN_BY_TYPE[name] if len(f) < 200]))
    for _ in range(rng.randrange(4)):
        where = rng.randrange(len(data) + 1)
        edit = rng.randrange(3)
        if edit == 0 and where < len(data):
            data[where] = rng.getrandbits(8)
        elif edit == 1:
            data.insert(where, rng.getrandbits(8))
        elif where < len(data):
            del data[where]
    return bytes(data)


@pytest.mark.parametrize("version", [7, 8])
@pytest.mark.parametrize("name", list(versioned.TOP_LEVEL))
def test_random_bytes_decode_or_raise_decode_error(name: str, version: int) -> None:
    """2,000 seeded random inputs: DecodeError (never anything else, never a disagreement of
    the two paths), or a value whose re-encoding is exactly the input."""
    rng = random.Random(f"{name}-{version}")
    t = versioned.bare_type(name, version)
    accepted = rejected = 0
    for _ in range(2000):
        data = _random_input(rng, name)
        try:
            value = versioned.decode_raw(name, data, version)
        except DecodeError as exc:
            assert not any(m in exc.reason for m in BUG_MARKERS), (data.hex(), exc)
            assert exc.offset is not None
            assert 0 <= exc.offset <= len(data)
            rejected += 1
            continue
        accepted += 1
        assert t.parse(data) == value
        assert versioned.encode_raw(name, value, version) == data, data.hex()
    assert accepted > 0
    assert rejected > 0
