"""``rivetpy engine``: logs where it listens, serves /health, exits 0 on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import REPO


def test_cli_engine_listens_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rivetpy.cli",
            "engine",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        endpoint = ""
        for line in proc.stderr:
            if "listening on " in line:
                endpoint = line.rsplit("listening on ", 1)[1].strip()
                break
        assert endpoint.startswith("http://127.0.0.1:")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(endpoint + "/health", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert (tmp_path / "data" / "engine.sqlite3").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
