"""Bounds on a JSON schema that comes from outside (a ``response_format``, a tool's parameters),
checked before anything walks it recursively or compiles it into a grammar. Each check raises
UnsupportedSchemaError naming the limit, the value found and what would be accepted.

- **Depth.** jsonschema's ``check_schema`` recurses per level and ends in a RecursionError for a
  schema nested about 100 deep; ``check_depth`` measures the nesting without recursion, first.
- **$refs.** Local JSON pointers only (``#`` or ``#/...``), each resolving, and no chain of in-place
  applicators (``$ref``, ``allOf``, ``anyOf``, ``oneOf``, ``not``, ``if``/``then``/``else``...) may
  come back to where it started: validating against such a loop never ends. Recursion through
  ``properties`` or ``items`` is fine: each step goes one level into the instance.
- **Size.** Grammar compilers take time and memory with the schema: xgrammar took 36 s and 1.1 GB
  for an enum of 200,000 strings, about 1 s for 10,000. JSONSchemaBench's largest real-world schema
  has 3,012 nodes and 273 enum values; the bounds leave room above that.
- **Strict.** ``"strict": true`` promises the schema is enforced while decoding. The keywords in
  ``UNENFORCED_KEYWORDS`` are not (measured on xgrammar 0.2.9, kept true by
  tests/llm_runtime/test_constrained.py), so a strict schema holding one is refused up front.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from byzer_agents.exceptions import UnsupportedSchemaError

__all__ = [
    "MAX_SCHEMA_BYTES",
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_ENUM_VALUES",
    "MAX_SCHEMA_NODES",
    "UNENFORCED_KEYWORDS",
    "check_depth",
    "check_enforced",
    "check_refs",
    "check_size",
]

MAX_SCHEMA_DEPTH = 64
"""JSON objects and arrays nested in one another, the root being 1 (a property's schema is two
levels below its object's: ``properties``, then the name)."""
MAX_SCHEMA_NODES = 10_000
"""JSON values in the schemas one request constrains to (objects, arrays, strings, numbers...)."""
MAX_SCHEMA_ENUM_VALUES = 5_000
"""``enum`` members and ``const`` values, counted over the whole schema."""
MAX_SCHEMA_BYTES = 512 * 1024
"""The schemas written as JSON (ASCII, non-ASCII characters escaped)."""

UNENFORCED_KEYWORDS = (
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
)
"""Keywords the grammar accepts but does not hold generation to: it allows instances they forbid
(``oneOf`` is read as ``anyOf``, ``allOf`` keeps one branch, ``not`` and ``uniqueItems`` are
dropped). An output is still checked against them after generation."""

# Where subschemas sit: keywords whose value is one schema, a list of them, or a name -> schema map.
# "In place" ones apply to the same instance; the others to a part of it (a step deeper).
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")
_DEEPER_ONE = (
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_DEEPER_LIST = ("prefixItems", "items")
_DEEPER_MAP = ("properties", "patternProperties")
_DEFINITIONS = ("$defs", "definitions")
_ONE = frozenset(_IN_PLACE_ONE + _DEEPER_ONE)
_LIST = frozenset(_IN_PLACE_LIST + _DEEPER_LIST)
_MAP = frozenset(_IN_PLACE_MAP + _DEEPER_MAP + _DEFINITIONS)


def check_depth(schema: Any, *, what: str, max_depth: int = MAX_SCHEMA_DEPTH) -> None:
    """Refuse ``schema`` when its JSON nests deeper than ``max_depth``; no recursion."""
    if not isinstance(schema, (dict, list)):
        return  # a scalar nests nowhere; what it should have been is checked elsewhere
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise UnsupportedSchemaError(
                f"{what} is nested more than {max_depth} levels deep (JSON objects and arrays), "
                f"the limit here; flatten it, or name repeated parts under $defs",
                limit="depth",
            )
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def check_size(schemas: Sequence[Any], *, what: str) -> None:
    """Refuse schemas too large to compile into one grammar: over ``MAX_SCHEMA_NODES`` JSON values,
    ``MAX_SCHEMA_ENUM_VALUES`` enum/const values, or ``MAX_SCHEMA_BYTES`` bytes, all together."""
    nodes = values = 0
    stack = list(schemas)
    while stack:
        node = stack.pop()
        nodes += 1
        if isinstance(node, dict):
            if isinstance(node.get("enum"), list):
                values += len(node["enum"])
            values += "const" in node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        if values > MAX_SCHEMA_ENUM_VALUES:
            raise UnsupportedSchemaError(
                f"{what} has over {MAX_SCHEMA_ENUM_VALUES} enum/const values, the limit for one "
                "grammar here; take a plain string and check it yourself, or split the choice",
                limit="size",
            )
        if nodes > MAX_SCHEMA_NODES:
            raise UnsupportedSchemaError(
                f"{what} has more than {MAX_SCHEMA_NODES} JSON values, the limit for one "
                "grammar here; send a smaller schema",
                limit="size",
            )
    size = sum(len(json.dumps(schema)) for schema in schemas)  # ASCII: one byte a character
    if size > MAX_SCHEMA_BYTES:
        raise UnsupportedSchemaError(
            f"{what} is {size} bytes of JSON, over the limit of {MAX_SCHEMA_BYTES} for one grammar "
            "here; send a smaller schema",
            limit="size",
        )


def check_refs(schema: Any, *, what: str) -> None:
    """Refuse a ``$ref`` that is not a local JSON pointer, does not resolve, or starts a loop of
    in-place applicators (``{"$ref": "#"}`` at the root, ``a -> b -> a`` under ``$defs``)."""
    if not isinstance(schema, dict):
        return
    edges: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    where: dict[int, str] = {}
    pending: list[tuple[str, dict[str, Any]]] = [("#", schema)]
    while pending:
        pointer, node = pending.pop()
        if id(node) in edges:
            continue
        where[id(node)] = pointer
        in_place = edges[id(node)] = []
        for path, child, same_instance in _children(pointer, node):
            pending.append((path, child))
            if same_instance:
                in_place.append((path, child))
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = _resolve(schema, ref, what=what, at=pointer)
            pending.append((ref, target))
            in_place.append((ref, target))
    _refuse_loops(edges, where, what=what)


def check_enforced(schema: Any, *, what: str) -> None:
    """Refuse ``schema`` under ``strict`` when it holds a keyword of ``UNENFORCED_KEYWORDS``."""
    if not isinstance(schema, dict):
        return
    stack: list[tuple[str, dict[str, Any]]] = [("#", schema)]
    seen: set[int] = set()
    while stack:
        pointer, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for keyword in UNENFORCED_KEYWORDS:
            if keyword in node:
                raise UnsupportedSchemaError(
                    f"{what} uses {keyword!r} (at {pointer}), which constrained decoding here "
                    "does not enforce, so strict: true cannot be kept; remove it, or send "
                    "strict: false to have each answer checked against it after generation",
                    limit="keyword",
                )
        stack.extend((path, child) for path, child, _ in _children(pointer, node))


def _children(pointer: str, node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(pointer, subschema, applies to the same instance) of each subschema right under ``node``."""
    for keyword, value in node.items():
        path = f"{pointer}/{_escaped(keyword)}"
        if isinstance(value, dict) and keyword in _ONE:
            yield path, value, keyword in _IN_PLACE_ONE
        elif isinstance(value, list) and keyword in _LIST:
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield f"{path}/{index}", item, keyword in _IN_PLACE_LIST
        elif isinstance(value, dict) and keyword in _MAP:
            for name, item in value.items():
                if isinstance(item, dict):
                    yield f"{path}/{_escaped(name)}", item, keyword in _IN_PLACE_MAP


def _resolve(root: dict[str, Any], ref: str, *, what: str, at: str) -> dict[str, Any]:
    if not (ref == "#" or ref.startswith("#/")):
        raise UnsupportedSchemaError(
            f"{what} has $ref {ref!r} (at {at}); only local JSON pointers are taken here "
            "('#' or '#/$defs/name'): put the schema it names under $defs",
            limit="$ref",
        )
    node: Any = root
    for token in ref[2:].split("/") if ref != "#" else ():
        key = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise UnsupportedSchemaError(
                f"{what} has $ref {ref!r} (at {at}), which points at nothing in the schema",
                limit="$ref",
            )
    if not isinstance(node, dict):
        raise UnsupportedSchemaError(
            f"{what} has $ref {ref!r} (at {at}), which points at {node!r:.40}, not a schema",
            limit="$ref",
        )
    return node


def _refuse_loops(
    edges: dict[int, list[tuple[str, dict[str, Any]]]], where: dict[int, str], *, what: str
) -> None:
    """Depth-first over the in-place edges, without recursion; a grey node met again is a loop."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        state[start] = 1
        on_path, labels = [start], [where[start]]
        stack = [iter(edges[start])]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[on_path.pop()] = 2
                labels.pop()
                stack.pop()
                continue
            label, child = step
            if state.get(id(child)) == 1:
                cycle = " -> ".join([*labels[on_path.index(id(child)) :], label])
                raise UnsupportedSchemaError(
                    f"{what} loops without going into the value: {cycle}; validating against it "
                    "would never end (recursion must pass through properties or items)",
                    limit="$ref",
                )
            if not state.get(id(child)):
                state[id(child)] = 1
                on_path.append(id(child))
                labels.append(label)
                stack.append(iter(edges[id(child)]))


def _escaped(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
