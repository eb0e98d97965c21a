"""The pydantic JSON Schema generator used for tools and typed answers.

It differs from pydantic's default in two ways that matter in a prompt: field titles are left out
(they repeat the property name and cost tokens), and a class docstring is read for its sections,
so ``Attributes:`` lines become property descriptions instead of staying in the class description.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from byzer_agents.tools.docstrings import parse_docstring

__all__ = ["PromptSchemaGenerator"]


class PromptSchemaGenerator(GenerateJsonSchema):
    """pydantic's JSON Schema generator without field titles, reading class docstrings for
    property descriptions."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        """Never: a title repeats the property name and costs tokens."""
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        """A pydantic model's schema, described by its docstring."""
        return _with_docstring(super().model_schema(schema), schema["cls"])

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        """A dataclass's schema, described by its docstring."""
        return _with_docstring(super().dataclass_schema(schema), schema["cls"])

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> JsonSchemaValue:
        """A TypedDict's schema, described by its docstring."""
        json_schema = super().typed_dict_schema(schema)
        cls = schema.get("cls")
        return _with_docstring(json_schema, cls) if cls is not None else json_schema


def _with_docstring(json_schema: JsonSchemaValue, cls: type) -> JsonSchemaValue:
    # pydantic copies the raw docstring only when the class wrote one (not a dataclass's
    # generated "Point(x: int)"), so its presence tells us the docstring is the user's.
    if "description" not in json_schema:
        return json_schema
    info = parse_docstring(cls.__doc__)
    if info.description:
        json_schema["description"] = info.description
    else:
        del json_schema["description"]
    for name, prop in json_schema.get("properties", {}).items():
        if name in info.params and "description" not in prop:
            prop["description"] = info.params[name]
    return json_schema
