"""v8 vectors: the worked examples of runner-protocol.md §8 and our own v8-only cases."""

from __future__ import annotations

import pytest

import codec
from codec import v7, v8

ID = "5jxlv5boumuljx2d2nvyat0o2edl00"
ID_HEX = ID.encode().hex()
TS = 1_700_000_000_000
TS_HEX = "0068e5cf8b010000"
META_HEX = "05322e312e37" + TS_HEX  # version "2.1.7", updateTs

# §8.3, annotated byte by byte in the spec.
SPEC_8_3 = (
    "01"
    "01"
    "1e" + ID_HEX + "01000000" + "0000000000000000" + "00"
    "07636f756e746572"
    "01016b" + TS_HEX + "00"
    "00" + "01" + "01"
    "0101"
    "01aa" + META_HEX + "03"
    "0101"
    "0103"
    "03050101" + "03"
    "020801"
    "020601"
    "0102"
)


def _spec_start() -> v8.ToClientCommands:
    preloaded = v8.PreloadedKv(
        entries=[v8.PreloadedKvEntry(b"\x01", b"\xaa", v8.KvMetadata(b"2.1.7", TS))],
        requested_get_keys=[b"\x01", b"\x03", b"\x05\x01\x01"],
        requested_prefixes=[b"\x08\x01", b"\x06\x01", b"\x02"],
    )
    start = v8.CommandStartActor(v8.ActorConfig("counter", "k", TS, None), [], preloaded)
    return v8.ToClientCommands([v8.CommandWrapper(v8.ActorCheckpoint(ID, 1, 0), start)])


def test_spec_8_3_start_command_with_preloaded_kv() -> None:
    data = codec.TO_CLIENT.encode(_spec_start(), 8)
    assert len(data) == 105
    assert data.hex() == SPEC_8_3
    assert codec.TO_CLIENT.decode(data, 8) == _spec_start()


def test_spec_8_3_for_a_v7_runner_is_the_first_67_bytes() -> None:
    v7_bytes = codec.TO_CLIENT.encode(_spec_start(), 7)
    assert v7_bytes == bytes.fromhex(SPEC_8_3)[:67]
    decoded = codec.decode_raw("ToClient", v7_bytes, 7)
    assert isinstance(decoded, v7.ToClientCommands)
    assert not hasattr(decoded.value[0].inner, "preloaded_kv")


def test_v8_absent_preload_is_v7_plus_one_zero_byte_and_v7_rejects_it_at_67() -> None:
    msg = _spec_start()
    cmd = msg.value[0]
    assert isinstance(cmd.inner, v8.CommandStartActor)
    absent = v8.ToClientCommands(
        [v8.CommandWrapper(cmd.checkpoint, v8.CommandStartActor(cmd.inner.config, [], None))]
    )
    v8_bytes = codec.TO_CLIENT.encode(absent, 8)
    assert v8_bytes == bytes.fromhex(SPEC_8_3)[:67] + b"\x00"
    with pytest.raises(codec.DecodeError) as err:
        codec.TO_CLIENT.decode(v8_bytes, 7)
    assert err.value.offset == 67
    assert "trailing" in err.value.reason


def test_spec_8_4_stored_command_value() -> None:
    start = v8.CommandStartActor(v8.ActorConfig("counter", "k", TS, None), [], None)
    data = codec.ACTOR_COMMAND_KEY_DATA.encode_embedded(start)
    assert data.hex() == "08000007636f756e74657201016b" + TS_HEX + "000000"
    assert len(data) == 25
    assert codec.ACTOR_COMMAND_KEY_DATA.decode_embedded(data) == start


@pytest.mark.parametrize("stored_version", [5, 6, 7])
def test_older_stored_commands_upgrade_with_preload_absent(stored_version: int) -> None:
    body = bytes.fromhex("0007636f756e74657201016b" + TS_HEX + "0000")
    data = stored_version.to_bytes(2, "little") + body
    value = codec.ACTOR_COMMAND_KEY_DATA.decode_embedded(data)
    assert value == v8.CommandStartActor(v8.ActorConfig("counter", "k", TS, None), [], None)


@pytest.mark.parametrize("bad_version", [0, 4, 9, 0xFFFF])
def test_unsupported_embedded_versions_are_decode_errors(bad_version: int) -> None:
    data = bad_version.to_bytes(2, "little") + b"\x01"
    with pytest.raises(codec.DecodeError) as err:
        codec.ACTOR_COMMAND_KEY_DATA.decode_embedded(data)
    assert err.value.path == "version"


def test_encoding_for_a_version_above_latest_is_an_encode_error() -> None:
    with pytest.raises(codec.EncodeError, match="version 9"):
        codec.TO_SERVER.encode(v8.ToServerStopping(), 9)


def test_spec_8_1_pong_and_ping() -> None:
    assert codec.TO_SERVER.encode(v8.ToServerPong(TS), 7).hex() == "04" + TS_HEX
    assert codec.TO_SERVER.encode(v8.ToServerPong(TS), 8).hex() == "04" + TS_HEX
    assert codec.TO_CLIENT.encode(v8.ToClientPing(TS), 8).hex() == "05" + TS_HEX


def test_spec_8_2_kv_get_round_trip_is_the_same_in_v7_and_v8() -> None:
    req = v8.ToServerKvRequest(ID, 7, v8.KvGetRequest([b"\x01"]))
    expected = "051e" + ID_HEX + "0700000000010101"
    for version in (7, 8):
        assert codec.TO_SERVER.encode(req, version).hex() == expected
    resp = v8.ToClientKvResponse(
        7, v8.KvGetResponse([b"\x01"], [b"\xaa"], [v8.KvMetadata(b"2.1.7", TS)])
    )
    for version in (7, 8):
        data = codec.TO_CLIENT.encode(resp, version)
        assert data.hex() == "0307000000010101010101aa01" + META_HEX
        assert len(data) == 27


OWN_V8 = [
    pytest.param(
        "ToRunner",
        v8.ToClientCommands(
            [
                v8.CommandWrapper(
                    v8.ActorCheckpoint("a", 4_294_967_295, -1),
                    v8.CommandStartActor(
                        v8.ActorConfig("ключ", None, -(2**63), b""),
                        [v8.HibernatingRequest(b"\x00\x01\x02\x03", b"\xff\xfe\xfd\xfc")],
                        v8.PreloadedKv([], [], []),
                    ),
                ),
                v8.CommandWrapper(v8.ActorCheckpoint("a", 0, 2**63 - 1), v8.CommandStopActor()),
            ]
        ),
        "02"
        "02"
        "0161"
        "ffffffff"
        "ffffffffffffffff"
        "00"
        "08d0bad0bbd18ed187"
        "00"
        "0000000000000080"
        "0100"
        "01"
        "00010203"
        "fffefdfc"
        "01"
        "00"
        "00"
        "00"
        "0161"
        "00000000"
        "ffffffffffffff7f"
        "01",
        id="ToRunner commands: max ints, utf-8, hibernating request, empty preload, stop",
    ),
    pytest.param(
        "ActorCommandKeyData",
        v8.CommandStartActor(
            v8.ActorConfig("n", "", 0, None),
            [],
            v8.PreloadedKv(
                [v8.PreloadedKvEntry(b"", b"\x00" * 128, v8.KvMetadata(b"", 0))], [b""], []
            ),
        ),
        "00016e0100000000000000000000000101008001" + "00" * 128 + "000000000000000000010000",
        id="stored start with a 128-byte value (2-byte varint length)",
    ),
]


@pytest.mark.parametrize(("type_name", "value", "hex_"), OWN_V8)
def test_own_v8_vectors(type_name: str, value: object, hex_: str) -> None:
    data = codec.encode(type_name, value, 8)
    assert data.hex() == hex_
    assert codec.decode(type_name, data, 8) == value
