"""The README's commands stay true: .ci/run runs the README's test command verbatim."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _ci_test_command() -> str:
    script = (REPO / ".ci" / "run").read_text()
    match = re.search(r"# BEGIN README TEST COMMAND\n(.+)\n# END README TEST COMMAND", script)
    assert match is not None
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    assert _ci_test_command() in [b.strip() for b in blocks]


def test_the_test_command_installs_and_runs_ruff_mypy_and_pytest() -> None:
    command = _ci_test_command()
    for part in (
        "pip install",
        "[test]",
        "ruff check",
        "mypy --strict codec rivetpy tests",
        "pytest",
    ):
        assert part in command
