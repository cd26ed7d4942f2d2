"""The fuzz harness: it accepts every valid input, survives mutated ones, and can fail.

Also checks that the checked-in seed corpus is exactly what ``fuzz/make_corpus.py`` writes.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

import codec
from codec.bare import Compiled
from fuzz import harness
from fuzz.harness import TARGETS, check_one, target_name
from fuzz.make_corpus import CORPUS, build_seeds, golden_vectors

GOLDEN = golden_vectors()
SEEDS = build_seeds()
MUTATIONS_PER_TARGET = 500


def _target_id(target: tuple[str, int]) -> str:
    return target_name(*target)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three random edits: flip bits, set a byte, insert, delete, truncate, append."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        i = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[i % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[i % len(out)] = rng.choice((0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3 and out:
            del out[i % len(out) : i % len(out) + rng.randint(1, 4)]
        elif op == 4:
            del out[i:]
        else:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(out)


@pytest.mark.parametrize(
    ("type_name", "data"), GOLDEN, ids=[f"{t}:{i}" for i, (t, _) in enumerate(GOLDEN)]
)
def test_accepts_every_golden_vector(type_name: str, data: bytes) -> None:
    check_one(type_name, 7, data)
    codec.decode_raw(type_name, data, 7)  # really accepted, not merely rejected cleanly


@pytest.mark.parametrize("target", TARGETS, ids=_target_id)
def test_accepts_every_seed(target: tuple[str, int]) -> None:
    type_name, version = target
    assert SEEDS[target]
    for data in SEEDS[target]:
        check_one(type_name, version, data)
        codec.decode_raw(type_name, data, version)


@pytest.mark.parametrize("target", TARGETS, ids=_target_id)
def test_mutated_inputs_raise_nothing_but_decode_error(target: tuple[str, int]) -> None:
    type_name, version = target
    rng = random.Random(f"{type_name}-{version}")
    seeds = sorted(SEEDS[target])
    rejected = 0
    for _ in range(MUTATIONS_PER_TARGET):
        data = _mutate(rng, rng.choice(seeds))
        check_one(type_name, version, data)
        try:
            codec.decode_raw(type_name, data, version)
        except codec.DecodeError:
            rejected += 1
    assert rejected > MUTATIONS_PER_TARGET // 4


def test_checked_in_corpus_is_what_make_corpus_writes() -> None:
    on_disk = {
        (d.name, f.name): f.read_bytes()
        for d in CORPUS.iterdir()
        if d.is_dir()
        for f in d.iterdir()
    }
    expected = {
        (target_name(*target), hashlib.sha1(data).hexdigest()): data
        for target, inputs in SEEDS.items()
        for data in inputs
    }
    assert on_disk == expected, "run: python fuzz/make_corpus.py"
    assert sum(len(data) for data in on_disk.values()) < 2 * 1024 * 1024


# -- the harness can fail ---------------------------------------------------------------------

VALID = GOLDEN[0]


def test_detects_wrong_re_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(type_name: str, value: Any, version: int, **_: Any) -> bytes:
        return b"\x00"

    monkeypatch.setattr(codec, "encode_raw", wrong)
    with pytest.raises(AssertionError, match="encode_raw gives 00"):
        check_one(VALID[0], 7, VALID[1])


def test_detects_bug_marker_in_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(type_name: str, data: bytes, version: int, **_: Any) -> Any:
        raise codec.DecodeError("internal decoder error: IndexError()", type_name, 0)

    monkeypatch.setattr(codec, "decode_raw", buggy)
    with pytest.raises(AssertionError, match="internal bug"):
        check_one(VALID[0], 7, b"\xff")


def test_detects_decode_raw_rejecting_a_valid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def reject(type_name: str, data: bytes, version: int, **_: Any) -> Any:
        raise codec.DecodeError("no", type_name, 0)

    monkeypatch.setattr(codec, "decode_raw", reject)
    with pytest.raises(AssertionError, match="decode_raw rejects"):
        check_one(VALID[0], 7, VALID[1])


def test_lets_a_foreign_exception_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(type_name: str, data: bytes, version: int, **_: Any) -> Any:
        raise ValueError("not a DecodeError")

    monkeypatch.setattr(codec, "decode_raw", broken)
    with pytest.raises(ValueError, match="not a DecodeError"):
        check_one(VALID[0], 7, b"\xff")


def test_detects_compiled_and_interpreted_disagreeing(monkeypatch: pytest.MonkeyPatch) -> None:
    def reject_all(b: bytes, p: int, e: int) -> tuple[Any, int]:
        raise IndexError(p)

    def fake_compile(t: codec.bare.BareType) -> Compiled:
        def reject_whole(b: bytes) -> Any:
            raise IndexError(0)

        return Compiled(reject_all, lambda x, a: None, reject_whole, lambda x: b"", "")

    monkeypatch.setattr(harness, "compile_type", fake_compile)
    with pytest.raises(AssertionError, match="compiled path rejects but interpreted path accepts"):
        check_one(VALID[0], 7, VALID[1])
