"""Conversion of values between protocol versions (the vbare upgrade/downgrade steps).

The rule is structural and, for v7 <-> v8, exactly the spec's: a value of a type that both
versions share (same Python class) is passed through untouched; a struct is rebuilt field by
field by schema name; a field that only the target version has must be optional and is set
absent (upgrade: ``CommandStartActor.preloadedKv = None``); a field that only the source has is
dropped (downgrade: ``preloadedKv`` is lost, silently, as upstream does).
"""

from __future__ import annotations

from typing import Any

from codec.bare import BareType, Enum, List, Map, Optional, Struct, Union, Wrapper
from codec.bare.core import join_path


class ConversionError(Exception):
    """The two layouts are not convertible (a schema problem, not a data problem)."""


def convert(value: Any, src: BareType, dst: BareType, path: str = "") -> Any:
    """Convert ``value`` of type ``src`` (one version's definition) to ``dst`` (another's)."""
    if src is dst:
        return value
    if isinstance(src, Struct) and isinstance(dst, Struct):
        by_name = {f.wire_name: f for f in src.fields}
        out: list[Any] = []
        for f in dst.fields:
            sf = by_name.get(f.wire_name)
            if sf is None:
                if not isinstance(f.type, Optional):
                    raise ConversionError(
                        f"{join_path(path, f.wire_name)}: new field is not optional"
                    )
                out.append(None)
            else:
                out.append(
                    convert(getattr(value, sf.attr), sf.type, f.type, join_path(path, f.wire_name))
                )
        return dst.cls(*out)
    if isinstance(src, Union) and isinstance(dst, Union):
        member = src.members[src.by_class[type(value)]]
        tag = dst.by_name.get(member.type_name)
        if tag is None:
            raise ConversionError(f"{path}: {member.type_name} does not exist in the target")
        target = dst.members[tag]
        return convert(value, member, target, join_path(path, member.type_name or ""))
    if isinstance(src, Wrapper) and isinstance(dst, Wrapper):
        return dst.cls(convert(value.value, src.inner, dst.inner, path))
    if isinstance(src, List) and isinstance(dst, List):
        return [convert(v, src.inner, dst.inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(src, Optional) and isinstance(dst, Optional):
        return None if value is None else convert(value, src.inner, dst.inner, path)
    if isinstance(src, Map) and isinstance(dst, Map):
        return {
            convert(k, src.key, dst.key, path): convert(v, src.value, dst.value, f"{path}[{k!r}]")
            for k, v in value.items()
        }
    if isinstance(src, Enum) and isinstance(dst, Enum):
        return dst.cls[value.name]
    if type(src) is type(dst) and src.describe() == dst.describe():
        return value
    raise ConversionError(f"{path}: cannot convert {src.describe()} to {dst.describe()}")
