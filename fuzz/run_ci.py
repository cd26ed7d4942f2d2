"""Bounded fuzz pass for CI: every target in turn, a few seconds each (about a minute in all).

Run from the repository root (the repo root is put on ``sys.path``; no install needed)::

    python fuzz/run_ci.py                           # 12 targets x 4 s, about 60 s wall time
    python fuzz/run_ci.py --seconds-per-target 600  # longer, every target
    python fuzz/run_ci.py --target ToClient-v8 --seconds-per-target 3600

Each target runs in its own subprocess on a fresh temporary copy of its seed corpus
(``fuzz/corpus/<Type>-v<N>``), so the checked-in corpus is never modified. One line is printed per
target: name, runs executed, result. Exit status is 1 if any target fails (a crash, a timeout
on one input, out of memory, or a non-zero exit); for each failure the crashing input's hex, the
saved artifact path (under ``--artifact-dir``, default ``fuzz/artifacts/<target>/``) and the end
of the fuzzer's output are printed.

To fuzz one target for hours, call the entry point directly: new inputs go to the first corpus
directory, the checked-in seeds are read from the second and left alone::

    mkdir -p /tmp/work-ToClient-v7 /tmp/crashes
    python fuzz/fuzz_codec.py --type ToClient --version 7 -max_total_time=14400 -timeout=10 \\
        -artifact_prefix=/tmp/crashes/ /tmp/work-ToClient-v7 fuzz/corpus/ToClient-v7

Add ``-fork=N`` (libFuzzer) to use N cores and keep going after a crash. Replay a saved input
with ``python fuzz/fuzz_codec.py --type ToClient --version 7 /tmp/crashes/crash-<sha1>``, or in
Python with ``fuzz.harness.check_one("ToClient", 7, data)``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fuzz.harness import TARGETS, target_name  # noqa: E402

FUZZ_DIR = REPO_ROOT / "fuzz"
CORPUS = FUZZ_DIR / "corpus"
ENTRY_POINT = FUZZ_DIR / "fuzz_codec.py"
#: libFuzzer's per-input time limit in seconds; a slower input is reported as a failure.
INPUT_TIMEOUT = 10
_RUNS = re.compile(r"stat::number_of_executed_units:\s*(\d+)|Done (\d+) runs")
_TAIL_LINES = 40


@dataclass(frozen=True)
class Result:
    """The outcome of one target's run."""

    name: str
    returncode: int
    runs: int | None
    seconds: float
    artifacts: list[Path]
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.artifacts


def _runs(output: str) -> int | None:
    found = [int(a or b) for a, b in _RUNS.findall(output)]
    return max(found) if found else None


def run_target(type_name: str, version: int, seconds: int, artifact_root: Path) -> Result:
    """Fuzz one target for ``seconds`` on a scratch copy of its seeds."""
    name = target_name(type_name, version)
    artifacts = artifact_root / name
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        corpus = Path(scratch) / "corpus"
        seeds = CORPUS / name
        if seeds.is_dir():
            shutil.copytree(seeds, corpus)
        else:
            corpus.mkdir()
        command = [
            sys.executable,
            str(ENTRY_POINT),
            "--type",
            type_name,
            "--version",
            str(version),
            f"-max_total_time={seconds}",
            f"-timeout={INPUT_TIMEOUT}",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ]
        try:
            proc = subprocess.run(
                command,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=seconds * 3 + 120,
                check=False,
            )
            returncode, output = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            returncode, output = -1, f"{text}\n(fuzzer did not stop; killed by run_ci.py)"
    elapsed = time.monotonic() - started
    new = sorted(set(artifacts.iterdir()) - before)
    if not any(artifacts.iterdir()):
        artifacts.rmdir()
    return Result(name, returncode, _runs(output), elapsed, new, output)


def _report_failure(result: Result) -> None:
    print(f"--- {result.name}: fuzzer exit status {result.returncode}; output ends:")
    print("\n".join(result.output.splitlines()[-_TAIL_LINES:]))
    for artifact in result.artifacts:
        data = artifact.read_bytes()
        print(f"--- {result.name}: artifact {artifact} ({len(data)} bytes)")
        print(f"input hex: {data.hex() or '<empty>'}")
    print("---")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds-per-target", type=int, default=3, metavar="N", help="default: 3")
    parser.add_argument(
        "--target",
        action="append",
        choices=[target_name(t, v) for t, v in TARGETS],
        help="run only this target (repeatable); default: all twelve",
    )
    parser.add_argument(
        "--artifact-dir",
        type=Path,
        default=FUZZ_DIR / "artifacts",
        help="where crashing inputs are saved, one folder per target (default: fuzz/artifacts)",
    )
    args = parser.parse_args(argv)
    seconds: int = args.seconds_per_target
    if seconds < 1:
        parser.error("--seconds-per-target must be at least 1")
    wanted: list[str] | None = args.target
    artifact_root: Path = args.artifact_dir.resolve()

    started = time.monotonic()
    failures: list[Result] = []
    total_runs = 0
    for type_name, version in TARGETS:
        if wanted is not None and target_name(type_name, version) not in wanted:
            continue
        result = run_target(type_name, version, seconds, artifact_root)
        total_runs += result.runs or 0
        runs = "?" if result.runs is None else str(result.runs)
        verdict = "ok" if result.ok else "FAILED"
        print(f"{result.name:<24} runs={runs:>8}  {result.seconds:5.1f}s  {verdict}", flush=True)
        if not result.ok:
            failures.append(result)
            _report_failure(result)
    if artifact_root.is_dir() and not any(artifact_root.iterdir()):
        artifact_root.rmdir()
    elapsed = time.monotonic() - started
    summary = "ok" if not failures else f"{len(failures)} target(s) FAILED"
    print(f"total: {total_runs} runs in {elapsed:.1f}s; {summary}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
