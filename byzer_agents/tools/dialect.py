"""Bring the tool definitions users bring (BFCL's dialect and its kin) to standard JSON Schema,
and tool names to what OpenAI-style APIs accept.

BFCL writes ``"type": "dict"`` for object, ``"float"``, ``"tuple"``, ``"any"``, marks optional
properties with ``"optional": true`` (or ``"True"``, ``"yes"``, or a list on the object), and names
functions ``math.factorial``; an API allows only ``[A-Za-z0-9_-]{1,64}`` in a name.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from byzer_agents.exceptions import ConfigurationError

__all__ = ["api_safe_name", "normalize_schema"]

_TYPE_ALIASES = {
    "dict": "object",
    "map": "object",
    "float": "number",
    "double": "number",
    "int": "integer",
    "long": "integer",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "set": "array",
}
_ANY_TYPES = {"any", "anytype", "object_any"}
_TRUTHY = {"true", "yes", "1"}
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_NAME_LENGTH = 64

# Keywords whose value is one schema, or a list or map of schemas, to walk into.
_SCHEMA_KEYWORDS = ("items", "additionalProperties", "not", "contains", "additionalItems")
_SCHEMA_LIST_KEYWORDS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAP_KEYWORDS = ("properties", "$defs", "definitions", "patternProperties")


def api_safe_name(name: str) -> str:
    """``math.factorial`` -> ``math_factorial``; names too long keep a hash of the whole name."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"a tool name must be a non-empty string, got {name!r}")
    if _NAME_PATTERN.fullmatch(name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name.strip())
    if len(safe) > _MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        safe = f"{safe[: _MAX_NAME_LENGTH - 9]}_{digest}"
    return safe


def normalize_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Return a standard JSON Schema for an arguments object; the input is left untouched."""
    if not schema:
        return {"type": "object", "properties": {}}
    normalized = _normalize(copy.deepcopy(schema))
    normalized.setdefault("type", "object")
    if normalized.get("type") == "object":
        normalized.setdefault("properties", {})
    return normalized


def _normalize(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    if "type" in schema:
        schema_type = _normalize_type(schema["type"])
        if schema_type is None:
            del schema["type"]
        else:
            schema["type"] = schema_type
    for keyword in _SCHEMA_KEYWORDS:
        if isinstance(schema.get(keyword), dict):
            schema[keyword] = _normalize(schema[keyword])
    for keyword in _SCHEMA_LIST_KEYWORDS:
        if isinstance(schema.get(keyword), list):
            schema[keyword] = [_normalize(item) for item in schema[keyword]]
    for keyword in _SCHEMA_MAP_KEYWORDS:
        if isinstance(schema.get(keyword), dict):
            schema[keyword] = {key: _normalize(value) for key, value in schema[keyword].items()}
    if isinstance(schema.get("properties"), dict):
        _normalize_required(schema)
    return schema


def _normalize_type(schema_type: Any) -> Any:
    if isinstance(schema_type, list):
        types = [_normalize_type(item) for item in schema_type]
        return None if None in types else list(dict.fromkeys(types))
    if not isinstance(schema_type, str):
        return schema_type
    lowered = schema_type.strip().lower()
    if lowered in _ANY_TYPES:
        return None
    return _TYPE_ALIASES.get(lowered, lowered)


def _normalize_required(schema: dict[str, Any]) -> None:
    """Fold the dialects' optional / required markers into one standard ``required`` list;
    a schema without such markers is left as it is."""
    properties: dict[str, Any] = schema["properties"]
    optional = schema.pop("optional", None)
    optional_names = set(optional) if isinstance(optional, list) else set()
    flagged_required = []
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        if "optional" in prop and _truthy(prop.pop("optional")):
            optional_names.add(name)
        # Draft 3 and some dialects flag required properties on the property itself.
        if isinstance(prop.get("required"), (bool, str)) and _truthy(prop.pop("required")):
            flagged_required.append(name)
    if optional is None and not optional_names and not flagged_required:
        return
    required = schema.get("required")
    required = list(required) if isinstance(required, list) else []
    required += [name for name in flagged_required if name not in required]
    required = [name for name in required if name not in optional_names]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUTHY
    return bool(value)
