"""Golden vectors from the reference TypeScript codec (v7): decode, JSON, re-encode."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import codec
from tests.conftest import VECTORS, load_vectors

VECTORS_V7 = load_vectors(7)


def _id(v: dict[str, Any]) -> str:
    return f"{v['type']}:{v['name']}"


@pytest.mark.parametrize("vector", VECTORS_V7, ids=_id)
def test_decode_matches_reference_json_and_reencodes(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    value = codec.decode_raw(vector["type"], data, 7)
    assert codec.to_json(vector["type"], value, 7) == vector["json"]
    assert codec.encode_raw(vector["type"], value, 7) == data


@pytest.mark.parametrize("vector", VECTORS_V7, ids=_id)
def test_json_builds_identical_bytes(vector: dict[str, Any]) -> None:
    value = codec.from_json(vector["type"], vector["json"], 7)
    assert codec.encode_raw(vector["type"], value, 7).hex() == vector["hex"]


def test_vectors_cover_every_top_level_type_and_union_member() -> None:
    types = {v["type"] for v in VECTORS_V7}
    assert types == set(codec.TOP_LEVEL)
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"tag", "val"}:
                seen.add(node["tag"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for v in VECTORS_V7:
        walk(v["json"])
    members = {
        str(m.type_name)
        for t in codec.v7.TYPES.values()
        if isinstance(t, codec.bare.Union)
        for m in t.members
    }
    assert members <= seen, sorted(members - seen)


@pytest.mark.node
def test_checked_in_vectors_are_what_the_reference_codec_produces(
    vector_generator_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "v7.json"
    subprocess.run(
        ["node", str(vector_generator_dir / "generate_v7.mjs"), str(out)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    fresh = json.loads(out.read_text())
    committed = json.loads((VECTORS / "v7.json").read_text())
    assert fresh == committed
