"""``python -m codec``: decode protocol bytes to JSON and encode JSON to bytes.

    python -m codec decode --version 7 --type ToClient < frame.bin
    python -m codec encode --version 8 --type ToServer < msg.json > frame.bin
    python -m codec decode --version 8 --type ActorCommandKeyData --embedded < stored.bin

``--type`` takes any named schema type (the top-level messages are ToClient, ToServer,
ToRunner, ToGateway, ToServerlessServer and ActorCommandKeyData). With ``--embedded`` the
bytes carry a 2-byte little-endian version prefix: decode reads the prefix, decodes with that
version's layout and converts to ``--version``; encode writes ``--version`` as the prefix.
``--hex`` reads/writes hex text instead of raw bytes. Bad input exits with status 1 and one
line on stderr naming the failing field.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, BinaryIO

from codec import versioned
from codec.errors import CodecError, DecodeError, EncodeError
from codec.json_mapping import from_json, to_json


def _read_input(stream: BinaryIO, as_hex: bool) -> bytes:
    raw = stream.read()
    if not as_hex:
        return raw
    try:
        return bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise DecodeError("input is not valid hex", "<input>") from None


def _decode(args: argparse.Namespace, stdin: BinaryIO) -> Any:
    data = _read_input(stdin, args.hex)
    if not args.embedded:
        value = versioned.decode_raw(args.type, data, args.version)
        return to_json(args.type, value, args.version)
    stored, value = versioned.decode_embedded_raw(args.type, data)
    if stored != args.version:
        latest = versioned.upgrade(args.type, value, stored)
        value = versioned.downgrade(args.type, latest, args.version)
    return to_json(args.type, value, args.version)


def _encode(args: argparse.Namespace, stdin: BinaryIO) -> bytes:
    try:
        document = json.loads(stdin.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncodeError(f"input is not valid JSON: {exc}", "<input>") from None
    value = from_json(args.type, document, args.version)
    body = versioned.encode_raw(args.type, value, args.version)
    if args.embedded:
        body = args.version.to_bytes(2, "little") + body
    return body


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m codec",
        description="Rivet runner protocol codec: bytes <-> JSON.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("decode", "bytes on stdin -> JSON on stdout"),
        ("encode", "JSON on stdin -> bytes on stdout"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--version", type=int, required=True, help="protocol version (7 or 8)")
        p.add_argument("--type", required=True, help="schema type name, e.g. ToClient")
        p.add_argument("--embedded", action="store_true", help="2-byte LE version prefix")
        p.add_argument("--hex", action="store_true", help="hex text instead of raw bytes")
    return parser


def main(
    argv: list[str] | None = None,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    inp = stdin if stdin is not None else sys.stdin.buffer
    out = stdout if stdout is not None else sys.stdout.buffer
    try:
        if args.command == "decode":
            out.write(json.dumps(_decode(args, inp), ensure_ascii=False).encode() + b"\n")
        else:
            data = _encode(args, inp)
            out.write(data.hex().encode() + b"\n" if args.hex else data)
    except CodecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except Exception as exc:  # conversion between versions failed, e.g. a dropped member
        sys.stderr.write(f"error: {args.type}: {exc}\n")
        return 1
    out.flush()
    return 0
