"""The .bare schemas are the source of truth: parsing them and regenerating changes nothing."""

from __future__ import annotations

import pytest

import codec
from codec import generate
from codec.schema import (
    AliasDef,
    ListType,
    Named,
    Primitive,
    SchemaError,
    StructDef,
    UnionDef,
    parse_schema,
)


def test_regenerating_from_schemas_changes_nothing() -> None:
    for path, source in generate.generate_all().items():
        assert path.read_text() == source, f"{path} is stale: run python -m codec.generate"


def test_generate_check_mode_reports_stale_modules(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert generate.main(["--check"]) == 0
    real = generate.generate_all

    def tampered() -> dict[object, str]:
        return {path: source + "# drift\n" for path, source in real().items()}

    monkeypatch.setattr(generate, "generate_all", tampered)
    assert generate.main(["--check"]) == 1


def test_v8_is_v7_plus_preloaded_kv_on_command_start_actor() -> None:
    v7 = parse_schema(generate.schema_path(7).read_text()).by_name()
    v8 = parse_schema(generate.schema_path(8).read_text()).by_name()
    assert set(v8) - set(v7) == {"PreloadedKvEntry", "PreloadedKv"}
    changed = {name for name in v7 if v7[name] != v8[name]}
    assert changed == {"CommandStartActor"}
    start7, start8 = v7["CommandStartActor"], v8["CommandStartActor"]
    assert isinstance(start7, StructDef) and isinstance(start8, StructDef)
    assert start8.fields[:2] == start7.fields
    assert start8.fields[2][0] == "preloadedKv"


def test_shared_types_are_the_same_objects_in_both_versions() -> None:
    assert codec.v8.ToServerPong is codec.v7.ToServerPong
    assert codec.v8.BARE_ToServer is codec.v7.BARE_ToServer
    assert codec.v8.BARE_KvResponseData is codec.v7.BARE_KvResponseData
    for changed in (
        "CommandStartActor",
        "Command",
        "CommandWrapper",
        "ToClient",
        "ToRunner",
        "ActorCommandKeyData",
        "ToClientCommands",
    ):
        assert codec.v8.TYPES[changed] is not codec.v7.TYPES[changed], changed


def test_union_tags_follow_declaration_order_including_the_v7_kv_shift() -> None:
    kv = parse_schema(generate.schema_path(7).read_text()).by_name()["KvRequestData"]
    assert isinstance(kv, UnionDef)
    assert kv.members.index("KvDeleteRangeRequest") == 4
    assert kv.members.index("KvDropRequest") == 5


def test_parser_reads_every_construct_of_the_grammar() -> None:
    schema = parse_schema(
        """
        # comment
        type Key data[4]
        type Keys list<Key>  # trailing comment
        type Nothing void
        type S struct { a: optional<map<str><u64>> b: Keys }
        type U union { | S | Nothing }
        type E enum { A B }
        """
    )
    table = schema.by_name()
    assert table["Keys"] == AliasDef("Keys", ListType(Named("Key")))
    assert table["Nothing"] == AliasDef("Nothing", Primitive("void"))
    assert table["U"] == UnionDef("U", ("S", "Nothing"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type A struct { x: B }", "undefined type B"),
        ("type A struct { }", "no fields"),
        ("type A struct { x: u8 x: u8 }", "repeats a field"),
        ("type A union { B | B } type B void", "repeats a member"),
        ("type A union { B = 1 } type B void", "explicit union tags"),
        ("type A enum { X = 3 }", "explicit enum values"),
        ("type A f64", "floating point"),
        ("type A list<u8>[4]", "fixed-length lists"),
        ("type A struct { b: B } type B struct { a: A }", "recursive"),
        ("type A u8 type A u16", "defined twice"),
        ("type a u8", "upper-case"),
        ("type A data[0]", "positive length"),
        ("type A struct { x: u8", "unexpected end"),
        ("type A $", "unexpected character"),
    ],
)
def test_parser_rejects_what_it_does_not_support(text: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        parse_schema(text)
