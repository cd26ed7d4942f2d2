"""Generic Hypothesis strategies for strict BARE types.

``values_for(t)`` walks a BARE type tree (the ``BARE_*`` definitions of ``codec.generated``) and
returns a strategy of valid values of that type: exactly the Python values the codec decodes to,
so ``decode(encode(v)) == v`` holds for every generated ``v``. Strategies are cached per type
object; sizes are kept small (lists and maps at most ``MAX_ITEMS`` items, data at most
``MAX_DATA`` bytes) so that property tests over whole messages stay fast.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from codec.bare import (
    BareType,
    Bool,
    Data,
    Enum,
    FixedData,
    FixedInt,
    Int,
    List,
    Map,
    Optional,
    Str,
    Struct,
    Uint,
    Union,
    Void,
    Wrapper,
)

MAX_ITEMS = 5
MAX_DATA = 64
MAX_TEXT = 24

MAX_U64 = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

#: id(type) -> (type, strategy); the type is kept so its id cannot be reused.
_cache: dict[int, tuple[BareType, st.SearchStrategy[Any]]] = {}

#: Valid Unicode text: no lone surrogates, so every generated string is encodable as UTF-8.
_TEXT: st.SearchStrategy[str] = st.text(st.characters(codec="utf-8"), max_size=MAX_TEXT)


def values_for(t: BareType) -> st.SearchStrategy[Any]:
    """A strategy of valid values of the BARE type ``t`` (cached per type object)."""
    hit = _cache.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    strategy = _build(t)
    _cache[id(t)] = (t, strategy)
    return strategy


def _build(t: BareType) -> st.SearchStrategy[Any]:
    if isinstance(t, Struct):
        return st.builds(t.cls, *[values_for(f.type) for f in t.fields])
    if isinstance(t, Union):
        return st.one_of([values_for(m) for m in t.members])
    if isinstance(t, Wrapper):
        return st.builds(t.cls, values_for(t.inner))
    if isinstance(t, Enum):
        return st.sampled_from(t.members)
    if isinstance(t, Optional):
        return st.none() | values_for(t.inner)
    if isinstance(t, List):
        return st.lists(values_for(t.inner), max_size=MAX_ITEMS)
    if isinstance(t, Map):
        return st.dictionaries(values_for(t.key), values_for(t.value), max_size=MAX_ITEMS)
    if isinstance(t, FixedInt):
        return st.integers(min_value=t.lo, max_value=t.hi)
    if isinstance(t, Uint):
        return st.integers(min_value=0, max_value=MAX_U64)
    if isinstance(t, Int):
        return st.integers(min_value=I64_MIN, max_value=I64_MAX)
    if isinstance(t, Str):
        return _TEXT
    if isinstance(t, FixedData):
        return st.binary(min_size=t.length, max_size=t.length)
    if isinstance(t, Data):
        return st.binary(max_size=MAX_DATA)
    if isinstance(t, Bool):
        return st.booleans()
    if isinstance(t, Void):
        return st.none()
    raise TypeError(f"no strategy for BARE type {t!r}")
