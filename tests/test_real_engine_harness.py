"""The real-engine harness: RealEngine, EngineClient and the reference TS runner (TsRunner).

Needs npm (to install the engine binary) and node (for the TS runner): skipped without them,
failed instead when RIVETPY_REQUIRE_NODE=1.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import struct
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivetpy.testing import engine as engine_module
from rivetpy.testing.engine import (
    EngineApiError,
    EngineClient,
    EngineStartError,
    EngineUnavailable,
    RealEngine,
    install_engine,
)
from rivetpy.testing.ts_runner import NodeUnavailable, TsRunner, ensure_node_deps

# Loopback requests only; never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _unavailable(reason: str) -> None:
    if os.environ.get("RIVETPY_REQUIRE_NODE") == "1":
        pytest.fail(f"{reason} (RIVETPY_REQUIRE_NODE=1)")
    pytest.skip(reason)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def engine_binary() -> Path:
    try:
        return install_engine()
    except EngineUnavailable as exc:
        _unavailable(f"cannot install the real engine: {exc}")
        raise


@pytest.fixture(scope="session")
def node_ready() -> None:
    try:
        ensure_node_deps()
    except NodeUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="module")
def engine(engine_binary: Path) -> Iterator[RealEngine]:
    with RealEngine(engine_binary) as running:
        yield running


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with _OPENER.open(url, timeout=timeout) as response:
        return response.status, response.read()


def _post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    with _OPENER.open(request, timeout=timeout) as response:
        return response.status, response.read()


class _WebSocket:
    """A minimal blocking RFC 6455 client (stdlib only) offering subprotocol ``rivet``."""

    _GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, http_url: str, timeout: float = 10.0) -> None:
        url = urllib.parse.urlsplit(http_url)
        assert url.hostname is not None and url.port is not None
        self._sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self._sock.sendall(
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rivet\r\n\r\n".encode()
        )
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv_some()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status, *lines = head.decode().split("\r\n")
        assert status.split()[1] == "101", head
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
        accept = base64.b64encode(hashlib.sha1(key + self._GUID).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        self.protocol = headers.get("sec-websocket-protocol")

    def __enter__(self) -> _WebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        self._sock.close()

    def _recv_some(self) -> bytes:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("websocket closed by peer")
        return data

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._recv_some()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(header + mask + masked)

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._send_frame(0x1, message.encode())
        else:
            self._send_frame(0x2, message)

    def receive(self) -> str | bytes:
        """The next text (str) or binary (bytes) message; answers pings on the way."""
        kind, data = 0, b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError(f"websocket closed by peer: {payload!r}")
            if opcode in (0x1, 0x2):
                kind = opcode
            if opcode in (0x0, 0x1, 0x2):
                data += payload
                if first & 0x80:
                    return data.decode() if kind == 0x1 else data


def test_engine_is_healthy_on_loopback_with_default_namespace(engine: RealEngine) -> None:
    client = engine.client()
    health = client.health()
    assert health["status"] == "ok"
    assert health["runtime"] == "engine"
    assert health["version"] == engine_module.ENGINE_VERSION
    assert "default" in [ns["name"] for ns in client.list_namespaces()]
    assert engine.endpoint == f"http://127.0.0.1:{engine.ports.guard}"
    assert len({engine.ports.guard, engine.ports.api_peer, engine.ports.metrics}) == 3
    assert engine.startup_seconds is not None and engine.startup_seconds < 30
    config = json.loads(engine.config_path.read_text())
    assert config["telemetry"] == {"enabled": False}
    assert {config[s]["host"] for s in ("guard", "api_peer", "metrics")} == {"127.0.0.1"}


def test_api_errors_are_typed(engine: RealEngine) -> None:
    client = engine.client()
    with pytest.raises(EngineApiError) as info:
        client.create_actor("echo", "k", None, "no-such-runner")
    assert info.value.status == 400
    assert info.value.error_id == "actor.no_runner_config_configured"
    assert "no-such-runner" in info.value.message


def test_ts_runner_serves_echo_actor_through_gateway(engine: RealEngine, node_ready: None) -> None:
    client = engine.client()
    with TsRunner(engine) as runner:
        pid = runner.pid
        assert pid is not None
        assert runner.runner_id
        client.wait_for_runner_config(runner.runner_name, timeout=10)
        actor = client.create_actor("echo", "k1", b"hello", runner.runner_name, retry_for=10)
        actor_id = actor["actor_id"]
        started = runner.wait_actor_started(actor_id)
        assert started["name"] == "echo"
        assert started["key"] == "k1"

        assert _get(client.gateway_url(actor_id, "/ping")) == (200, b"pong")
        assert _post(client.gateway_url(actor_id, "/anything"), b"\x00echo") == (200, b"\x00echo")

        # KV: write inside the runner, read through the public API.
        assert _post(client.gateway_url(actor_id, "/kv-put?key=greeting"), b"hi")[0] == 200
        assert client.kv_get(actor_id, b"greeting") == b"hi"
        assert client.kv_get(actor_id, b"missing") is None
        status, body = _post(client.gateway_url(actor_id, "/kv-get?key=greeting&n=3"), b"")
        timing = json.loads(body)
        assert status == 200 and timing["found"] is True and len(timing["ms"]) == 3

        fetched = client.get_actor(actor_id)
        assert fetched is not None and fetched["connectable_ts"] is not None
        client.destroy_actor(actor_id)
        runner.wait_for_event("actor_stopped", where=lambda e: e["actor_id"] == actor_id)
        destroyed = client.get_actor(actor_id)
        assert destroyed is not None and destroyed["destroy_ts"] is not None
    assert not _alive(pid)
    assert runner.events[-1]["event"] == "shutdown"


def test_ts_runner_echoes_websocket_and_restores_hibernated_socket(
    engine: RealEngine, node_ready: None
) -> None:
    client = engine.client()
    with TsRunner(engine, hibernate=True) as runner:
        actor = client.create_actor("echo", "ws", None, runner.runner_name, retry_for=10)
        actor_id = actor["actor_id"]
        with _WebSocket(client.gateway_url(actor_id, "/ws")) as ws:
            assert ws.protocol == "rivet"
            ws.send("text")
            assert ws.receive() == "text"
            ws.send(b"\x01\x02")
            assert ws.receive() == b"\x01\x02"

            # The actor sleeps; the hibernatable socket stays open and its next message
            # wakes the actor, which restores the socket and echoes.
            _post(client.gateway_url(actor_id, "/sleep"), b"")
            runner.wait_for_event("actor_stopped", where=lambda e: e["actor_id"] == actor_id)
            ws.send("after sleep")
            assert ws.receive() == "after sleep"
        starts = [e for e in runner.actor_events(actor_id) if e["event"] == "actor_started"]
        assert len(starts) == 2
        client.destroy_actor(actor_id)


def test_admin_token_is_required_by_the_api_and_used_by_the_runner(
    engine_binary: Path, node_ready: None
) -> None:
    with RealEngine(engine_binary, admin_token="test-token") as engine:
        client = engine.client()
        assert client.token == "test-token"
        anonymous = EngineClient(engine.endpoint)
        with pytest.raises(EngineApiError) as info:
            anonymous.list_namespaces()
        assert (info.value.status, info.value.error_id) == (403, "api.forbidden")
        with TsRunner(engine) as runner:
            actor = client.create_actor("echo", "auth", None, runner.runner_name, retry_for=10)
            assert _get(client.gateway_url(actor["actor_id"], "/ping")) == (200, b"pong")
            client.destroy_actor(actor["actor_id"])


def test_restart_keeps_ports_and_data(engine_binary: Path) -> None:
    with RealEngine(engine_binary) as engine:
        before = engine.client().list_namespaces()
        ports, first_pid = engine.ports, engine.pid
        engine.restart()
        assert engine.ports == ports
        assert engine.pid != first_pid and first_pid is not None and not _alive(first_pid)
        assert engine.client().list_namespaces() == before
        run_dir, pid = engine.run_dir, engine.pid
    assert pid is not None and not _alive(pid)
    assert not run_dir.exists()


def test_missing_binary_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(EngineUnavailable, match="does not exist"):
        RealEngine(tmp_path / "rivet-engine").start()
    assert time.monotonic() - start < 5


def test_binary_that_exits_fails_with_its_exit_code(tmp_path: Path) -> None:
    fake = tmp_path / "rivet-engine"
    fake.write_text("#!/bin/sh\necho 'fake engine: refusing to start' >&2\nexit 3\n")
    fake.chmod(0o755)
    start = time.monotonic()
    with pytest.raises(EngineStartError, match="exited with code 3") as info:
        RealEngine(fake, run_dir=tmp_path / "run").start()
    assert "refusing to start" in info.value.log_tail
    assert time.monotonic() - start < 10


def test_port_in_use_fails_fast(engine_binary: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        with (
            pytest.raises(EngineStartError, match=f"guard port 127.0.0.1:{port} is already in use"),
            RealEngine(engine_binary, guard_port=port),
        ):
            pass
        assert time.monotonic() - start < 5


def test_port_taken_after_the_check_is_detected_in_the_log(
    engine_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine does not exit when it cannot bind: its guard service crash-loops. The
    # harness must notice that in the log instead of waiting for the health timeout.
    monkeypatch.setattr(engine_module, "port_is_free", lambda port: True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        with (
            pytest.raises(EngineStartError, match="address in use") as info,
            RealEngine(engine_binary, guard_port=port, startup_timeout=20),
        ):
            pass
        assert time.monotonic() - start < 10
        assert "Address in use" in info.value.log_tail
