"""The runner as a program: SIGTERM/SIGINT drain gracefully and exit 0 (the README example)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_example_serves_then_drains_on_a_signal(tmp_path: Path, signum: int) -> None:
    port = _free_port()
    log = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "examples" / "runner_echo.py"),
            "--embedded",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=log,  # a file, so the logs can never fill a pipe and block the program
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        ping_url = None
        while time.monotonic() < deadline and ping_url is None:
            line = proc.stdout.readline()
            if not line:
                break
            if line.strip().startswith("curl http") and line.strip().endswith("/ping"):
                ping_url = line.split()[-1]
        assert ping_url is not None, "the example never printed its actor's URL"
        with urllib.request.urlopen(ping_url, timeout=10) as resp:
            assert resp.read() == b"pong"
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        log.close()
    err = (tmp_path / "stderr.log").read_text()
    assert code == 0, err[-2000:]
    assert "signal received: draining" in err
    assert "draining" in err and "Traceback" not in err
