"""Every BFCL V4 tool definition loads as a Tool, and every ground-truth call validates against it,
except the ones whose ground truth contradicts its own schema (listed below with the reason)."""

from __future__ import annotations

import re

import pytest

from byzer_agents.exceptions import ToolArgumentsError
from byzer_agents.tools import Tool, ToolSet
from tests.evals.bfcl import (
    ANSWERED_CATEGORIES,
    CATEGORIES,
    acceptable,
    entries,
    ground_truth_calls,
)

# (entry id, argument): why BFCL's first acceptable value breaks BFCL's own schema.
FIRST_CHOICE_CONTRADICTIONS = {
    ("simple_python_307", "venue"): "true for a 'string' property",
    ("parallel_152", "mod"): "null for a 'float' property (twice: both calls)",
    ("parallel_multiple_21", "x"): "the Python expression \"data['sales']\" for an array",
    ("parallel_multiple_21", "y"): "the Python expression \"data['future_sales']\" for an array",
    ("parallel_multiple_94", "elements"): "fruit names for an array of integers",
}

# (entry id, argument): alternatives BFCL accepts that its schema's enum or format refuses.
ALTERNATIVE_CONTRADICTIONS = {
    ("simple_python_149", "company_names"): "[['Apple'], ['Microsoft']]: nested lists of strings",
    ("simple_python_358", "diet"): "'GF', 'gluten free': not in the enum",
    ("multiple_76", "material"): "'bronze': the enum has 'Bronze'",
    ("parallel_multiple_63", "date"): "'01/15/2021', 'Jan 15, 2021': not format 'date'",
    ("parallel_multiple_143", "specs"): "'open-hole': the enum has 'open hole'",
    ("parallel_multiple_173", "time_frame"): "'1 year', '12 months': not in the enum",
    ("parallel_multiple_194", "unit"): "'ft': the enum has 'feet'",
}

API_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_definition_loads_with_an_api_safe_name(category: str) -> None:
    count = 0
    for entry in entries(category):
        toolset = ToolSet(entry["function"])
        for definition, loaded in zip(entry["function"], toolset, strict=True):
            assert loaded.original_name == definition["name"]
            assert API_NAME.fullmatch(loaded.name)
            assert toolset.get(definition["name"]) is loaded
            assert loaded.parameters["type"] == "object"
            count += 1
    assert count > 0


def _bad_arguments(tool: Tool, arguments: dict) -> set[str]:
    try:
        tool.validate(arguments)
    except ToolArgumentsError as exc:
        return {error.field.split(".")[0] for error in exc.errors}
    return set()


def _first_choices(call, properties):
    chosen = {}
    for name, values in call.arguments.items():
        choices = acceptable(values, properties.get(name, {}))
        if choices:
            chosen[name] = choices[0]
    return chosen


def test_ground_truth_first_choices_validate_except_known_contradictions() -> None:
    failures: set[tuple[str, str]] = set()
    calls = 0
    for category in ANSWERED_CATEGORIES:
        for call in ground_truth_calls(category):
            calls += 1
            tool = Tool.from_schema(call.function)
            arguments = _first_choices(call, tool.parameters["properties"])
            failures |= {(call.entry_id, name) for name in _bad_arguments(tool, arguments)}
    assert calls == 1747
    assert failures == set(FIRST_CHOICE_CONTRADICTIONS)


def test_every_alternative_answer_validates_except_known_contradictions() -> None:
    failures: set[tuple[str, str]] = set()
    for category in ANSWERED_CATEGORIES:
        for call in ground_truth_calls(category):
            tool = Tool.from_schema(call.function)
            properties = tool.parameters["properties"]
            base = _first_choices(call, properties)
            for name, values in call.arguments.items():
                for alternative in acceptable(values, properties.get(name, {}))[1:]:
                    bad = _bad_arguments(tool, {**base, name: alternative}) - {
                        argument
                        for entry_id, argument in FIRST_CHOICE_CONTRADICTIONS
                        if entry_id == call.entry_id
                    }
                    failures |= {(call.entry_id, argument) for argument in bad}
    assert failures == set(ALTERNATIVE_CONTRADICTIONS)
