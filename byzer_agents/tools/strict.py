"""Make a tool's JSON Schema strict, as OpenAI's ``strict: true`` tools require: every object
closed (``additionalProperties: false``) and every property required.

A free-form mapping (``dict[str, int]``) cannot be written in strict mode, so it is refused with the
path to it rather than silently closed, which would make every call with keys fail.
"""

from __future__ import annotations

import copy
from typing import Any

from byzer_agents.exceptions import ToolDefinitionError, UnsupportedSchemaError
from byzer_agents.tools.schema_bounds import check_depth

__all__ = ["to_strict_schema"]


def to_strict_schema(schema: dict[str, Any], *, tool_name: str = "tool") -> dict[str, Any]:
    """Return a strict copy of ``schema``; the input is left untouched. A schema nested past
    ``schema_bounds.MAX_SCHEMA_DEPTH`` is refused first, as the copy and the walk recurse."""
    try:
        check_depth(schema, what=f"tool {tool_name!r}: parameters")
    except UnsupportedSchemaError as exc:
        raise ToolDefinitionError(str(exc)) from exc
    return _strict(copy.deepcopy(schema), tool_name, path="parameters")


def _strict(schema: Any, tool_name: str, path: str) -> Any:
    if not isinstance(schema, dict):
        return schema
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra != {}:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: {path} is a free-form mapping "
                f"(additionalProperties {extra!r}), which strict mode cannot express; "
                "use a model with named fields, or strict=False"
            )
        schema["additionalProperties"] = False
        properties = schema.setdefault("properties", {})
        schema["required"] = list(properties)
        for name, prop in properties.items():
            properties[name] = _strict(prop, tool_name, f"{path}.{name}")
    for keyword in ("$defs", "definitions"):
        for name, definition in schema.get(keyword, {}).items():
            schema[keyword][name] = _strict(definition, tool_name, f"{path}.{keyword}.{name}")
    if isinstance(schema.get("items"), dict):
        schema["items"] = _strict(schema["items"], tool_name, f"{path}[]")
    for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(schema.get(keyword), list):
            schema[keyword] = [
                _strict(item, tool_name, f"{path}.{keyword}[{index}]")
                for index, item in enumerate(schema[keyword])
            ]
    return schema
