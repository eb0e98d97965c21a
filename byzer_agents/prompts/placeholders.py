"""The shapes a prompt shows a model, with ``<placeholders>`` where values go: an example call, a
typed answer's form, and the notes that carry each field's description.

Small models copy what a prompt shows. An example call with realistic values came back as the
answer (``count: 1, unit: "day"`` for "the last 2 weeks"), and a schema whose descriptions sit
beside its keys came back with the descriptions as values. So the shapes here hold no value a model
could copy: each value is a placeholder naming its type (``<integer>``, ``<one of "day", "week">``),
which is not JSON, so a copied shape never parses as an answer; descriptions are written apart,
as notes on the fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["field_notes", "shape", "without_descriptions"]

_MAX_DEPTH = 4
_MAX_ENUM_SHOWN = 6
_TYPE_WORDS = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "true or false",
    "null": "null",
    "array": "list",
    "object": "object",
}


def shape(schema: Mapping[str, Any], *, required_only: bool = False) -> str:
    """The JSON form of a value of ``schema``, its values written as ``<placeholders>``.
    ``required_only`` leaves optional properties out (an example call shows what must be there)."""
    return _shape(schema, schema, required_only, 0)


def field_notes(schema: Mapping[str, Any]) -> list[str]:
    """One line per described property of ``schema`` (nested ones by dotted path):
    ``topic (string, required): What the meeting is about``."""
    notes: list[str] = []
    _collect_notes(schema, schema, "", notes, 0)
    return notes


def without_descriptions(schema: Any) -> Any:
    """``schema`` less its ``description`` and ``title`` keywords (a copy): the schema a prompt
    shows beside the field notes, so no description sits where a value would."""
    if isinstance(schema, Mapping):
        return {
            key: _strip(key, value)
            for key, value in schema.items()
            if key not in ("description", "title")
        }
    if isinstance(schema, list):
        return [without_descriptions(item) for item in schema]
    return schema


def _strip(key: str, value: Any) -> Any:
    if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(
        value, Mapping
    ):
        # The keys here are names, not keywords: a property may be called "description".
        return {name: without_descriptions(sub) for name, sub in value.items()}
    return without_descriptions(value)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part) if isinstance(target, Mapping) else None
    return target if isinstance(target, Mapping) else {}


def _options(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return [option for option in options if isinstance(option, Mapping)]
    return []


def _shape(
    schema: Mapping[str, Any], root: Mapping[str, Any], required_only: bool, depth: int
) -> str:
    schema = _resolve(schema, root)
    if depth >= _MAX_DEPTH:
        return f"<{_kind(schema, root, depth)}>"
    options = _options(schema)
    if options:
        kinds = [_kind(option, root, depth) for option in options]
        return f"<{' or '.join(dict.fromkeys(kinds))}>"
    if "enum" in schema or "const" in schema:
        return f"<{_kind(schema, root, depth)}>"
    kind = _type(schema)
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        required = schema.get("required") or []
        fields = [
            f"{json.dumps(name, ensure_ascii=False)}: {_shape(sub, root, required_only, depth + 1)}"
            for name, sub in schema["properties"].items()
            if not required_only or name in required
        ]
        return "{" + ", ".join(fields) + "}"
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"[{_shape(schema['items'], root, required_only, depth + 1)}, ...]"
    return f"<{_kind(schema, root, depth)}>"


def _type(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in schema:
        return "object"
    return kind if isinstance(kind, str) else None


def _kind(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> str:
    """A placeholder's words: the type, the allowed values, or the format."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return f"exactly {json.dumps(schema['const'], ensure_ascii=False)}"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in enum[:_MAX_ENUM_SHOWN])
        more = ", ..." if len(enum) > _MAX_ENUM_SHOWN else ""
        return f"one of {shown}{more}"
    options = _options(schema)
    if options and depth < _MAX_DEPTH:
        return " or ".join(dict.fromkeys(_kind(option, root, depth + 1) for option in options))
    kind = _type(schema)
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"list of {_kind(schema['items'], root, depth + 1)}"
    words = _TYPE_WORDS.get(kind or "", "any JSON value")
    fmt = schema.get("format")
    return f"{words}, {fmt}" if kind == "string" and isinstance(fmt, str) else words


def _collect_notes(
    schema: Mapping[str, Any], root: Mapping[str, Any], prefix: str, notes: list[str], depth: int
) -> None:
    schema = _resolve(schema, root)
    if depth >= _MAX_DEPTH:
        return
    if _type(schema) == "array" and isinstance(schema.get("items"), Mapping):
        _collect_notes(schema["items"], root, f"{prefix}[]" if prefix else "", notes, depth + 1)
        return
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    required = schema.get("required") or []
    for name, sub in properties.items():
        path = f"{prefix}.{name}" if prefix else name
        resolved = _resolve(sub, root)
        description = sub.get("description") or resolved.get("description")
        if description:
            need = "required" if name in required else "optional"
            notes.append(f"{path} ({_kind(resolved, root, depth)}, {need}): {description}")
        _collect_notes(resolved, root, path, notes, depth + 1)
