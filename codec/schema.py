"""Parser for BARE schema files (the subset the runner protocol uses, strictly).

Grammar::

    schema   := { "type" NAME typedef }
    typedef  := "struct" "{" { NAME ":" type } "}"
              | "union" "{" [ "|" ] NAME { "|" NAME } "}"
              | "enum" "{" { NAME } "}"
              | type
    type     := "uint" | "int" | "u8" .. "u64" | "i8" .. "i64" | "bool" | "str" | "void"
              | "data" [ "[" N "]" ] | "optional" "<" type ">" | "list" "<" type ">"
              | "map" "<" type ">" "<" type ">" | NAME

Comments run from ``#`` to the end of the line. Explicit tag values (``= N``), floats and
fixed-length lists are rejected: the runner protocol uses none of them, and a silent partial
reading of the source of truth would be worse than an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRIMITIVES = frozenset(
    {
        "uint",
        "int",
        "u8",
        "u16",
        "u32",
        "u64",
        "i8",
        "i16",
        "i32",
        "i64",
        "bool",
        "str",
        "data",
        "void",
    }
)


class SchemaError(Exception):
    """The schema text is not valid (message names the line)."""


@dataclass(frozen=True)
class Primitive:
    name: str


@dataclass(frozen=True)
class FixedDataType:
    length: int


@dataclass(frozen=True)
class OptionalType:
    inner: TypeRef


@dataclass(frozen=True)
class ListType:
    inner: TypeRef


@dataclass(frozen=True)
class MapType:
    key: TypeRef
    value: TypeRef


@dataclass(frozen=True)
class Named:
    name: str


TypeRef = Primitive | FixedDataType | OptionalType | ListType | MapType | Named


@dataclass(frozen=True)
class StructDef:
    name: str
    fields: tuple[tuple[str, TypeRef], ...]


@dataclass(frozen=True)
class UnionDef:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class EnumDef:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class AliasDef:
    name: str
    target: TypeRef


Definition = StructDef | UnionDef | EnumDef | AliasDef


@dataclass(frozen=True)
class Schema:
    definitions: tuple[Definition, ...]

    def by_name(self) -> dict[str, Definition]:
        return {d.name: d for d in self.definitions}


_TOKEN = re.compile(r"\s*(?:#[^\n]*)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[{}<>\[\]|:=]")


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, int]] = []
        pos = 0
        while True:
            while True:
                m = _TOKEN.match(text, pos)
                assert m is not None
                if m.end() == pos:
                    break
                pos = m.end()
            if pos >= len(text):
                break
            m = _WORD.match(text, pos)
            line = text.count("\n", 0, pos) + 1
            if m is None:
                raise SchemaError(f"line {line}: unexpected character {text[pos]!r}")
            self.items.append((m.group(), line))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.items[self.i][0] if self.i < len(self.items) else None

    def line(self) -> int:
        if self.i < len(self.items):
            return self.items[self.i][1]
        return self.items[-1][1] if self.items else 1

    def next(self) -> str:
        if self.i >= len(self.items):
            raise SchemaError("unexpected end of schema")
        tok = self.items[self.i][0]
        self.i += 1
        return tok

    def expect(self, tok: str) -> None:
        line = self.line()
        got = self.next()
        if got != tok:
            raise SchemaError(f"line {line}: expected {tok!r}, got {got!r}")

    def name(self) -> str:
        line = self.line()
        tok = self.next()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok):
            raise SchemaError(f"line {line}: expected a name, got {tok!r}")
        return tok


def _parse_type(t: _Tokens) -> TypeRef:
    line = t.line()
    word = t.name()
    if word == "optional":
        t.expect("<")
        inner = _parse_type(t)
        t.expect(">")
        return OptionalType(inner)
    if word == "list":
        t.expect("<")
        inner = _parse_type(t)
        t.expect(">")
        if t.peek() == "[":
            raise SchemaError(f"line {line}: fixed-length lists are not supported")
        return ListType(inner)
    if word == "map":
        t.expect("<")
        key = _parse_type(t)
        t.expect(">")
        t.expect("<")
        value = _parse_type(t)
        t.expect(">")
        return MapType(key, value)
    if word == "data" and t.peek() == "[":
        t.next()
        n = t.next()
        if not n.isdigit() or int(n) < 1:
            raise SchemaError(f"line {line}: data[N] needs a positive length")
        t.expect("]")
        return FixedDataType(int(n))
    if word in ("f32", "f64"):
        raise SchemaError(f"line {line}: floating point types are not supported")
    if word in PRIMITIVES:
        return Primitive(word)
    if word in ("struct", "union", "enum"):
        raise SchemaError(f"line {line}: anonymous {word} types are not supported")
    return Named(word)


def _parse_definition(t: _Tokens) -> Definition:
    line = t.line()
    t.expect("type")
    name = t.name()
    if not name[0].isupper():
        raise SchemaError(f"line {line}: type names must start with an upper-case letter")
    kind = t.peek()
    if kind == "struct":
        t.next()
        t.expect("{")
        fields: list[tuple[str, TypeRef]] = []
        while t.peek() != "}":
            fname = t.name()
            t.expect(":")
            fields.append((fname, _parse_type(t)))
        t.next()
        if not fields:
            raise SchemaError(f"line {line}: struct {name} has no fields (use void)")
        if len({f for f, _ in fields}) != len(fields):
            raise SchemaError(f"line {line}: struct {name} repeats a field name")
        return StructDef(name, tuple(fields))
    if kind == "union":
        t.next()
        t.expect("{")
        members: list[str] = []
        if t.peek() == "|":
            t.next()
        while True:
            members.append(t.name())
            if t.peek() == "=":
                raise SchemaError(f"line {t.line()}: explicit union tags are not supported")
            if t.peek() == "|":
                t.next()
                continue
            t.expect("}")
            break
        if len(set(members)) != len(members):
            raise SchemaError(f"line {line}: union {name} repeats a member")
        return UnionDef(name, tuple(members))
    if kind == "enum":
        t.next()
        t.expect("{")
        values: list[str] = []
        while t.peek() != "}":
            values.append(t.name())
            if t.peek() == "=":
                raise SchemaError(f"line {t.line()}: explicit enum values are not supported")
        t.next()
        if not values or len(set(values)) != len(values):
            raise SchemaError(f"line {line}: enum {name} is empty or repeats a value")
        return EnumDef(name, tuple(values))
    return AliasDef(name, _parse_type(t))


def _references(ref: TypeRef) -> list[str]:
    if isinstance(ref, Named):
        return [ref.name]
    if isinstance(ref, OptionalType | ListType):
        return _references(ref.inner)
    if isinstance(ref, MapType):
        return _references(ref.key) + _references(ref.value)
    return []


def references(d: Definition) -> list[str]:
    """Names of the named types a definition uses directly."""
    if isinstance(d, StructDef):
        return [n for _, ref in d.fields for n in _references(ref)]
    if isinstance(d, UnionDef):
        return list(d.members)
    if isinstance(d, AliasDef):
        return _references(d.target)
    return []


def parse_schema(text: str) -> Schema:
    """Parse schema text; raises :class:`SchemaError` on any error, including references to
    undefined types, duplicate definitions and recursive types."""
    t = _Tokens(text)
    defs: list[Definition] = []
    while t.peek() is not None:
        defs.append(_parse_definition(t))
    schema = Schema(tuple(defs))
    names = [d.name for d in defs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SchemaError(f"type {dup} is defined twice")
    table = schema.by_name()
    for d in defs:
        for ref in references(d):
            if ref not in table:
                raise SchemaError(f"{d.name} refers to undefined type {ref}")
    topological_order(schema)
    return schema


def topological_order(schema: Schema) -> list[Definition]:
    """Definitions with every dependency before its users (schema order otherwise)."""
    table = schema.by_name()
    done: dict[str, bool] = {}
    order: list[Definition] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        state = done.get(name)
        if state is True:
            return
        if state is False:
            raise SchemaError(f"recursive types are not supported: {' -> '.join((*stack, name))}")
        done[name] = False
        for ref in references(table[name]):
            visit(ref, (*stack, name))
        done[name] = True
        order.append(table[name])

    for d in schema.definitions:
        visit(d.name, ())
    return order
