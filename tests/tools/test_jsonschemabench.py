"""Real-world schemas as tool parameters: JSONSchemaBench's object schemas load unchanged by the
dialect normaliser, and validation agrees with the benchmark on every valid and invalid instance."""

from __future__ import annotations

from byzer_agents.exceptions import ToolArgumentsError
from byzer_agents.tools import Tool, normalize_schema
from tests.evals.jsonschemabench import is_object_schema, schemas


def test_object_schemas_load_and_validation_agrees_with_every_labelled_instance() -> None:
    loaded = instances = 0
    disagreements = []
    for entry in schemas():
        if not is_object_schema(entry["schema"]):
            continue
        made = Tool.from_schema({"name": entry["id"], "parameters": entry["schema"]})
        loaded += 1
        for test in entry["tests"]:
            instances += 1
            try:
                made.validate(test["data"])
                accepted = True
            except ToolArgumentsError:
                accepted = False
            if accepted != test["valid"]:
                disagreements.append((entry["id"], test["valid"], test["data"]))
    assert loaded == 284
    assert instances == 938
    assert disagreements == []


def test_normaliser_leaves_standard_schemas_unchanged() -> None:
    # Only the root gains what an arguments object needs: "type": "object" and "properties".
    compared = 0
    for entry in schemas():
        schema = entry["schema"]
        if not is_object_schema(schema):
            continue
        expected = {"type": "object", **schema}
        if expected["type"] == "object":
            expected.setdefault("properties", {})
        assert normalize_schema(schema) == expected, entry["id"]
        compared += 1
    assert compared == 284
