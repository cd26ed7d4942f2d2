"""``python -m codec``: bytes <-> JSON, and one-line errors naming the field."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import codec
from codec import v8
from codec.cli import main
from tests.conftest import REPO, load_vectors


def run(argv: list[str], data: bytes) -> tuple[int, bytes]:
    out = io.BytesIO()
    code = main(argv, stdin=io.BytesIO(data), stdout=out)
    return code, out.getvalue()


def test_decode_then_encode_every_golden_vector_through_the_cli() -> None:
    for vector in load_vectors(7):
        raw = bytes.fromhex(vector["hex"])
        code, out = run(["decode", "--version", "7", "--type", vector["type"]], raw)
        assert code == 0
        assert json.loads(out) == vector["json"]
        code, back = run(["encode", "--version", "7", "--type", vector["type"]], out)
        assert code == 0
        assert back == raw


def test_embedded_decode_converts_to_the_requested_version() -> None:
    start = v8.CommandStartActor(v8.ActorConfig("c", None, 1, None), [], v8.PreloadedKv([], [], []))
    stored = codec.ACTOR_COMMAND_KEY_DATA.encode_embedded(start)
    code, out = run(
        ["decode", "--version", "7", "--type", "ActorCommandKeyData", "--embedded"], stored
    )
    assert code == 0
    assert "preloadedKv" not in json.loads(out)["val"]
    code, out8 = run(
        ["decode", "--version", "8", "--type", "ActorCommandKeyData", "--embedded"], stored
    )
    assert json.loads(out8)["val"]["preloadedKv"] == {
        "entries": [],
        "requestedGetKeys": [],
        "requestedPrefixes": [],
    }
    code, again = run(
        ["encode", "--version", "8", "--type", "ActorCommandKeyData", "--embedded"], out8
    )
    assert code == 0
    assert again == stored


def test_hex_mode_round_trip() -> None:
    code, out = run(["decode", "--version", "8", "--type", "ToServer", "--hex"], b"03\n")
    assert (code, json.loads(out)) == (0, {"tag": "ToServerStopping", "val": None})
    code, out = run(
        ["encode", "--version", "8", "--type", "ToServer", "--hex"],
        b'{"tag": "ToServerStopping", "val": null}',
    )
    assert (code, out) == (0, b"03\n")


def test_bad_input_exits_non_zero_with_one_line_naming_the_field() -> None:
    cases = [
        (
            ["decode", "--version", "7", "--type", "ToClient"],
            b"\x01\x01\x01",
            "ToClient.ToClientCommands",
        ),
        (
            ["decode", "--version", "7", "--type", "ToServer"],
            b"\x04\x00",
            "ToServer.ToServerPong.ts",
        ),
        (
            ["encode", "--version", "7", "--type", "ToServer"],
            b'{"tag": "ToServerPong", "val": {"ts": "soon"}}',
            "ToServer.ToServerPong.ts",
        ),
        (["encode", "--version", "7", "--type", "ToServer"], b"{not json", "<input>"),
        (["decode", "--version", "7", "--type", "NoSuchType"], b"\x00", "NoSuchType"),
    ]
    for argv, data, path in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "codec", *argv],
            input=data,
            capture_output=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, (argv, proc.stderr)
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: ") and path in lines[0], lines[0]
        assert proc.stdout == b""
