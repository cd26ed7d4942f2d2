"""Opening stores from config; durability of the embedded store."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import trio

from rivetpy.engine.config import EngineConfig
from rivetpy.engine.store import (
    ReadTransaction,
    StoreBackendError,
    StoreConfig,
    Transaction,
    open_store,
)

TIMEOUT = 20


async def test_sqlite_is_the_default_and_survives_a_reopen(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        config = StoreConfig(data_dir=tmp_path / "data")
        assert EngineConfig().store.backend == "sqlite"
        store = await open_store(config)
        assert store.backend == "sqlite"

        async def write(tr: Transaction) -> None:
            tr.set(b"k", b"v")

        await store.run(write)
        await store.aclose()
        path = tmp_path / "data" / "engine.sqlite3"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"

        reopened = await open_store(config)

        async def read(tr: ReadTransaction) -> bytes | None:
            return await tr.get(b"k")

        try:
            assert await reopened.read(read) == b"v"
        finally:
            await reopened.aclose()


async def test_foundationdb_backend_without_the_client_library_fails_clearly(
    tmp_path: Path,
) -> None:
    if os.environ.get("FDB_CLUSTER_FILE"):
        pytest.skip("the FoundationDB client library is installed here")
    with trio.fail_after(TIMEOUT), pytest.raises(StoreBackendError, match="FoundationDB client"):
        await open_store(StoreConfig(backend="foundationdb", cluster_file=str(tmp_path / "x")))


async def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown store backend"):
        await open_store(StoreConfig(backend="redis"))  # type: ignore[arg-type]


async def test_sqlite_rejects_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with trio.fail_after(TIMEOUT), pytest.raises(StoreBackendError, match="schema version 99"):
        await open_store(StoreConfig(sqlite_path=path))
