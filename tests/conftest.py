"""Shared fixtures: golden vectors and the reference TypeScript codec (node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
VECTORS = TESTS / "vectors"


def load_vectors(version: int = 7) -> list[dict[str, Any]]:
    data: dict[str, Any] = json.loads((VECTORS / f"v{version}.json").read_text())
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


def _node_package_dir(folder: Path) -> Path:
    """Install a node helper folder's pinned packages (npm ci) once; fail or skip without node.

    With RIVETPY_REQUIRE_NODE=1 (set by .ci/run) a missing node is a failure, not a skip.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("RIVETPY_REQUIRE_NODE") == "1":
            pytest.fail("node and npm are required (RIVETPY_REQUIRE_NODE=1)")
        pytest.skip("node/npm not installed: reference-codec checks need them")
    if not (folder / "node_modules" / "@rivetkit" / "engine-runner-protocol").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=300,
        )
    return folder


@pytest.fixture(scope="session")
def vector_generator_dir() -> Path:
    return _node_package_dir(VECTORS)


@pytest.fixture(scope="session")
def ts_bench_dir() -> Path:
    return _node_package_dir(REPO / "bench" / "node")
