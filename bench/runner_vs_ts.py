"""Runner benchmark: the rivetpy runner against the reference TS runner on one real engine.

    python bench/runner_vs_ts.py [--quick] [--profile] [--py-spy PATH]

One real engine (``RealEngine``, loopback) serves two runners in the same run, each hosting
the same "echo" actor: the reference TS runner (``bench/node/ts_runner.mjs`` via ``TsRunner``,
runner name ``ts-bench``) and the Python runner (``bench/echo_app.py``, runner name
``py-bench``) in its own process, so the load generator never shares its event loop or GIL.
Measurements alternate between the runners in blocks (order A B B A ...) to spread drift.

Metrics (both runners; ratio = Python / TS):
  http p50/p99   ``GET /gateway/{id}/ping`` round trip, sequential on a keep-alive connection
  throughput     requests/s of ``GET /ping`` with 32 concurrent keep-alive clients
  ws p50/p99     WebSocket echo round trip through the gateway, one socket
  kv get p50     single-key KV get round trip measured inside the runner (``POST /kv-get``)
  create->ready  ``POST /actors`` sent -> first 200 of ``/ping`` through the gateway, fresh actors

Targets: every latency ratio <= 1.1, throughput ratio >= 1.0.

The client is stdlib only: pre-built HTTP/1.1 requests on raw sockets (blocking for latency, a
single-threaded ``selectors`` loop for throughput) and a minimal RFC 6455 client. Its ceiling
is measured against a trivial node HTTP server, and the CPU used by the engine, the runner and
the client during each throughput window is reported, to show what saturates. The machine is
shared by everything (2 cores here): compare ratios from one run, not absolute figures.

Engine facts that dominate some figures (engine 2.3.11 on this kind of machine): each gateway
request costs the engine ~10-16 ms of CPU, so the throughput figure is bounded by the engine
(the runners use a few % of a core) and mostly shows drift; KV gets are bimodal (~4.5 / ~7.5 ms,
switching over seconds, for both runners); and about one ``POST /actors`` in 5-10 stalls for
1-30 s (also with the TS runner alone; a 30 s stall ends in 500 ``pegboard_actor_create timed
out``), which the create->ready median tolerates and the detail line counts.

``--profile`` then drives both runners with three workloads (HTTP load, WebSocket echo, KV
gets), reports each runner's CPU per operation (from /proc) and, with py-spy (``--py-spy`` or
``py-spy`` on PATH; not a project dependency), the Python functions that dominate the Python
runner (samples holding the GIL). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import os
import resource
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rivetpy.testing.engine import (  # noqa: E402
    EngineApiError,
    EngineClient,
    RealEngine,
    install_engine,
    stop_process,
    track_process,
)
from rivetpy.testing.ts_runner import TsRunner, ensure_node_deps  # noqa: E402

ECHO_APP = REPO / "bench" / "echo_app.py"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def timed(what: str, fn: Callable[[], object]) -> None:
    start = time.monotonic()
    fn()
    progress(f"{what} in {time.monotonic() - start:.1f} s")


def stop_in_parallel(stops: list[tuple[str, Callable[[], object]]]) -> None:
    """Stop the runners at once (each may wait up to 15 s for the engine to drain it)."""
    threads = [threading.Thread(target=timed, args=(f"{name} stopped", fn)) for name, fn in stops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# ----------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Plan:
    http_requests: int  # sequential pings per runner
    http_block: int
    tput_clients: int
    tput_window: float  # seconds per window
    tput_windows: int  # windows per runner
    ws_messages: int
    ws_block: int
    kv_gets: int
    kv_block: int
    create_actors: int  # fresh actors per runner
    warmup_requests: int
    warmup_tput: float
    ceiling_seconds: float


FULL = Plan(500, 50, 32, 2.0, 5, 300, 50, 50, 5, 10, 100, 1.0, 2.0)
QUICK = Plan(100, 25, 32, 2.0, 1, 60, 20, 20, 5, 3, 30, 0.5, 1.0)

LATENCY_TARGET = 1.1
THROUGHPUT_TARGET = 1.0


# ----------------------------------------------------------------------------------------------
# Python runner process (same stdout event protocol as ts_runner.mjs)


class PyRunner:
    """``bench/echo_app.py`` as a subprocess; JSON event lines from stdout go to :attr:`events`."""

    def __init__(self, engine: RealEngine, runner_name: str, protocol_version: int = 7) -> None:
        self.engine = engine
        self.runner_name = runner_name
        self.protocol_version = protocol_version
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._eof = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.log_path = engine.run_dir / f"py-runner-{runner_name}.log"
        self.spawn_to_connected_seconds: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        command = [
            sys.executable,
            str(ECHO_APP),
            "--endpoint",
            self.engine.endpoint,
            "--runner-name",
            self.runner_name,
            "--protocol-version",
            str(self.protocol_version),
        ]
        started = time.monotonic()
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file
            )
        track_process(self._proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.wait_for("connected", timeout)
        except BaseException:
            self.stop()
            raise
        self.spawn_to_connected_seconds = time.monotonic() - started

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(
        self, name: str, timeout: float, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        index = 0
        with self._cond:
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if event.get("event") == name and (where is None or where(event)):
                        return event
                if self._eof:
                    raise RuntimeError(f"python runner exited before {name!r}:\n{self.log_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {name!r} from the python runner:\n{self.log_tail()}")
                self._cond.wait(remaining)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout, "python runner")
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None


# ----------------------------------------------------------------------------------------------
# Clients: raw-socket HTTP/1.1 and WebSocket


def _connect(port: int, timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def http_request_bytes(port: int, method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def parse_response(buf: bytes) -> tuple[int, bytes, int] | None:
    """(status, body, bytes consumed) of the first complete response in ``buf``, else None.

    Handles ``content-length`` and ``chunked`` bodies (the gateway sends content-length)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    status = int(head[9:12])
    start = end + 4
    cl = head.find(b"\r\ncontent-length:")
    if cl >= 0:
        line_end = head.find(b"\r\n", cl + 2)
        length = int(head[cl + 17 : line_end if line_end >= 0 else len(head)])
        if len(buf) < start + length:
            return None
        return status, buf[start : start + length], start + length
    if b"\r\ntransfer-encoding: chunked" in head:
        pos, body = start, list[bytes]()
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            size = int(buf[pos:nl].split(b";")[0], 16)
            if len(buf) < nl + 2 + size + 2:
                return None
            if size == 0:
                return status, b"".join(body), nl + 4
            body.append(buf[nl + 2 : nl + 2 + size])
            pos = nl + 2 + size + 2
    return status, b"", start  # no body (e.g. 204)


class HttpConn:
    """One blocking keep-alive connection."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.sock = _connect(port, timeout)
        self.buf = b""

    def send(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while True:
            parsed = parse_response(self.buf)
            if parsed is not None:
                status, body, used = parsed
                self.buf = self.buf[used:]
                return status, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        return self.send(http_request_bytes(self.port, method, path, body))

    def close(self) -> None:
        self.sock.close()


class WsConn:
    """A minimal blocking RFC 6455 client offering subprotocol ``rivet``."""

    _GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, port: int, path: str, timeout: float = 30.0) -> None:
        self.sock = _connect(port, timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rivet\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the WebSocket handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if head.split(b" ", 2)[1] != b"101":
            raise ConnectionError(f"WebSocket upgrade refused: {head[:200]!r}")
        accept = base64.b64encode(hashlib.sha1(key + self._GUID).digest())
        if accept.lower() not in head.lower():
            raise ConnectionError("bad Sec-WebSocket-Accept")
        self._mask = os.urandom(4)

    def send_text(self, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = bytes((0x81, 0x80 | n))
        else:
            header = bytes((0x81, 0x80 | 126)) + struct.pack("!H", n)
        mask = self._mask
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("WebSocket closed")
            self.buf += chunk

    def recv(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next data frame (pings answered, control frames skipped)."""
        while True:
            self._need(2)
            b0, b1 = self.buf[0], self.buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                self._need(4)
                n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10)
                n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
            self._need(pos + n)
            payload, self.buf = self.buf[pos : pos + n], self.buf[pos + n :]
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError(f"WebSocket closed by peer: {payload!r}")
            if opcode in (0x1, 0x2):
                return opcode, payload

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(
                bytes((0x88, 0x82))
                + self._mask
                + bytes(b ^ self._mask[i] for i, b in enumerate(struct.pack("!H", 1000)))
            )
        self.sock.close()


# ----------------------------------------------------------------------------------------------
# Throughput: one thread, N non-blocking keep-alive connections, a selectors loop


@dataclass
class _Slot:
    sock: socket.socket
    buf: bytes = b""


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)  # cores used, per process

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def proc_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load(
    port: int,
    path: str,
    clients: int,
    seconds: float,
    watch: dict[str, int | None] | None = None,
) -> LoadResult:
    """``clients`` keep-alive connections each sending ``GET path`` back to back for ``seconds``."""
    raw = http_request_bytes(port, "GET", path)
    sel = selectors.DefaultSelector()
    slots = []
    for _ in range(clients):
        sock = _connect(port)
        sock.setblocking(False)
        slot = _Slot(sock)
        slots.append(slot)
        sel.register(sock, selectors.EVENT_READ, slot)
    watch = watch or {}
    cpu0 = {name: proc_cpu_seconds(pid) for name, pid in watch.items()}
    client0 = self_cpu_seconds()
    done = errors = 0
    start = time.perf_counter()
    deadline = start + seconds
    for slot in slots:
        slot.sock.send(raw)
    outstanding = clients
    now = start
    try:
        while outstanding and now < deadline + 10:
            for key, _ in sel.select(timeout=0.5):
                slot = key.data
                chunk = slot.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed a load connection")
                slot.buf += chunk
                while True:
                    parsed = parse_response(slot.buf)
                    if parsed is None:
                        break
                    status, _body, used = parsed
                    slot.buf = slot.buf[used:]
                    outstanding -= 1
                    if now < deadline:
                        if status == 200:
                            done += 1
                        else:
                            errors += 1
                        slot.sock.send(raw)
                        outstanding += 1
            now = time.perf_counter()
    finally:
        cpu = {name: proc_cpu_seconds(pid) - cpu0[name] for name, pid in watch.items()}
        cpu["client"] = self_cpu_seconds() - client0
        for slot in slots:
            sel.unregister(slot.sock)
            slot.sock.close()
        sel.close()
    return LoadResult(done, errors, seconds, {k: v / seconds for k, v in cpu.items()})


# ----------------------------------------------------------------------------------------------
# Statistics and table


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Row:
    metric: str
    unit: str
    ts: float
    py: float
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.py / self.ts if self.ts else float("nan")

    @property
    def target(self) -> str:
        return f">={THROUGHPUT_TARGET:g}" if self.higher_is_better else f"<={LATENCY_TARGET:g}"

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.ratio >= THROUGHPUT_TARGET
        return self.ratio <= LATENCY_TARGET


# ----------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Side:
    name: str  # "ts" / "py"
    runner_name: str
    pid: int | None
    actor_id: str = ""
    http: HttpConn | None = None


def abba(n_blocks: int) -> Iterator[tuple[int, int]]:
    """Block order (block, side index) A B B A A B B A ..."""
    for block in range(n_blocks):
        order = (0, 1) if block % 2 == 0 else (1, 0)
        for side in order:
            yield block, side


def bench_http(sides: list[Side], plan: Plan) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {s.name: [] for s in sides}
    reqs = {
        s.name: http_request_bytes(s.http.port, "GET", f"/gateway/{s.actor_id}/ping")
        for s in sides
        if s.http
    }
    blocks = plan.http_requests // plan.http_block
    for _block, i in abba(blocks):
        side = sides[i]
        assert side.http is not None
        raw = reqs[side.name]
        out = samples[side.name]
        for _ in range(plan.http_block):
            t = time.perf_counter()
            status, body = side.http.send(raw)
            out.append((time.perf_counter() - t) * 1000)
            if status != 200 or body != b"pong":
                raise RuntimeError(f"{side.name}: /ping -> {status} {body[:100]!r}")
    return samples


def bench_ws(sides: list[Side], plan: Plan, port: int) -> dict[str, list[float]]:
    conns = {s.name: WsConn(port, f"/gateway/{s.actor_id}/ws") for s in sides}
    samples: dict[str, list[float]] = {s.name: [] for s in sides}
    try:
        for s in sides:  # warm-up
            for k in range(5):
                conns[s.name].send_text(b"warm-%d" % k)
                conns[s.name].recv()
        blocks = plan.ws_messages // plan.ws_block
        seq = 0
        for _block, i in abba(blocks):
            side = sides[i]
            ws = conns[side.name]
            out = samples[side.name]
            for _ in range(plan.ws_block):
                seq += 1
                msg = b"echo-%08d-" % seq + b"x" * 20
                t = time.perf_counter()
                ws.send_text(msg)
                opcode, payload = ws.recv()
                out.append((time.perf_counter() - t) * 1000)
                if opcode != 1 or payload != msg:
                    raise RuntimeError(f"{side.name}: bad ws echo {opcode} {payload[:60]!r}")
    finally:
        for ws in conns.values():
            ws.close()
    return samples


def bench_kv(sides: list[Side], plan: Plan) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {s.name: [] for s in sides}
    for s in sides:
        assert s.http is not None
        status, _ = s.http.request("POST", f"/gateway/{s.actor_id}/kv-put?key=bench", b"v" * 32)
        if status != 200:
            raise RuntimeError(f"{s.name}: kv-put -> {status}")
        s.http.request("POST", f"/gateway/{s.actor_id}/kv-get?key=bench&n=5")  # warm-up
    blocks = plan.kv_gets // plan.kv_block
    for _block, i in abba(blocks):
        side = sides[i]
        assert side.http is not None
        status, body = side.http.request(
            "POST", f"/gateway/{side.actor_id}/kv-get?key=bench&n={plan.kv_block}"
        )
        result = json.loads(body)
        if status != 200 or not result.get("found"):
            raise RuntimeError(f"{side.name}: kv-get -> {status} {body[:200]!r}")
        samples[side.name].extend(result["ms"])
    return samples


def bench_throughput(
    sides: list[Side], plan: Plan, port: int, engine_pid: int | None
) -> dict[str, LoadResult]:
    totals: dict[str, LoadResult] = {}
    for block, i in abba(plan.tput_windows):
        side = sides[i]
        progress(f"  throughput {side.name} window {block + 1}/{plan.tput_windows}")
        r = load(
            port,
            f"/gateway/{side.actor_id}/ping",
            plan.tput_clients,
            plan.tput_window,
            {"engine": engine_pid, "runner": side.pid},
        )
        progress(
            f"    {r.rps:,.0f} req/s, {r.errors} errors; cores: "
            + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu.items())
        )
        prev = totals.get(side.name)
        if prev is None:
            totals[side.name] = LoadResult(r.requests, r.errors, r.seconds, dict(r.cpu))
        else:
            w = prev.seconds
            prev.cpu = {
                k: (prev.cpu[k] * w + r.cpu[k] * r.seconds) / (w + r.seconds) for k in r.cpu
            }
            prev.requests += r.requests
            prev.errors += r.errors
            prev.seconds += r.seconds
    return totals


def bench_create(
    sides: list[Side], plan: Plan, client: EngineClient, port: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str], dict[str, int]]:
    ready: dict[str, list[float]] = {s.name: [] for s in sides}
    api: dict[str, list[float]] = {s.name: [] for s in sides}
    created: list[str] = []
    failures = {s.name: 0 for s in sides}
    # Engine stalls make some creates fail: retry up to twice as many attempts per runner
    # until each has ``create_actors`` samples; a runner that has its samples skips its turn.
    for block, i in abba(2 * plan.create_actors):
        side = sides[i]
        if len(ready[side.name]) >= plan.create_actors:
            continue
        t = time.perf_counter()
        try:
            actor = client.create_actor(
                "echo", f"ready-{side.name}-{block}", None, side.runner_name
            )
        except (OSError, EngineApiError) as exc:
            progress(
                f"    {side.name} #{block}: POST /actors failed after "
                f"{time.perf_counter() - t:.1f} s: {exc!r}; skipped"
            )
            failures[side.name] += 1
            continue
        t_api = time.perf_counter()
        actor_id = actor["actor_id"]
        created.append(actor_id)
        raw = http_request_bytes(port, "GET", f"/gateway/{actor_id}/ping")
        conn = HttpConn(port, timeout=8)
        try:
            while True:
                status, body = conn.send(raw)
                if status == 200 and body == b"pong":
                    break
                if time.perf_counter() - t > 8:
                    raise TimeoutError(f"not ready: {status} {body[:200]!r}")
                time.sleep(0.002)
        except OSError as exc:
            progress(f"    {side.name} #{block}: /ping never succeeded: {exc!r}; skipped")
            failures[side.name] += 1
            continue
        finally:
            conn.close()
        ready[side.name].append((time.perf_counter() - t) * 1000)
        api[side.name].append((t_api - t) * 1000)
        note = ""
        if api[side.name][-1] > 1000:  # an engine stall: where did the time go?
            with contextlib.suppress(Exception):
                info = client.get_actor(actor_id) or {}
                base = info.get("create_ts") or 0
                note = (
                    " (stall; actor ts relative to create_ts, ms: "
                    + ", ".join(
                        f"{k} {info[k] - base}"
                        for k in ("pending_allocation_ts", "start_ts", "connectable_ts")
                        if info.get(k)
                    )
                    + ")"
                )
        progress(
            f"    {side.name} #{block}: POST /actors {api[side.name][-1]:.0f} ms, "
            f"ready {ready[side.name][-1]:.0f} ms{note}"
        )
        time.sleep(0.05)
    return ready, api, created, failures


def destroy_all(client: EngineClient, actor_ids: list[str]) -> None:
    """Destroy actors concurrently (a destroy can stall in the engine like a create)."""

    def destroy(actor_id: str) -> None:
        with contextlib.suppress(Exception):
            client.destroy_actor(actor_id)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(destroy, actor_ids))


NODE_TRIVIAL_SERVER = """
const http = require('http');
const s = http.createServer((q, r) => { r.writeHead(200, {'content-length': 4}); r.end('pong'); });
s.listen(0, '127.0.0.1', () => { console.log(s.address().port); });
"""


def client_ceiling(seconds: float, clients: int) -> LoadResult | None:
    """The load generator against a trivial node HTTP server (its ceiling on this machine)."""
    node = shutil.which("node")
    if node is None:
        return None
    proc = subprocess.Popen(
        [node, "-e", NODE_TRIVIAL_SERVER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    track_process(proc)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        load(port, "/ping", clients, min(0.5, seconds))  # warm-up
        return load(port, "/ping", clients, seconds, {"server": proc.pid})
    finally:
        stop_process(proc, 5, "trivial node server")


# ----------------------------------------------------------------------------------------------
# py-spy profile of the Python runner under load


def workload(kind: str, side: Side, port: int, seconds: float) -> int:
    """Drive one runner for ``seconds``; return the operations done."""
    if kind == "http":
        return load(port, f"/gateway/{side.actor_id}/ping", 32, seconds).requests
    if kind == "ws":
        ws = WsConn(port, f"/gateway/{side.actor_id}/ws")
        try:
            done, deadline = 0, time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                ws.send_text(b"profile-%d" % done)
                ws.recv()
                done += 1
            return done
        finally:
            ws.close()
    conn = HttpConn(port, timeout=seconds + 60)
    try:
        n = max(10, int(seconds / 0.006))
        status, body = conn.request("POST", f"/gateway/{side.actor_id}/kv-get?key=bench&n={n}")
        if status != 200:
            raise RuntimeError(f"kv-get -> {status} {body[:200]!r}")
        return len(json.loads(body)["ms"])
    finally:
        conn.close()


PROFILE_KINDS = {
    "http": "GET /ping, 32 clients",
    "ws": "WebSocket echo, one socket, sequential",
    "kv": "KV get loop inside the actor",
}


def profile_runners(
    py_spy: str | None, sides: list[Side], port: int, seconds: float, out_dir: Path
) -> str:
    """Runner CPU per operation (from /proc) for both runners under three workloads, and a
    py-spy profile of the Python runner under each."""
    lines = [f"runner CPU per operation (/proc, {seconds:g} s per workload and runner):"]
    profiles = []
    for kind, label in PROFILE_KINDS.items():
        per_op = {}
        for side in sides:
            spy = out = None
            if side.name == "py" and py_spy:
                out = out_dir / f"py-runner-profile-{kind}.txt"
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(side.pid),
                        "--duration",
                        str(int(seconds) + 2),
                        "--rate",
                        "500",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                time.sleep(0.5)
            progress(f"  {kind} workload on {side.name}{' under py-spy' if spy else ''}")
            cpu0, t0 = proc_cpu_seconds(side.pid), time.perf_counter()
            ops = workload(kind, side, port, seconds)
            cpu, wall = proc_cpu_seconds(side.pid) - cpu0, time.perf_counter() - t0
            per_op[side.name] = (cpu * 1e3 / max(ops, 1), ops / wall, cpu / wall)
            if spy is not None and out is not None:
                _, err = spy.communicate(timeout=seconds + 60)
                if spy.returncode != 0 or not out.exists():
                    profiles.append(
                        f"py-spy failed on {kind} ({spy.returncode}): "
                        f"{err.decode(errors='replace')[-300:]}"
                    )
                else:
                    profiles.append(
                        summarize_collapsed(
                            out,
                            f"{label}: {ops / wall:,.0f} ops/s, runner "
                            f"{cpu / wall:.2f} cores, {cpu * 1e3 / max(ops, 1):.2f} ms CPU/op",
                        )
                    )
        ts_ms, py_ms = per_op["ts"][0], per_op["py"][0]
        lines.append(
            f"  {kind:<4} {label:<40} ts {ts_ms:.3f} ms ({per_op['ts'][1]:,.0f} ops/s), "
            f"py {py_ms:.3f} ms ({per_op['py'][1]:,.0f} ops/s); py/ts "
            f"{py_ms / ts_ms if ts_ms else float('nan'):.2f}"
        )
    lines.append("  (/proc CPU is in 10 ms ticks; low-rate workloads are coarse)")
    return "\n".join([*lines, "", *profiles])


_LAYERS = (  # (substring of the frame's location, layer); first match wins
    ("trio_websocket", "trio-websocket"),
    ("wsproto/", "wsproto (frames, masking)"),
    ("h11/", "wsproto (frames, masking)"),
    ("trio/_core/_io_epoll", "trio epoll"),
    ("trio/_socket", "trio sockets"),
    ("trio/_highlevel", "trio sockets"),
    ("trio/", "trio scheduler, cancel scopes, channels"),
    ("outcome", "trio scheduler, cancel scopes, channels"),
    ("attrs generated methods trio", "trio scheduler, cancel scopes, channels"),
    ("contextlib", "contextlib (trio fail_after/move_on_after)"),
    ("rivetpy/runner/api", "rivetpy api"),
    ("rivetpy/runner", "rivetpy runner driver"),
    ("rivetpy/protocol", "rivetpy protocol core"),
    ("codec", "codec"),
    ("<string>", "dataclass __init__"),
    ("echo_app", "app"),
)


def _frame(frame: str) -> tuple[str, str]:
    """``"func (path/to/file.py:123)"`` -> ``("func (rel/file.py)", layer)``."""
    name, _, loc = frame.partition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    rel = path
    for marker in ("site-packages/", str(REPO) + "/", "python3.11/"):
        if marker in path:
            rel = path.split(marker, 1)[1]
            break
    layer = next((lay for key, lay in _LAYERS if key in path), "other: " + rel.split("/")[0])
    return f"{name} ({rel})", layer


def summarize_collapsed(path: Path, title: str, top: int = 12) -> str:
    """Top functions of a py-spy ``--format raw --gil`` file: samples of the thread holding the
    GIL, i.e. Python-level work (time in syscalls and in epoll waits is not in them)."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        self_counts[frames[-1][0]] += count
        groups[frames[-1][1]] += count
        for name in {f[0] for f in frames}:
            incl[name] += count
    if not total:
        return f"py-spy profile, {title}: no samples"
    out = [f"py-spy profile of the Python runner, {title}: {total} samples holding the GIL"]
    out.append("  self time by layer:")
    out += [f"    {c / total:6.1%}  {g}" for g, c in groups.most_common(10)]
    out.append(f"  top {top} functions by self time:")
    out += [f"    {c / total:6.1%}  {f}" for f, c in self_counts.most_common(top)]
    out.append(f"  top {top} functions by inclusive time (frames in >95% of samples left out):")
    inclusive = [(f, c) for f, c in incl.most_common() if c < 0.95 * total][:top]
    out += [f"    {c / total:6.1%}  {f}" for f, c in inclusive]
    out.append(f"  raw stacks: {path}")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~30 s)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile the Python runner under load with py-spy",
    )
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy binary")
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=5.0,
        help="seconds per workload and runner for --profile",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    load_before = os.getloadavg()

    progress("installing/locating the engine and node packages")
    binary = install_engine()
    ensure_node_deps()
    rows: list[Row] = []
    extra: list[str] = []
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(RealEngine(binary, keep_run_dir=args.profile or None))
        stack.callback(timed, "engine stopped", engine.stop)
        progress(f"engine up at {engine.endpoint} (pid {engine.pid}, run dir {engine.run_dir})")
        client = engine.client()
        port = engine.ports.guard
        to_stop: list[tuple[str, Callable[[], object]]] = []
        stack.callback(stop_in_parallel, to_stop)
        ts = TsRunner(engine, runner_name="ts-bench")
        ts.start()
        to_stop.append(("ts runner", ts.stop))
        progress(f"ts runner connected in {ts.spawn_to_connected_seconds:.3f} s (pid {ts.pid})")
        py = PyRunner(engine, "py-bench")
        py.start()
        to_stop.append(("py runner", py.stop))
        progress(f"py runner connected in {py.spawn_to_connected_seconds:.3f} s (pid {py.pid})")

        sides = [Side("ts", "ts-bench", ts.pid), Side("py", "py-bench", py.pid)]
        for side in sides:
            client.wait_for_runner_config(side.runner_name, timeout=15)
            actor = client.create_actor(
                "echo", f"bench-{side.name}", None, side.runner_name, retry_for=15
            )
            side.actor_id = actor["actor_id"]
            side.http = HttpConn(port)
            stack.callback(side.http.close)
        ts.wait_actor_started(sides[0].actor_id)
        py.wait_for("actor_started", 15, lambda e: e.get("actor_id") == sides[1].actor_id)
        progress("actors up: " + ", ".join(f"{s.name}={s.actor_id}" for s in sides))

        progress("warm-up")
        for side in sides:
            assert side.http is not None
            for _ in range(plan.warmup_requests):
                status, _ = side.http.request("GET", f"/gateway/{side.actor_id}/ping")
                assert status == 200, status
            load(port, f"/gateway/{side.actor_id}/ping", plan.tput_clients, plan.warmup_tput)

        progress(f"client ceiling: trivial node server, {plan.tput_clients} clients")
        ceiling = client_ceiling(plan.ceiling_seconds, plan.tput_clients)

        progress(f"HTTP round trip: {plan.http_requests} sequential pings per runner")
        http = bench_http(sides, plan)
        for q in (50, 99):
            rows.append(Row(f"http ping p{q}", "ms", pct(http["ts"], q), pct(http["py"], q)))

        progress(
            f"throughput: {plan.tput_clients} clients, "
            f"{plan.tput_windows} x {plan.tput_window:g} s per runner"
        )
        tput = bench_throughput(sides, plan, port, engine.pid)
        rows.append(
            Row(
                f"throughput ({plan.tput_clients} clients)",
                "req/s",
                tput["ts"].rps,
                tput["py"].rps,
                higher_is_better=True,
            )
        )

        progress(f"WebSocket echo: {plan.ws_messages} messages per runner")
        ws = bench_ws(sides, plan, port)
        for q in (50, 99):
            rows.append(Row(f"ws echo p{q}", "ms", pct(ws["ts"], q), pct(ws["py"], q)))

        progress(f"KV get inside the runner: {plan.kv_gets} gets per runner")
        kv = bench_kv(sides, plan)
        rows.append(
            Row(
                "kv get p50 (in runner)",
                "ms",
                statistics.median(kv["ts"]),
                statistics.median(kv["py"]),
            )
        )

        progress(f"create -> ready: {plan.create_actors} fresh actors per runner")
        ready, api, created, failures = bench_create(
            sides, plan, EngineClient(engine.endpoint, timeout=8), port
        )
        rows.append(
            Row(
                "create->ready p50",
                "ms",
                statistics.median(ready["ts"]),
                statistics.median(ready["py"]),
            )
        )
        after = {n: [r - a for r, a in zip(ready[n], api[n], strict=True)] for n in ready}
        med = {
            k: {n: statistics.median(v[n]) for n in v} for k, v in (("api", api), ("after", after))
        }
        stalls = {n: sum(a > 1000 for a in api[n]) for n in api}
        extra.append(
            f"create->ready detail (ms, p50 ts / py): POST /actors response "
            f"{med['api']['ts']:.1f} / {med['api']['py']:.1f}; response -> ready "
            f"{med['after']['ts']:.1f} / {med['after']['py']:.1f}; ready range ts "
            f"{min(ready['ts']):.0f}-{max(ready['ts']):.0f}, py "
            f"{min(ready['py']):.0f}-{max(ready['py']):.0f}; POST /actors > 1 s (engine stalls) "
            f"ts {stalls['ts']}, py {stalls['py']}; failed ts {failures['ts']}, py {failures['py']}"
        )
        extra.append(
            "kv get detail (ms, ts / py): p10 {:.2f} / {:.2f}, p90 {:.2f} / {:.2f}".format(
                pct(kv["ts"], 10), pct(kv["py"], 10), pct(kv["ts"], 90), pct(kv["py"], 90)
            )
        )
        destroy_all(EngineClient(engine.endpoint, timeout=5), created)

        if ceiling is not None:
            extra.append(
                f"client ceiling vs trivial node server: {ceiling.rps:,.0f} req/s, client "
                f"{ceiling.cpu['client']:.2f} cores, server {ceiling.cpu['server']:.2f} cores "
                f"({ceiling.cpu['client'] * 1e6 / max(ceiling.rps, 1):.0f} us client CPU/request)"
            )
        for name in ("ts", "py"):
            r = tput[name]
            extra.append(
                f"cores used during {name} throughput: engine {r.cpu['engine']:.2f}, "
                f"runner {r.cpu['runner']:.2f}, client {r.cpu['client']:.2f}; CPU per request: "
                f"engine {r.cpu['engine'] * 1e3 / max(r.rps, 1):.1f} ms, runner "
                f"{r.cpu['runner'] * 1e3 / max(r.rps, 1):.2f} ms (errors {r.errors})"
            )

        profile_text = None
        if args.profile:
            progress(
                "profiling runner CPU per operation"
                + ("" if args.py_spy else " (py-spy not found: no python profile)")
            )
            profile_text = profile_runners(
                args.py_spy, sides, port, args.profile_seconds, engine.run_dir
            )
        destroy_all(EngineClient(engine.endpoint, timeout=5), [side.actor_id for side in sides])
        progress("stopping runners and engine")

    total = time.monotonic() - started
    load_after = os.getloadavg()

    print(
        f"rivetpy runner vs reference TS runner (@rivetkit/engine-runner) on rivet-engine "
        f"2.3.11, loopback; python {sys.version.split()[0]}; {os.cpu_count()} cpus; "
        f"{'quick' if args.quick else 'full'} run"
    )
    header = (
        f"{'metric':<26} {'unit':>5} | {'ts':>9} {'python':>9} | {'py/ts':>6} {'target':>6} {'':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        fmt = "{:>9,.0f}" if row.unit == "req/s" else "{:>9.2f}"
        print(
            f"{row.metric:<26} {row.unit:>5} | {fmt.format(row.ts)} {fmt.format(row.py)} | "
            f"{row.ratio:>6.2f} {row.target:>6} {'met' if row.met else 'MISSED':>6}"
        )
    met = sum(r.met for r in rows)
    print(f"targets met: {met} of {len(rows)}")
    for line in extra:
        print(line)
    print(
        f"samples: http {plan.http_requests}/runner, ws {plan.ws_messages}/runner, "
        f"kv {plan.kv_gets}/runner, create {plan.create_actors}/runner, throughput "
        f"{plan.tput_windows}x{plan.tput_window:g} s/runner; blocks alternate A B B A"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"total runtime {total:.1f} s"
    )
    if profile_text:
        print()
        print(profile_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
