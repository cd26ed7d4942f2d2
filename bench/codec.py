"""Codec benchmark: rivetpy's codec against the reference TypeScript codec, in the same run.

    python bench/codec.py [--seconds-per-case 1.0] [--no-node]

Messages (identical bytes on both sides, checked by sha256):
  small   ToServer ToServerTunnelMessage with a 64-byte WebSocket message
  medium  ToClient ToClientKvResponse, KvGetResponse with 100 entries
  mixed   (no target) medium with entry lengths that differ, so no list has a uniform layout
          and the decoder takes its element-by-element path; shown for honesty, since the
          issue's messages repeat one layout per list
  bulk    ToClient ToClientKvResponse, KvListResponse of 256 x 4 KiB values (~1 MiB)
  init    ToServer ToServerInit with 20 prepopulated actor names
  preload (Python only; the TS package has no v8) v8 ToClientCommands whose CommandStartActor
          carries a PreloadedKv of 256 x 4 KiB entries

Python is timed through the public API a runtime calls (``codec.TO_CLIENT.decode(frame, 7)``
and friends). Both sides are measured the same way: after a warm-up of a quarter of the budget
and a garbage collection, batches of at least ``--batch-ms`` (so the garbage collection a
decoder's allocations cause is paid inside the batches that cause it; the collector stays on,
as in a runtime) fill ``--seconds-per-case``, and the figure is the median over batches of the
batch's time per message. ``--rounds`` rounds alternate TS (a fresh node process) and Python;
the table shows, for each side, the median of its round figures and their spread (min-max),
and the ratio is Python median / TS median, checked against the targets of the codec issue.
The last column counts the rounds whose own ratio met the target. Node's figures swing far
more between rounds than Python's (JIT and GC timing); compare ratios measured side by side,
never absolute times across machines.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import codec  # noqa: E402
from codec import v8  # noqa: E402

NODE_DIR = REPO / "bench" / "node"
TS = 1_700_000_000_000


def _key(i: int) -> bytes:
    return b"key-" + f"{i:012d}".encode()


def _meta(i: int) -> v8.KvMetadata:
    return v8.KvMetadata(b"2.3.11", TS + i)


def small() -> v8.ToServer:
    return v8.ToServerTunnelMessage(
        v8.MessageId(b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", 1),
        v8.ToServerWebSocketMessage(bytes(j % 256 for j in range(64)), True),
    )


def medium() -> v8.ToClient:
    n = 100
    return v8.ToClientKvResponse(
        1,
        v8.KvGetResponse(
            [_key(i) for i in range(n)],
            [bytes((i + j) % 256 for j in range(100)) for i in range(n)],
            [_meta(i) for i in range(n)],
        ),
    )


def mixed() -> v8.ToClient:
    """``medium`` with lengths that differ between entries: no list has a uniform layout, so
    every element takes the element-by-element decoder."""
    n = 100
    return v8.ToClientKvResponse(
        1,
        v8.KvGetResponse(
            [f"key{i}".encode() for i in range(n)],
            [bytes((i + j) % 256 for j in range(50 + (i * 37) % 100)) for i in range(n)],
            [v8.KvMetadata(b"2.3.9" if i % 2 else b"2.3.11", TS + i) for i in range(n)],
        ),
    )


def bulk() -> v8.ToClient:
    n = 256
    return v8.ToClientKvResponse(
        2,
        v8.KvListResponse(
            [_key(i) for i in range(n)],
            [bytes((i * 7 + j) % 256 for j in range(4096)) for i in range(n)],
            [_meta(i) for i in range(n)],
        ),
    )


def init() -> v8.ToServer:
    names = {
        f"actor-{i:02d}": v8.ActorName(
            '{"preloadMaxSqliteBytes":1048576,"preloadMaxWorkflowBytes":131072,'
            f'"index":{i}}}'
        )
        for i in range(20)
    }
    return v8.ToServerInit("bench-runner", 1, 1000, names, '{"runner":"bench"}')


def preload() -> v8.ToClient:
    entries = [
        v8.PreloadedKvEntry(_key(i), bytes((i * 7 + j) % 256 for j in range(4096)), _meta(i))
        for i in range(256)
    ]
    start = v8.CommandStartActor(
        v8.ActorConfig("counter", "k", TS, None),
        [],
        v8.PreloadedKv(entries, [b"\x01"], [b"\x02", b"\x08\x01"]),
    )
    return v8.ToClientCommands(
        [v8.CommandWrapper(v8.ActorCheckpoint("5jxlv5boumuljx2d2nvyat0o2edl00", 1, 0), start)]
    )


@dataclass(frozen=True)
class Case:
    name: str
    top: codec.TopLevel[Any]
    value: Any
    version: int
    #: targets for Python/TS time: (encode, decode); None = no target
    targets: tuple[float, float] | None
    #: whether the TS codec runs it too (the TS package has no v8)
    reference: bool = True


CASES = [
    Case("small", codec.TO_SERVER, small(), 7, (1.5, 1.5)),
    Case("medium", codec.TO_CLIENT, medium(), 7, (3.0, 0.5)),
    Case("mixed", codec.TO_CLIENT, mixed(), 7, None),
    Case("bulk", codec.TO_CLIENT, bulk(), 7, (1.0, 0.5)),
    Case("init", codec.TO_SERVER, init(), 7, (1.5, 1.5)),
    Case("preload", codec.TO_CLIENT, preload(), 8, None, reference=False),
]


def measure(fn: Callable[[], object], seconds: float, batch_ms: float) -> float:
    """Median over batches (each >= ``batch_ms``) of microseconds per call, after a warm-up:
    the procedure of ``measure`` in bench/node/codec_bench.mjs."""
    batch_ns = min(batch_ms * 1e6, seconds * 1e9 / 20)
    n = 1
    while n < 1 << 24:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        if time.perf_counter_ns() - start >= batch_ns:
            break
        n *= 2
    warm_end = time.perf_counter() + seconds / 4
    while time.perf_counter() < warm_end:
        for _ in range(n):
            fn()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 5:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter_ns() - start) / n / 1000)
    return statistics.median(samples)


def run_node(seconds: float, batch_ms: float) -> dict[str, Any] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("node/npm not found: no reference figures", file=sys.stderr)
        return None
    if not (NODE_DIR / "node_modules" / "@rivetkit" / "engine-runner-protocol").exists():
        print("installing the reference codec (npm ci)...", file=sys.stderr)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True)
    print("  TS reference codec (node)...", file=sys.stderr)
    proc = subprocess.run(
        [node, "--expose-gc", str(NODE_DIR / "codec_bench.mjs"),
         "--seconds-per-case", str(seconds), "--batch-ms", str(batch_ms)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run_python(seconds: float, batch_ms: float) -> dict[str, tuple[float, float]]:
    """(encode us, decode us) per case, measured like the node side."""
    figures: dict[str, tuple[float, float]] = {}
    for case in CASES:
        frame = case.top.encode(case.value, case.version)
        print(f"  python {case.name} ({len(frame)} bytes)...", file=sys.stderr)
        gc.collect()
        enc = measure(lambda c=case: c.top.encode(c.value, c.version), seconds, batch_ms)
        gc.collect()
        dec = measure(lambda c=case, f=frame: c.top.decode(f, c.version), seconds, batch_ms)
        figures[case.name] = (enc, dec)
    return figures


def _spread(values: list[float]) -> str:
    return f"{min(values):.4g}-{max(values):.4g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-case", type=float, default=0.6,
                        help="timed seconds per case and direction, each round and side")
    parser.add_argument("--batch-ms", type=float, default=10.0,
                        help="minimum duration of one timed batch")
    parser.add_argument("--rounds", type=int, default=5, help="alternating TS/Python rounds")
    parser.add_argument("--no-node", action="store_true", help="skip the TS reference")
    args = parser.parse_args()

    # Per case and direction, one figure per round for each side.
    py: dict[str, list[tuple[float, float]]] = {case.name: [] for case in CASES}
    ts: dict[str, list[tuple[float, float]]] = {}
    ts_info: dict[str, Any] | None = None
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}/{args.rounds}", file=sys.stderr)
        # Alternate which side goes first, so neither always runs on a warmer machine.
        order = ["ts", "py"] if round_no % 2 == 0 else ["py", "ts"]
        for side in order:
            if side == "ts" and not args.no_node:
                fresh = run_node(args.seconds_per_case, args.batch_ms)
                if fresh is not None:
                    ts_info = fresh
                    for name, ref in fresh["cases"].items():
                        ts.setdefault(name, []).append((ref["encode_us"], ref["decode_us"]))
            elif side == "py":
                for name, figures in run_python(args.seconds_per_case, args.batch_ms).items():
                    py[name].append(figures)

    for case in CASES:
        frame = case.top.encode(case.value, case.version)
        assert case.top.decode(frame, case.version) == case.value
        ref = ts_info["cases"].get(case.name) if ts_info else None
        if ref is not None and ref["sha256"] != hashlib.sha256(frame).hexdigest():
            raise SystemExit(f"{case.name}: Python and TS messages differ ({len(frame)} bytes)")

    print(f"python {sys.version.split()[0]}; reference: "
          + (f"{ts_info['package']} on node {ts_info['node']}" if ts_info else "none")
          + f"; {args.rounds} rounds, {args.seconds_per_case} s per case and direction,"
          f" batches >= {args.batch_ms} ms")
    print("us per message: median of the rounds [min-max over rounds]; ratio = Python / TS"
          " medians; rounds met = rounds whose own ratio met the target")
    header = (f"{'message':<8} {'op':<3} {'bytes':>8} | {'python us':>22} | {'TS us':>22} | "
              f"{'ratio':>5} [{'min-max':^11}] {'target':>6} {'':<6} | {'rounds met':>10}")
    print(header)
    print("-" * len(header))
    checked = missed = 0
    for case in CASES:
        size = len(case.top.encode(case.value, case.version))
        for index, op in enumerate(("enc", "dec")):
            ours = [r[index] for r in py[case.name]]
            theirs = [r[index] for r in ts.get(case.name, [])]
            mine = statistics.median(ours)
            cells = f"{case.name:<8} {op:<3} {size:>8} | {mine:>9.2f} [{_spread(ours):>11}]"
            if not theirs or not case.reference:
                print(f"{cells} | {'-':>22} | {'-':>5}")
                continue
            ref = statistics.median(theirs)
            ratio = mine / ref
            per_round = [a / b for a, b in zip(ours, theirs, strict=False)]
            cells += (f" | {ref:>9.2f} [{_spread(theirs):>11}] | {ratio:>5.2f}"
                      f" [{_spread(per_round):>11}]")
            if case.targets is None:
                print(f"{cells} {'-':>6}")
                continue
            target = case.targets[index]
            ok = ratio <= target
            checked += 1
            missed += not ok
            met_rounds = sum(r <= target for r in per_round)
            print(f"{cells} {'<=' + format(target, 'g'):>6} "
                  f"{'met' if ok else 'MISSED':<6} | {met_rounds:>4} of {len(per_round):<3}")
    if checked:
        print(f"targets met on the medians: {checked - missed} of {checked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
