"""Strict BARE (https://baremessages.org) types built on Construct.

Each type parses and builds through Construct (``T.parse(data)``, ``T.build(value)``) with every
laxness of stock Construct closed, and also compiles to index-based Python functions
(:func:`compile_type`) that the versioned codec uses on its hot path.
"""

from codec.bare.compiler import Compiled, compile_type
from codec.bare.compound import Enum, Field, List, Map, Optional, Struct, Union, Wrapper
from codec.bare.core import BareBuildError, BareParseError, BareType, JsonValue
from codec.bare.scalars import (
    BOOL,
    DATA,
    I8,
    I16,
    I32,
    I64,
    INT,
    STR,
    U8,
    U16,
    U32,
    U64,
    UINT,
    VOID,
    Bool,
    Data,
    FixedData,
    FixedInt,
    Int,
    Str,
    Uint,
    Void,
)

__all__ = [
    "BOOL",
    "DATA",
    "I8",
    "I16",
    "I32",
    "I64",
    "INT",
    "STR",
    "U8",
    "U16",
    "U32",
    "U64",
    "UINT",
    "VOID",
    "BareBuildError",
    "BareParseError",
    "BareType",
    "Bool",
    "Compiled",
    "Data",
    "Enum",
    "Field",
    "FixedData",
    "FixedInt",
    "Int",
    "JsonValue",
    "List",
    "Map",
    "Optional",
    "Str",
    "Struct",
    "Uint",
    "Union",
    "Void",
    "Wrapper",
    "compile_type",
]
