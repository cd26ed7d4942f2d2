"""The JSON mapping of protocol values (for the CLI, debugging and cross-language tests).

struct -> object with the schema's field names; data and data[N] -> lowercase hex; str ->
string; integers -> JSON integers; bool; optional -> null or the value; list -> array;
map<str><T> -> object; union -> ``{"tag": "<MemberType>", "val": <value>}`` (void members:
``"val": null``); enum -> member name; void -> null.

Values are those of the given version's own module (``codec.v7`` or ``codec.v8``).
"""

from __future__ import annotations

from typing import Any

from codec.bare import BareBuildError, JsonValue
from codec.errors import EncodeError
from codec.versioned import _lookup


def to_json(type_name: str, value: Any, version: int) -> JsonValue:
    """Map a (valid, e.g. decoded) value to JSON-compatible Python data."""
    t = _lookup(type_name, version, EncodeError)
    try:
        return t.to_json(value)
    except Exception as exc:
        raise EncodeError(f"value does not match the schema: {exc!r}", type_name) from None


def from_json(type_name: str, data: JsonValue, version: int) -> Any:
    """Build a value of ``version``'s types from its JSON mapping.

    Raises :class:`EncodeError` naming the field path on any mismatch.
    """
    t = _lookup(type_name, version, EncodeError)
    try:
        return t.from_json(data, type_name)
    except BareBuildError as exc:
        raise EncodeError(exc.reason, str(exc.path)) from None
