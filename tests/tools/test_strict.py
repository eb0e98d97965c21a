"""Strict schemas: closed objects, every property required; free-form maps refused."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from byzer_agents import ToolDefinitionError, tool
from byzer_agents.tools import to_strict_schema


class Leg(BaseModel):
    origin: str
    stops: int = 0


def test_every_object_is_closed_and_fully_required_including_defs() -> None:
    @tool(strict=True)
    def book(legs: list[Leg], passengers: int = 1, note: str | None = None) -> None: ...

    schema = book.parameters
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["legs", "passengers", "note"]
    leg = schema["$defs"]["Leg"]
    assert leg["additionalProperties"] is False
    assert leg["required"] == ["origin", "stops"]


def test_strict_copy_leaves_the_input_untouched() -> None:
    original = {"type": "object", "properties": {"a": {"type": "string"}}}
    strict = to_strict_schema(original)
    assert "required" not in original and "additionalProperties" not in original
    assert strict["required"] == ["a"]


def test_nested_objects_inside_arrays_and_unions_are_made_strict() -> None:
    schema = {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"type": "object", "properties": {"x": {}}}},
            "either": {"anyOf": [{"type": "object", "properties": {"y": {}}}, {"type": "null"}]},
        },
    }
    strict = to_strict_schema(schema)
    assert strict["properties"]["rows"]["items"]["required"] == ["x"]
    assert strict["properties"]["either"]["anyOf"][0]["additionalProperties"] is False


def test_free_form_mapping_is_refused_naming_its_path() -> None:
    with pytest.raises(ToolDefinitionError, match=r"'tag'.*parameters\.labels.*free-form"):

        @tool(strict=True)
        def tag(labels: dict[str, str]) -> None: ...


def test_non_strict_tool_keeps_optional_parameters_optional() -> None:
    @tool
    def book(origin: str, stops: int = 0) -> None: ...

    assert book.parameters["required"] == ["origin"]
    assert book.strict is False
