"""Normalising foreign schema dialects and tool names."""

from __future__ import annotations

import pytest

from byzer_agents.tools import api_safe_name, normalize_schema


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("get_weather", "get_weather"),
        ("math.factorial", "math_factorial"),
        ("music.theory.chordProgression", "music_theory_chordProgression"),
        ("weather now", "weather_now"),
        ("ünïcode-tool", "_n_code-tool"),
    ],
)
def test_api_safe_name(name: str, expected: str) -> None:
    assert api_safe_name(name) == expected


def test_long_names_are_cut_to_64_and_stay_distinct() -> None:
    first, second = api_safe_name("a." * 40 + "x"), api_safe_name("a." * 40 + "y")
    assert len(first) == len(second) == 64
    assert first != second


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_empty_or_non_string_names_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        api_safe_name(bad)  # type: ignore[arg-type]


def test_bfcl_types_become_standard() -> None:
    schema = normalize_schema(
        {
            "type": "dict",
            "properties": {
                "ratio": {"type": "float"},
                "point": {"type": "tuple", "items": {"type": "float"}},
                "data": {"type": "any", "description": "anything"},
                "nested": {"type": "dict", "properties": {"flag": {"type": "bool"}}},
                "many": {"type": "array", "items": {"type": "dict", "properties": {}}},
            },
        }
    )
    props = schema["properties"]
    assert schema["type"] == "object"
    assert props["ratio"] == {"type": "number"}
    assert props["point"] == {"type": "array", "items": {"type": "number"}}
    assert props["data"] == {"description": "anything"}
    assert props["nested"]["type"] == "object"
    assert props["nested"]["properties"]["flag"]["type"] == "boolean"
    assert props["many"]["items"]["type"] == "object"


def test_optional_markers_remove_names_from_required() -> None:
    schema = normalize_schema(
        {
            "type": "dict",
            "properties": {
                "a": {"type": "string"},
                "b": {"type": "string", "optional": True},
                "c": {"type": "string", "optional": "True"},
                "d": {"type": "string", "optional": "yes"},
                "e": {"type": "string"},
            },
            "required": ["a", "b", "c", "d", "e"],
            "optional": ["e"],
        }
    )
    assert schema["required"] == ["a"]
    assert "optional" not in schema
    assert all("optional" not in prop for prop in schema["properties"].values())


def test_required_flags_on_properties_are_folded_into_the_list() -> None:
    schema = normalize_schema(
        {
            "type": "object",
            "properties": {"a": {"type": "string", "required": True}, "b": {"type": "string"}},
            "required": ["b"],
        }
    )
    assert schema["required"] == ["b", "a"]
    assert "required" not in schema["properties"]["a"]


def test_standard_schema_passes_through_unchanged() -> None:
    standard = {
        "type": "object",
        "properties": {"a": {"type": ["string", "null"]}, "b": {"$ref": "#/$defs/B"}},
        "required": ["a"],
        "$defs": {"B": {"type": "object", "properties": {"c": {"type": "integer"}}}},
        "additionalProperties": False,
    }
    assert normalize_schema(standard) == standard


def test_missing_parameters_mean_no_arguments() -> None:
    assert normalize_schema(None) == {"type": "object", "properties": {}}


def test_input_is_not_mutated() -> None:
    original = {"type": "dict", "properties": {"x": {"type": "float", "optional": True}}}
    normalize_schema(original)
    assert original == {"type": "dict", "properties": {"x": {"type": "float", "optional": True}}}
