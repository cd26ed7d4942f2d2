"""Codec benchmark: rivetpy's codec against the reference TypeScript codec, in the same run.

    python bench/codec.py [--seconds-per-case 1.0] [--no-node]

Messages (identical bytes on both sides, checked by sha256):
  small   ToServer ToServerTunnelMessage with a 64-byte WebSocket message
  medium  ToClient ToClientKvResponse, KvGetResponse with 100 entries
  bulk    ToClient ToClientKvResponse, KvListResponse of 256 x 4 KiB values (~1 MiB)
  init    ToServer ToServerInit with 20 prepopulated actor names
  preload (Python only; the TS package has no v8) v8 ToClientCommands whose CommandStartActor
          carries a PreloadedKv of 256 x 4 KiB entries

Python is timed through the public API a runtime calls (``codec.TO_CLIENT.decode(frame, 7)``
and friends). Figures are medians of per-message times over batches; the ratio is
Python time / TS time, and the targets are those of the codec issue. Ratios drift with machine
load: each side runs ``--rounds`` times, alternating, and keeps its best median per case;
compare runs side by side, never absolute times across machines.
"""

from __future__ import annotations

import argparse
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
    #: targets for Python/TS time: (encode, decode); None = no TS reference
    targets: tuple[float, float] | None


CASES = [
    Case("small", codec.TO_SERVER, small(), 7, (1.5, 1.5)),
    Case("medium", codec.TO_CLIENT, medium(), 7, (3.0, 0.5)),
    Case("bulk", codec.TO_CLIENT, bulk(), 7, (1.0, 0.5)),
    Case("init", codec.TO_SERVER, init(), 7, (1.5, 1.5)),
    Case("preload", codec.TO_CLIENT, preload(), 8, None),
]


def measure(fn: Callable[[], object], seconds: float) -> float:
    """Median microseconds per call over batches of >= ~1 ms, after a warm-up."""
    n = 1
    while n < 1 << 24:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        if time.perf_counter_ns() - start >= 1_000_000:
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


def run_node(seconds: float) -> dict[str, Any] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("node/npm not found: no reference figures", file=sys.stderr)
        return None
    if not (NODE_DIR / "node_modules" / "@rivetkit" / "engine-runner-protocol").exists():
        print("installing the reference codec (npm ci)...", file=sys.stderr)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True)
    print("running the reference TS codec...", file=sys.stderr)
    proc = subprocess.run(
        [node, str(NODE_DIR / "codec_bench.mjs"), "--seconds-per-case", str(seconds)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _keep_best_ts(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if old is None:
        return new
    for name, case in new["cases"].items():
        prev = old["cases"][name]
        prev["encode_us"] = min(prev["encode_us"], case["encode_us"])
        prev["decode_us"] = min(prev["decode_us"], case["decode_us"])
    return old


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-case", type=float, default=1.0)
    parser.add_argument("--no-node", action="store_true", help="skip the TS reference")
    parser.add_argument("--rounds", type=int, default=3, help="alternating TS/Python rounds")
    args = parser.parse_args()

    # Rounds alternate TS and Python; each side keeps its best (lowest) median per case, which
    # is the figure least disturbed by other load on the machine.
    ts: dict[str, Any] | None = None
    best: dict[str, tuple[float, float]] = {}
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}/{args.rounds}", file=sys.stderr)
        if not args.no_node:
            fresh = run_node(args.seconds_per_case)
            if fresh is not None:
                ts = _keep_best_ts(ts, fresh)
        for case in CASES:
            frame = case.top.encode(case.value, case.version)
            print(f"timing {case.name} ({len(frame)} bytes)...", file=sys.stderr)
            enc = measure(lambda c=case: c.top.encode(c.value, c.version), args.seconds_per_case)
            dec = measure(lambda c=case, f=frame: c.top.decode(f, c.version), args.seconds_per_case)
            old = best.get(case.name, (enc, dec))
            best[case.name] = (min(old[0], enc), min(old[1], dec))
    rows = []
    for case in CASES:
        frame = case.top.encode(case.value, case.version)
        assert case.top.decode(frame, case.version) == case.value
        digest = hashlib.sha256(frame).hexdigest()
        ref = ts["cases"].get(case.name) if ts else None
        if ref is not None and ref["sha256"] != digest:
            raise SystemExit(f"{case.name}: Python and TS messages differ ({len(frame)} bytes)")
        rows.append((case, len(frame), *best[case.name], ref))

    print(f"python {sys.version.split()[0]}; reference: "
          + (f"{ts['package']} on node {ts['node']}" if ts else "none"))
    header = (f"{'message':<8} {'bytes':>8} | {'py enc us':>9} {'ts enc us':>9} {'ratio':>6} "
              f"{'target':>6} | {'py dec us':>9} {'ts dec us':>9} {'ratio':>6} {'target':>6}"
              f" | {'py enc msg/s':>12} {'py dec msg/s':>12}")
    print(header)
    print("-" * len(header))
    missed = 0
    for case, size, enc, dec, ref in rows:
        cells = [f"{case.name:<8} {size:>8}"]
        for py_us, key, target in (
            (enc, "encode_us", case.targets[0] if case.targets else None),
            (dec, "decode_us", case.targets[1] if case.targets else None),
        ):
            if ref is None or target is None:
                cells.append(f"{py_us:>9.2f} {'-':>9} {'-':>6} {'-':>6}")
                continue
            ratio = py_us / ref[key]
            ok = ratio <= target
            missed += not ok
            cells.append(f"{py_us:>9.2f} {ref[key]:>9.2f} {ratio:>6.2f} "
                         f"{('<=' if ok else '!>') + format(target, 'g'):>6}")
        cells.append(f"{1e6 / enc:>12,.0f} {1e6 / dec:>12,.0f}")
        print(" | ".join(cells))
    if ts:
        print(f"targets met: {2 * 4 - missed} of 8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
