"""`rivetpy dev` as a program (the README's main job), query routing, and the examples."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio

from rivetpy.client import ActorCallError, Client
from rivetpy.dev import actors_in, load_module, open_dev
from tests.actor.support import sleep_actor
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _run_dev(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"dev-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rivetpy.cli",
                "dev",
                str(EXAMPLES / "counter.py"),
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "engine and runner at" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "rivetpy dev never became ready"
        time.sleep(0.05)
    return proc, log


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_rivetpy_dev_serves_the_counter_example_and_keeps_its_data(tmp_path: Path) -> None:
    port = _free_port()
    url = (
        f"http://127.0.0.1:{port}/gateway/counter/action/increment"
        "?rvt-method=getOrCreate&rvt-key=demo&rvt-runner=rivetpy"
    )
    proc, log = _run_dev(tmp_path, port)
    try:
        text = log.read_text()
        assert "counter: actions get, increment, reset" in text
        assert _post(url, {"args": [5]}) == (200, {"output": 5})
        assert _post(url, {"args": [5]}) == (200, {"output": 10})
    finally:
        assert _stop(proc) == 0
    proc, _ = _run_dev(tmp_path, port)
    try:
        assert _post(url, {"args": [1]}) == (200, {"output": 11})
    finally:
        assert _stop(proc) == 0


def test_rivetpy_dev_reports_an_app_without_actors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "rivetpy", "dev", str(empty), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "defines no actors" in result.stderr


async def test_query_routing_get_and_get_or_create(tmp_path: Path) -> None:
    actors = actors_in(load_module(EXAMPLES / "counter.py"))
    with trio.fail_after(30):
        async with open_dev(actors, data_dir=tmp_path, port=0) as dev:
            base = f"{dev.endpoint}/gateway/counter/action/get"
            status, body = await trio.to_thread.run_sync(
                _post, base + "?rvt-method=get&rvt-key=none", {}
            )
            assert (status, body["code"]) == (404, "not_found")
            create = base + "?rvt-method=getOrCreate&rvt-key=q&rvt-runner=rivetpy"
            assert await trio.to_thread.run_sync(_post, create, {}) == (200, {"output": 0})
            assert len(dev.engine.engine.list_actors("default", name="counter", key="q")) == 1
            await trio.to_thread.run_sync(_post, create, {})
            assert len(dev.engine.engine.list_actors("default", name="counter", key="q")) == 1


async def test_chat_room_example(tmp_path: Path) -> None:
    actors = actors_in(load_module(EXAMPLES / "chat_room.py"))
    with trio.fail_after(30):
        async with open_dev(actors, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            room = await c.get_or_create("chat-room", "lobby")
            async with room.connect({"user": "ann"}) as ann:
                await ann.subscribe("message")
                await ann.subscribe("joined")
                async with room.connect({"user": "bob"}) as bob:
                    assert await ann.next_event() == ("joined", ["bob"])
                    assert await bob.action("say", "hi ann") == 1
                    assert await ann.next_event() == ("message", ["bob", "hi ann"])
                    assert await ann.action("who") == ["ann", "bob"]
            assert await room.action("history") == [["bob", "hi ann"]]
            with pytest.raises(ActorCallError) as no_conn:
                await room.action("say", "over http")
            assert no_conn.value.code == "connection_required"
            with pytest.raises(ActorCallError) as refused:
                async with room.connect({"user": " "}):
                    pass
            assert refused.value.code == "user_required"


async def test_sqlite_notes_example_survives_sleep(tmp_path: Path) -> None:
    actors = actors_in(load_module(EXAMPLES / "sqlite_notes.py"))
    with trio.fail_after(60):
        async with open_dev(actors, data_dir=tmp_path, port=0) as dev, Client(dev.endpoint) as c:
            notes = await c.get_or_create("notes", "mine")
            for i in range(300):  # > 300 KB of rows: many pages
                await notes.action("add", f"note {i} " + "z" * 1000)
            await notes.action("add", "buy milk")
            await sleep_actor(dev, notes.actor_id)
            assert await notes.action("count") == 301
            found = await notes.action("search", "milk")
            assert [n["body"] for n in found] == ["buy milk"]
