"""Fixtures of the engine tests: one store per backend, keys isolated by a fresh prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rivetpy.engine.store import Store, Transaction
from tests.engine.backends import BACKENDS, fresh_prefix, open_backend, require_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every store backend; FoundationDB is skipped, with a named reason, unless configured."""
    name: str = request.param
    require_backend(name)
    return name


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """The store under test, on every backend."""
    s = await open_backend(backend, tmp_path)
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
async def prefix(store: Store) -> AsyncIterator[bytes]:
    """A fresh key prefix for the test's keys, cleared afterwards (shared FDB clusters)."""
    p = fresh_prefix()
    yield p

    async def clear(tr: Transaction) -> None:
        tr.clear_range(p, p + b"\xff")

    await store.run(clear)
