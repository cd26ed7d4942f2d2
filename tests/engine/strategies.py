"""Hypothesis strategies shared by the engine tests."""

from __future__ import annotations

from hypothesis import strategies as st

from rivetpy.engine.keys import TupleItem

ELEMENTS: st.SearchStrategy[TupleItem] = st.recursive(
    st.one_of(
        st.none(),
        st.integers(-(2**64) + 1, 2**64 - 1),
        st.binary(max_size=6),
        st.text(max_size=4),
    ),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)
TUPLES: st.SearchStrategy[tuple[TupleItem, ...]] = st.lists(ELEMENTS, max_size=4).map(tuple)
