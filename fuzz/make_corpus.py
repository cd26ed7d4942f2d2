"""Write the checked-in seed corpus, ``fuzz/corpus/<Type>-v<N>/<sha1>``, deterministically.

* v7 seeds: every golden vector of ``tests/vectors/v7.json``, by type.
* v8 seeds: each v7 seed decoded, upgraded (``codec.upgrade``) and encoded with the v8 layout,
  plus a few messages with ``CommandStartActor.preloadedKv`` present built from :mod:`codec.v8`.

Files are named by the SHA-1 of their content (libFuzzer's convention), so a rerun is a no-op
and duplicates collapse. Every seed is checked with :func:`fuzz.harness.check_one` first.
Existing files in each target directory are replaced. Run from anywhere::

    python fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import codec  # noqa: E402
from codec import v8  # noqa: E402
from fuzz.harness import TARGETS, check_one, target_name  # noqa: E402

VECTORS = REPO_ROOT / "tests" / "vectors" / "v7.json"
CORPUS = REPO_ROOT / "fuzz" / "corpus"


def golden_vectors() -> list[tuple[str, bytes]]:
    """(type name, bytes) of every golden v7 vector, in file order."""
    doc: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return [(v["type"], bytes.fromhex(v["hex"])) for v in doc["vectors"]]


def _start_actors() -> list[v8.CommandStartActor]:
    meta = v8.KvMetadata(version=b"\x01\x02", update_ts=1_700_000_000_000)
    config = v8.ActorConfig(name="counter", key="k", create_ts=1_700_000_000_000, input=b"\x00")
    request = v8.HibernatingRequest(gateway_id=b"\x01\x02\x03\x04", request_id=b"\x05\x06\x07\x08")
    return [
        v8.CommandStartActor(
            config=config,
            hibernating_requests=[],
            preloaded_kv=v8.PreloadedKv(entries=[], requested_get_keys=[], requested_prefixes=[]),
        ),
        v8.CommandStartActor(
            config=config,
            hibernating_requests=[request],
            preloaded_kv=v8.PreloadedKv(
                entries=[
                    v8.PreloadedKvEntry(key=b"\x01state", value=b"{}", metadata=meta),
                    v8.PreloadedKvEntry(key=b"\x02", value=b"", metadata=meta),
                ],
                requested_get_keys=[b"\x01state", b"\x03missing"],
                requested_prefixes=[b"\x04queue/"],
            ),
        ),
    ]


def preloaded_kv_seeds() -> list[tuple[str, Any]]:
    """(type name, v8 value) of messages carrying ``preloadedKv``."""
    checkpoint = v8.ActorCheckpoint(actor_id="actor-1", generation=1, index=0)
    seeds: list[tuple[str, Any]] = []
    for start in _start_actors():
        wrapper = v8.CommandWrapper(checkpoint=checkpoint, inner=start)
        stop = v8.CommandWrapper(checkpoint=checkpoint, inner=v8.CommandStopActor())
        seeds.append(("ActorCommandKeyData", start))
        seeds.append(("ToClient", v8.ToClientCommands(value=[wrapper, stop])))
        seeds.append(("ToRunner", v8.ToClientCommands(value=[wrapper])))
    return seeds


def build_seeds() -> dict[tuple[str, int], set[bytes]]:
    """The seed inputs of every target."""
    seeds: dict[tuple[str, int], set[bytes]] = {target: set() for target in TARGETS}
    for type_name, data in golden_vectors():
        seeds[(type_name, 7)].add(data)
        value = codec.upgrade(type_name, codec.decode_raw(type_name, data, 7), 7)
        seeds[(type_name, 8)].add(codec.encode_raw(type_name, value, 8))
    for type_name, value in preloaded_kv_seeds():
        seeds[(type_name, 8)].add(codec.encode_raw(type_name, value, 8))
    return seeds


def write_corpus(root: Path = CORPUS) -> int:
    """Replace the corpus under ``root``; returns the number of files written."""
    written = 0
    for (type_name, version), inputs in sorted(build_seeds().items()):
        directory = root / target_name(type_name, version)
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        for data in sorted(inputs):
            check_one(type_name, version, data)
            (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
            written += 1
    return written


def main() -> None:
    count = write_corpus()
    size = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"wrote {count} seed files ({size} bytes) under {CORPUS}")


if __name__ == "__main__":
    main()
