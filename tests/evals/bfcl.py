"""Load the BFCL V4 data shipped in tests/data/bfcl (Apache-2.0, see its LICENSE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BFCL_DIR = Path(__file__).resolve().parent.parent / "data" / "bfcl"
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
ANSWERED_CATEGORIES = CATEGORIES[:-1]
OMITTED = object()
"""An argument whose acceptable values include ``""``: it may be left out."""


@dataclass(frozen=True)
class GroundTruthCall:
    entry_id: str
    function: dict[str, Any]
    """The tool definition, as BFCL writes it."""
    arguments: dict[str, list[Any]]
    """Argument name -> acceptable values (``""`` among them: may be left out)."""


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def entries(category: str) -> Iterator[dict[str, Any]]:
    return read_jsonl(BFCL_DIR / f"BFCL_v4_{category}.json")


def ground_truth_calls(category: str) -> Iterator[GroundTruthCall]:
    functions = {entry["id"]: entry["function"] for entry in entries(category)}
    for answer in read_jsonl(BFCL_DIR / "possible_answer" / f"BFCL_v4_{category}.json"):
        by_name = {function["name"]: function for function in functions[answer["id"]]}
        for call in answer["ground_truth"]:
            ((name, arguments),) = call.items()
            yield GroundTruthCall(answer["id"], by_name[name], arguments)


def acceptable(values: list[Any], schema: dict[str, Any]) -> list[Any]:
    """Every acceptable value of one argument, resolved: BFCL writes a nested object's fields as
    lists of acceptable values too, and those take their first choice here."""
    return [resolve(value, schema) for value in values if value != ""]


def resolve(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict) and schema.get("properties"):
        resolved = {}
        for key, inner in value.items():
            if isinstance(inner, list):
                choices = acceptable(inner, schema["properties"].get(key, {}))
                if choices:
                    resolved[key] = choices[0]
            else:
                resolved[key] = inner
        return resolved
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict) and items.get("properties"):
        return [resolve(item, items) for item in value]
    return value
