"""json_schema(cls): typed-answer schemas with docstrings carried in."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from byzer_agents import ToolDefinitionError, json_schema


class Story(BaseModel):
    """A short story.

    Attributes:
        title: The story's title.
    """

    title: str
    body: str = Field(description="The story itself, in plain text.")


@dataclasses.dataclass
class Review:
    """A product review.

    Args:
        stars: From 1 to 5.
    """

    stars: int
    text: str = ""


class Contact(TypedDict):
    """A person to reach.

    Attributes:
        email: Where to write.
    """

    email: str


def test_pydantic_class_docstring_and_field_descriptions() -> None:
    schema = json_schema(Story)
    assert schema["description"] == "A short story."
    assert schema["properties"]["title"]["description"] == "The story's title."
    assert schema["properties"]["body"]["description"] == "The story itself, in plain text."
    assert schema["required"] == ["title", "body"]


def test_dataclass_and_typeddict_get_the_same_treatment() -> None:
    review = json_schema(Review)
    assert review["description"] == "A product review."
    assert review["properties"]["stars"]["description"] == "From 1 to 5."
    contact = json_schema(Contact)
    assert contact["description"] == "A person to reach."
    assert contact["properties"]["email"]["description"] == "Where to write."


def test_dataclass_without_docstring_gets_no_generated_description() -> None:
    @dataclasses.dataclass
    class Bare:
        x: int

    assert "description" not in json_schema(Bare)


def test_list_of_a_class_is_an_array_of_its_schema() -> None:
    schema = json_schema(list[Story])
    assert schema["type"] == "array"
    assert schema["items"] == {"$ref": "#/$defs/Story"}
    assert schema["$defs"]["Story"]["description"] == "A short story."


def test_each_call_returns_a_fresh_dict() -> None:
    json_schema(Story)["description"] = "changed"
    assert json_schema(Story)["description"] == "A short story."


def test_a_class_pydantic_cannot_describe_is_refused_with_a_hint() -> None:
    class Opaque:
        pass

    with pytest.raises(ToolDefinitionError, match="cannot be a typed answer"):
        json_schema(Opaque)
