"""Atheris entry point: one libFuzzer target per (top-level type, protocol version).

Usage (from the repository root)::

    python fuzz/fuzz_codec.py --type ToClient --version 7 [libFuzzer args] [corpus dirs]
    python fuzz/fuzz_codec.py --type ToClient --version 7 -max_total_time=60 \\
        /tmp/corpus fuzz/corpus/ToClient-v7

Every argument other than ``--type``/``--version`` goes to libFuzzer unchanged; the first corpus
directory is written to, so pass a scratch copy first when the checked-in seeds must stay as they
are (``run_ci.py`` does this). Each input runs :func:`fuzz.harness.check_one`; a failure is an
uncaught exception, which atheris reports as a crash and saves as ``crash-<sha1>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import atheris

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

with atheris.instrument_imports(include=["codec", "fuzz"]):
    import codec
    from codec.bare import compile_type
    from fuzz.harness import check_one


def instrument_compiled(type_name: str, version: int) -> int:
    """Add coverage instrumentation to the generated decode/encode functions of one type.

    They are built with ``exec`` at run time, so the import hook never sees them. Returns the
    number of functions instrumented.
    """
    compiled = compile_type(codec.bare_type(type_name, version))
    namespace = compiled.decode_at.__globals__
    count = 0
    for obj in list(namespace.values()):
        code = getattr(obj, "__code__", None)
        if code is not None and code.co_filename.startswith("<bare codec"):
            atheris.instrument_func(obj)
            count += 1
    return count


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, allow_abbrev=False, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--type", required=True, choices=codec.TOP_LEVEL)
    parser.add_argument("--version", required=True, type=int, choices=(7, 8))
    args, libfuzzer_args = parser.parse_known_args(argv[1:])
    type_name: str = args.type
    version: int = args.version
    instrument_compiled(type_name, version)

    def test_one_input(data: bytes) -> None:
        check_one(type_name, version, data)

    atheris.Setup([argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
