"""The shapes a prompt shows: placeholders where values go, descriptions kept apart as notes."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from byzer_agents.prompts import json_schema
from byzer_agents.prompts.placeholders import field_notes, shape, without_descriptions


class Meeting(BaseModel):
    """A meeting."""

    topic: str = Field(description="What the meeting is about")
    size: int | None = None
    kind: Literal["call", "visit"] = "call"


class Agenda(BaseModel):
    meetings: list[Meeting]


def test_shape_writes_each_value_as_a_typed_placeholder() -> None:
    assert shape(json_schema(Meeting)) == (
        '{"topic": <string>, "size": <integer or null>, "kind": <one of "call", "visit">}'
    )


def test_shape_of_required_only_leaves_optional_properties_out() -> None:
    assert shape(json_schema(Meeting), required_only=True) == '{"topic": <string>}'


def test_shape_follows_refs_into_lists_of_models() -> None:
    assert shape(json_schema(Agenda)) == (
        '{"meetings": [{"topic": <string>, "size": <integer or null>, '
        '"kind": <one of "call", "visit">}, ...]}'
    )


def test_a_shape_never_parses_as_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(shape(json_schema(Meeting)))


def test_a_recursive_schema_ends() -> None:
    schema = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}}
    schema["$ref"] = "#/$defs/N"
    assert shape(schema).count("{") <= 5


def test_field_notes_carry_descriptions_by_path() -> None:
    assert field_notes(json_schema(Agenda)) == [
        "meetings[].topic (string, required): What the meeting is about"
    ]


def test_without_descriptions_keeps_a_property_named_description() -> None:
    schema = {
        "description": "x",
        "properties": {"description": {"type": "string", "description": "y"}},
    }
    assert without_descriptions(schema) == {"properties": {"description": {"type": "string"}}}
