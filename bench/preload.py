"""Startup KV preload benchmark: ``batch_preload`` against the KV requests it replaces.

    python bench/preload.py [--iterations 30] [--sizes 0.25,1,4] [--dir PATH]

For actors holding 0.25 / 1 / 4 MiB across the preloaded keys and prefixes (75 % SQLite pages of
4 KiB under ``[8,1]``, 12.5 % workflow entries under ``[6,1]``, 6.25 % connections under ``[2]``,
the rest in ``[1]``, plus ``[3]`` and ``[5,1,1]``), on the embedded store, same file, same run:

  preload      ``batch_preload`` with the default engine config (one snapshot transaction)
  kv requests  the requests a runner sends without preload (the rivetkit fallback, §7.1):
               get [1], get [3], get [5,1,1], list prefix [8,1], [6,1], [2]; one ActorKv
               operation (one store transaction) each, run one after another
  vfs pages    like kv requests, but the SQLite VFS reads its pages one KV get at a time

Figures are medians over the iterations. "tx" counts store transactions, "reads" store read
calls (each one worker-thread round trip on the embedded store). With the default 1 MiB cap
the preload carries at most 1 MiB, while the requests fetch everything; both byte counts are
printed. Targets: 1 transaction instead of N; 1 MiB preloaded in under 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trio  # noqa: E402

from codec import v8  # noqa: E402
from rivetpy.engine.config import PegboardConfig  # noqa: E402
from rivetpy.engine.ids import new_id  # noqa: E402
from rivetpy.engine.kv import ActorKv, entry_size  # noqa: E402
from rivetpy.engine.preload import (  # noqa: E402
    CONN_PREFIX,
    INSPECTOR_TOKEN,
    PERSIST_DATA,
    QUEUE_METADATA,
    SQLITE_PREFIX,
    STARTUP_GET_KEYS,
    WORKFLOW_PREFIX,
    batch_preload,
    startup_preload_params,
)
from rivetpy.engine.store import ReadTransaction, Store, Transaction  # noqa: E402
from rivetpy.engine.store.sqlite import SqliteStore  # noqa: E402

T = TypeVar("T")
MIB = 1024 * 1024
PAGE = 4096


class CountingStore:
    """Counts transactions and read calls of the wrapped store."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.tx = 0
        self.reads = 0

    def _wrap(self, tr: Any) -> Any:
        store = self

        class Counted:
            def __getattr__(self, name: str) -> Any:
                attr = getattr(tr, name)
                if name.startswith("get"):

                    async def counted(*args: Any, **kw: Any) -> Any:
                        store.reads += 1
                        return await attr(*args, **kw)

                    return counted
                return attr

        return Counted()

    async def run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        self.tx += 1
        return await self.inner.run(lambda tr: fn(self._wrap(tr)))

    async def read(self, fn: Callable[[ReadTransaction], Awaitable[T]]) -> T:
        self.tx += 1
        return await self.inner.read(lambda tr: fn(self._wrap(tr)))

    async def aclose(self) -> None:
        await self.inner.aclose()


def actor_data(total: int) -> dict[bytes, bytes]:
    data: dict[bytes, bytes] = {
        INSPECTOR_TOKEN: b"t" * 32,
        QUEUE_METADATA: b"q" * 64,
        SQLITE_PREFIX + b"\x00\x00": b"m" * 64,  # file metadata key [8,1,0,tag]
    }
    for i in range(int(total * 0.75) // PAGE):
        data[SQLITE_PREFIX + b"\x01\x00" + i.to_bytes(4, "big")] = bytes([i % 251]) * PAGE
    for i in range(int(total * 0.125) // 1024):
        data[WORKFLOW_PREFIX + i.to_bytes(4, "big")] = b"w" * 1024
    for i in range(int(total * 0.0625) // 512):
        data[CONN_PREFIX + f"conn-{i:08d}".encode()] = b"c" * 512
    rest = total - sum(len(v) for v in data.values())
    data[PERSIST_DATA] = b"s" * max(1, min(rest, 128 * 1024))
    return data


async def load(kv: ActorKv, actor: str, data: dict[bytes, bytes]) -> None:
    items = list(data.items())
    i = 0
    while i < len(items):
        batch = items[i : i + 100]
        await kv.put(actor, [k for k, _ in batch], [v for _, v in batch])
        i += len(batch)


async def via_requests(kv: ActorKv, actor: str, page_keys: Sequence[bytes] | None) -> int:
    """The runner's requests without preload; returns the bytes fetched."""
    fetched = 0
    for key in STARTUP_GET_KEYS:
        fetched += sum(len(v) for v in (await kv.get(actor, [key])).values)
    prefixes = [WORKFLOW_PREFIX, CONN_PREFIX]
    if page_keys is None:
        prefixes.insert(0, SQLITE_PREFIX)
    else:
        for key in page_keys:  # the VFS: one get per page
            fetched += sum(len(v) for v in (await kv.get(actor, [key])).values)
    for prefix in prefixes:
        listed = await kv.list(actor, v8.KvListPrefixQuery(prefix))
        fetched += sum(len(v) for v in listed.values)
    return fetched


async def timed(fn: Callable[[], Awaitable[T]], iterations: int) -> tuple[float, T]:
    result = await fn()  # warm-up
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        result = await fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, result


async def bench(directory: Path, sizes: list[float], iterations: int) -> int:
    raw = await SqliteStore.open(directory / "bench.sqlite3", synchronous="NORMAL")
    store = CountingStore(raw)
    kv = ActorKv(store)
    params = startup_preload_params(PegboardConfig(), {})
    assert params is not None
    get_keys, requests = params
    cap = PegboardConfig().preload_max_total_bytes
    header = (
        f"{'size':>8} | {'path':<11} | {'ms':>8} | {'tx':>4} | {'reads':>5} | "
        f"{'KiB':>7} | {'vs preload':>10}"
    )
    print(f"embedded store (sqlite {directory}); median of {iterations}; cap {cap // 1024} KiB")
    print(header)
    print("-" * len(header))
    target_ms: float | None = None
    for mib in sizes:
        actor = new_id()
        data = actor_data(int(mib * MIB))
        await load(kv, actor, data)
        pages = sorted(k for k in data if k.startswith(SQLITE_PREFIX + b"\x01"))
        rows: list[tuple[str, float, int, int, int]] = []

        async def preload(actor: str = actor) -> v8.PreloadedKv:
            return await batch_preload(store, actor, get_keys, requests, cap)

        async def requests_only(actor: str = actor) -> int:
            return await via_requests(kv, actor, None)

        async def vfs_pages(actor: str = actor, pages: list[bytes] = pages) -> int:
            return await via_requests(kv, actor, pages)

        for name, fn in (
            ("preload", preload),
            ("kv requests", requests_only),
            ("vfs pages", vfs_pages),
        ):
            store.tx = store.reads = 0
            ms, result = await timed(fn, iterations)
            tx, reads = store.tx // (iterations + 1), store.reads // (iterations + 1)
            if isinstance(result, v8.PreloadedKv):
                size = sum(entry_size(e) for e in result.entries)
            else:
                size = int(result)
            rows.append((name, ms, tx, reads, size))
        base = rows[0][1]
        for name, ms, tx, reads, size in rows:
            ratio = "1.0x" if name == "preload" else f"{ms / base:.1f}x"
            print(
                f"{mib:>6.2f}Mi | {name:<11} | {ms:>8.2f} | {tx:>4} | {reads:>5} | "
                f"{size / 1024:>7.0f} | {ratio:>10}"
            )
        if mib == 1:
            target_ms = base
    await store.aclose()
    ok = target_ms is not None and target_ms < 20
    print(f"target: 1 transaction instead of N: {'met' if rows[0][2] == 1 else 'MISSED'}")
    if target_ms is not None:
        print(
            f"target: 1 MiB preloaded in under 20 ms: {'met' if ok else 'MISSED'}"
            f" ({target_ms:.2f} ms)"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--sizes", default="0.25,1,4", help="actor sizes in MiB")
    parser.add_argument("--dir", type=Path, help="where to put the store (default: a temp dir)")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return trio.run(bench, args.dir, sizes, args.iterations)
    with tempfile.TemporaryDirectory(prefix="rivetpy-bench-") as tmp:
        return trio.run(bench, Path(tmp), sizes, args.iterations)


if __name__ == "__main__":
    raise SystemExit(main())
