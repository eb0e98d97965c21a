"""Bounds on schemas from outside: depth measured without recursion, $refs local and loop-free,
size bounded for the grammar, strict keywords named; and every real-world schema of the
JSONSchemaBench sample within them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from byzer_agents.exceptions import ToolDefinitionError, UnsupportedSchemaError
from byzer_agents.tools import Tool
from byzer_agents.tools.schema_bounds import (
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_ENUM_VALUES,
    MAX_SCHEMA_NODES,
    check_depth,
    check_enforced,
    check_refs,
    check_size,
)
from byzer_agents.tools.strict import to_strict_schema
from tests.evals.jsonschemabench import schemas


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def refusal(check: Any, schema: Any) -> UnsupportedSchemaError:
    with pytest.raises(UnsupportedSchemaError) as caught:
        check(schema, what="the schema")
    return caught.value


def test_a_schema_nested_past_the_limit_is_refused_without_recursing() -> None:
    check_depth(nested(MAX_SCHEMA_DEPTH // 2 - 1), what="the schema")
    error = refusal(check_depth, nested(5_000))  # a recursive walk would fail long before
    assert error.limit == "depth" and f"more than {MAX_SCHEMA_DEPTH} levels" in str(error)


def test_strict_tools_and_schema_metadata_refuse_deep_schemas_as_tool_definition_errors() -> None:
    with pytest.raises(ToolDefinitionError, match="levels deep"):
        to_strict_schema(nested(120), tool_name="deep")
    with pytest.raises(ToolDefinitionError, match="levels deep"):
        Tool.from_schema({"name": "deep", "parameters": nested(120)}, strict=True)


@pytest.mark.parametrize(
    ("schema", "cycle"),
    [
        ({"$ref": "#"}, "# -> #"),
        (
            {
                "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                "$ref": "#/$defs/a",
            },
            "#/$defs/a -> #/$defs/b -> #/$defs/a",
        ),
        (
            {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "string"}]}}},
            "#/$defs/a -> #/$defs/a/anyOf/0 -> #/$defs/a",
        ),
    ],
)
def test_a_ref_loop_in_place_is_refused_with_the_cycle(schema: dict[str, Any], cycle: str) -> None:
    error = refusal(check_refs, schema)
    assert error.limit == "$ref" and cycle in str(error)


def test_recursion_through_properties_or_items_is_no_loop() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            }
        },
        "$ref": "#/$defs/node",
    }
    check_refs(tree, what="the schema")
    check_refs({"type": "object", "properties": {"next": {"$ref": "#"}}}, what="the schema")


def test_remote_and_dangling_refs_are_refused_by_name() -> None:
    assert "'https://x.org/a.json'" in str(refusal(check_refs, {"$ref": "https://x.org/a.json"}))
    assert "points at nothing" in str(refusal(check_refs, {"$ref": "#/$defs/missing"}))


def test_size_is_bounded_in_nodes_enum_values_and_fast_to_measure() -> None:
    started = time.perf_counter()
    error = refusal(lambda s, what: check_size([s], what=what), {"enum": list(range(200_000))})
    assert time.perf_counter() - started < 2
    assert error.limit == "size" and f"over {MAX_SCHEMA_ENUM_VALUES} enum/const" in str(error)
    many = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6_000)}}
    assert f"more than {MAX_SCHEMA_NODES} JSON values" in str(
        refusal(lambda s, what: check_size([s], what=what), many)
    )


def test_strict_refusal_names_the_keyword_and_where_not_a_property_of_that_name() -> None:
    check_enforced({"type": "object", "properties": {"not": {"type": "string"}}}, what="x")
    error = refusal(check_enforced, {"properties": {"a": {"oneOf": [{"type": "string"}]}}})
    assert error.limit == "keyword" and "'oneOf' (at #/properties/a)" in str(error)


def test_every_jsonschemabench_schema_is_within_the_bounds() -> None:
    checked = 0
    for entry in schemas():
        schema = entry["schema"]
        check_depth(schema, what=entry["id"])
        check_refs(schema, what=entry["id"])
        check_size([schema], what=entry["id"])
        checked += 1
    assert checked == 340
