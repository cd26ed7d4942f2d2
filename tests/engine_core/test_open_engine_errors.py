"""Errors raised inside ``open_engine`` reach the caller (they were once swallowed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from rivetpy.engine.server import EngineOptions, open_engine


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _flatten(sub)]
    return [exc]


async def test_an_error_in_the_body_propagates(tmp_path: Path) -> None:
    with trio.fail_after(20):
        with pytest.raises(BaseException) as caught:
            async with open_engine(EngineOptions(data_dir=tmp_path, port=0)):
                raise RuntimeError("boom")
    leaves = _flatten(caught.value)
    assert [type(e) for e in leaves] == [RuntimeError]
    assert str(leaves[0]) == "boom"
