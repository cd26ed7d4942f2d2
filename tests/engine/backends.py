"""Store backends under test: sqlite always; FoundationDB where ``FDB_CLUSTER_FILE`` is set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from rivetpy.engine.store import Store
from rivetpy.engine.store.foundationdb import FdbStore
from rivetpy.engine.store.sqlite import SqliteStore
from tests.engine.fake_fdb import FakeDatabase, FakeFdbModule

FDB_SKIP_REASON = (
    "FoundationDB contract run not executed: FDB_CLUSTER_FILE is not set "
    "(FoundationDB cannot be installed on this machine; set it to run this backend)"
)
#: ``fdb-adapter-fake`` runs ``FdbStore`` (the real adapter code) over in-memory fake bindings:
#: it tests the adapter's logic (retry loop, error mapping, conflicts), not FoundationDB.
BACKENDS = ["sqlite", "foundationdb", "fdb-adapter-fake"]


def require_backend(backend: str) -> None:
    """Skip only the FoundationDB parametrization, with a clearly named reason."""
    if backend == "foundationdb" and not os.environ.get("FDB_CLUSTER_FILE"):
        pytest.skip(FDB_SKIP_REASON)


async def open_backend(backend: str, directory: Path, *, synchronous: str = "FULL") -> Store:
    if backend == "sqlite":
        return await SqliteStore.open(directory / "store.sqlite3", synchronous=synchronous)
    if backend == "fdb-adapter-fake":
        return FdbStore(FakeFdbModule(), FakeDatabase(), max_threads=4, retry_limit=1000)
    return await FdbStore.open(os.environ["FDB_CLUSTER_FILE"])


def fresh_prefix() -> bytes:
    """A fresh key prefix isolating one test's keys (a shared FoundationDB cluster)."""
    return b"rivetpy-test/" + uuid.uuid4().hex.encode() + b"/"
