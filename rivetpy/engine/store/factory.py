"""Choosing and opening a store backend from configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rivetpy.engine.store.api import Store

Backend = Literal["sqlite", "foundationdb"]
DEFAULT_SQLITE_FILE = "engine.sqlite3"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Which database the engine keeps its state in.

    ``sqlite`` (default): a file ``sqlite_path`` (or ``data_dir/engine.sqlite3``).
    ``foundationdb``: the cluster named by ``cluster_file`` (or ``$FDB_CLUSTER_FILE``, or the
    client's default cluster file); needs the FoundationDB client library installed.
    """

    backend: Backend = "sqlite"
    data_dir: Path = Path(".rivetpy")
    sqlite_path: Path | None = None
    sqlite_synchronous: str = "FULL"
    sqlite_readers: int = 4
    cluster_file: str | None = None
    fdb_api_version: int = 710
    max_threads: int = 16
    retry_limit: int = 100


async def open_store(config: StoreConfig) -> Store:
    """Open the configured store; the caller closes it with ``await store.aclose()``.

    Raises :class:`rivetpy.engine.store.StoreBackendError` when it cannot be opened.
    """
    if config.backend == "sqlite":
        from rivetpy.engine.store.sqlite import SqliteStore  # noqa: PLC0415

        path = config.sqlite_path or config.data_dir / DEFAULT_SQLITE_FILE
        return await SqliteStore.open(
            path,
            readers=config.sqlite_readers,
            synchronous=config.sqlite_synchronous,
            retry_limit=config.retry_limit,
        )
    if config.backend == "foundationdb":
        from rivetpy.engine.store.foundationdb import FdbStore  # noqa: PLC0415

        return await FdbStore.open(
            config.cluster_file or os.environ.get("FDB_CLUSTER_FILE"),
            api_version=config.fdb_api_version,
            max_threads=config.max_threads,
            retry_limit=config.retry_limit,
        )
    raise ValueError(f"unknown store backend {config.backend!r}")
