"""Wrapping comparison of ``u16`` message indexes (hibernation.md §1)."""

from __future__ import annotations

U16 = 1 << 16
_HALF = 32767


def gt(a: int, b: int) -> bool:
    """``a`` is after ``b`` on the 16-bit circle."""
    return a != b and (a - b) % U16 < _HALF


def lt(a: int, b: int) -> bool:
    return gt(b, a)


def le(a: int, b: int) -> bool:
    return a == b or lt(a, b)


def next_index(a: int) -> int:
    return (a + 1) % U16
