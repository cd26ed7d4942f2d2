"""Fixtures of the interop tests: one real engine for the whole folder (fresh runner names and
actors per test keep tests independent).

Needs npm to install the engine binary: skipped without it, failed instead when
RIVETPY_REQUIRE_NODE=1 (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivetpy.testing.engine import EngineUnavailable, RealEngine, install_engine

#: Every wake of a sleeping actor is a pegboard "reschedule": the second one within 10 min is
#: delayed base_retry_timeout (2 s) x 2^(n-1). Tests wake the same actor several times.
ENGINE_ENV = {"RIVET__PEGBOARD__BASE_RETRY_TIMEOUT": "100"}

#: The engine's workflow worker sheds load by the CPU usage of the whole container (cgroup): above
#: 70 % it skips a growing, hash-chosen share of pending workflows (down to 5 % pulled at 90 %),
#: so on a busy CI machine a runner's or actor's workflow can wait 16 s to minutes. Announcing
#: 1000 cores keeps the measured ratio near zero, i.e. no shedding.
ENGINE_CONFIG = {"runtime": {"worker_cpu_max": 1_000_000}}


@pytest.fixture(scope="session")
def engine_binary() -> Path:
    try:
        return install_engine()
    except EngineUnavailable as exc:
        if os.environ.get("RIVETPY_REQUIRE_NODE") == "1":
            pytest.fail(f"cannot install the real engine: {exc} (RIVETPY_REQUIRE_NODE=1)")
        pytest.skip(f"cannot install the real engine: {exc}")


@pytest.fixture(scope="session")
def engine(engine_binary: Path) -> Iterator[RealEngine]:
    with RealEngine(engine_binary, env=ENGINE_ENV, extra_config=ENGINE_CONFIG) as running:
        yield running
