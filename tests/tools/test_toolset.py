"""ToolSet: anything tool-like accepted, names resolved both ways; ToolChoice parsing."""

from __future__ import annotations

import pytest

from byzer_agents import Tool, ToolChoice, ToolDefinitionError, ToolSet, tool


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


FACTORIAL = {
    "name": "math.factorial",
    "description": "n!",
    "parameters": {"type": "dict", "properties": {"n": {"type": "integer"}}},
}


def test_plain_functions_tools_and_definitions_are_accepted_alike() -> None:
    @tool
    def negate(x: int) -> int:
        return -x

    toolset = ToolSet([add, negate, FACTORIAL])
    assert toolset.names == ["add", "negate", "math_factorial"]
    assert all(isinstance(item, Tool) for item in toolset)
    assert toolset[1] is negate
    assert len(toolset.to_openai()) == 3


def test_lookup_by_api_name_original_name_or_what_the_model_wrote() -> None:
    toolset = ToolSet([FACTORIAL])
    factorial = toolset[0]
    assert toolset.get("math_factorial") is factorial
    assert toolset.get("math.factorial") is factorial
    assert toolset.get("nope") is None


def test_two_tools_with_one_name_are_refused_naming_both() -> None:
    clash = {"name": "math_factorial", "parameters": {}}
    with pytest.raises(ToolDefinitionError, match=r"'math\.factorial' and 'math_factorial'"):
        ToolSet([FACTORIAL, clash])


def test_something_not_tool_like_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="cannot use 42 as a tool"):
        ToolSet([42])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ToolChoice("auto")),
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ("add", ToolChoice("required", "add")),
        (add, ToolChoice("required", "add")),
        (
            {"type": "function", "function": {"name": "math.factorial"}},
            ToolChoice("required", "math_factorial"),
        ),
    ],
)
def test_tool_choice_forms(value: object, expected: ToolChoice) -> None:
    assert ToolChoice.parse(value, ToolSet([add, FACTORIAL])) == expected


def test_tool_choice_of_an_unoffered_tool_lists_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"'subtract'.*'auto', 'none', 'required'.*\['add'\]"):
        ToolChoice.parse("subtract", ToolSet([add]))


def test_tool_choice_back_to_openai_form() -> None:
    assert ToolChoice("auto").to_openai() == "auto"
    assert ToolChoice("required", "add").to_openai() == {
        "type": "function",
        "function": {"name": "add"},
    }


def test_a_plain_function_becomes_one_tool_however_often_it_is_offered() -> None:
    from byzer_agents.tools import as_tool

    def lookup(term: str) -> str:
        return term

    assert as_tool(lookup) is as_tool(lookup)
    assert ToolSet([lookup])[0] is ToolSet([lookup])[0]
