"""Test helpers over the BFCL V4 data the package ships (byzer_agents/evals/data/bfcl, Apache-2.0,
see its LICENSE), read through the product's own loader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from byzer_agents.evals import BFCL_DATA_DIR, SHIPPED_CATEGORIES, BfclCase, load_cases
from byzer_agents.evals.dataset import read_jsonl

BFCL_DIR = BFCL_DATA_DIR
CATEGORIES = SHIPPED_CATEGORIES
ANSWERED_CATEGORIES = CATEGORIES[:-1]


@dataclass(frozen=True)
class GroundTruthCall:
    entry_id: str
    function: dict[str, Any]
    """The tool definition, as BFCL writes it."""
    arguments: dict[str, list[Any]]
    """Argument name -> acceptable values (``""`` among them: may be left out)."""


def entries(category: str) -> Iterator[dict[str, Any]]:
    """The raw entries of a category, as BFCL writes them."""
    return read_jsonl(BFCL_DIR / f"BFCL_v4_{category}.json")


def ground_truth_calls(category: str) -> Iterator[GroundTruthCall]:
    for case in load_cases(category):
        by_name = {function["name"]: function for function in case.functions}
        for call in case.ground_truth:
            ((name, arguments),) = call.items()
            yield GroundTruthCall(case.id, by_name[name], arguments)


def first_choice_calls(case: BfclCase, *, minimal: bool = False) -> list[dict[str, dict[str, Any]]]:
    """The case's expected calls as a model that answered right would write them (BFCL's decoded
    form): each argument's first acceptable value. ``minimal``: optional arguments (``""`` among
    their values, and not required by the function) are left out instead.

    Arguments the function does not declare are left out: BFCL lists a few (parallel_multiple_26
    puts its transactions' ``type`` beside them), and its checker refuses them."""
    calls = []
    for call in case.ground_truth:
        ((name, arguments),) = call.items()
        (function,) = (f for f in case.functions if f["name"] == name)
        properties = function["parameters"].get("properties", {})
        required = function["parameters"].get("required", [])
        chosen = {}
        for argument, values in arguments.items():
            choices = [value for value in values if value != ""]
            optional = "" in values and argument not in required
            if argument in properties and choices and not (minimal and optional):
                chosen[argument] = _first_choice(choices[0], properties[argument])
        calls.append({name: chosen})
    return calls


def _first_choice(value: Any, schema: dict[str, Any]) -> Any:
    """BFCL writes each key of a dict argument (and of each dict in a list of them) as a list of
    acceptable values, one level deep: take the first of each, leaving out a key whose is ``""``."""
    if schema.get("type") == "dict" and isinstance(value, dict):
        return {key: inner[0] for key, inner in value.items() if inner and inner[0] != ""}
    items = schema.get("items") or {}
    if isinstance(value, list) and items.get("type") == "dict":
        return [_first_choice(item, items) for item in value]
    return value


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
