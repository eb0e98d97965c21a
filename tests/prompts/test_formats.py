"""The default prompt formats: tool calling, response class, after-chat extraction."""

from __future__ import annotations

import json
import re
from typing import Literal

import pytest
from pydantic import BaseModel

from byzer_agents import (
    PromptTemplateError,
    function_calling_format,
    response_class_format,
    response_class_format_after_chat,
    tool,
)
from byzer_agents.prompts.formats import example_arguments
from byzer_agents.tools import compute_date_range, compute_now


class Story(BaseModel):
    """A short story."""

    title: str
    body: str


def _json_blocks(text: str) -> list[object]:
    """The code blocks of ``text`` that hold JSON (the reply-form block holds a placeholder)."""
    blocks = []
    for block in re.findall(r"```json\n(.*?)\n```", text, re.S):
        try:
            blocks.append(json.loads(block))
        except json.JSONDecodeError:
            continue
    return blocks


def test_function_calling_lists_every_tool_with_its_schema_and_ends_with_the_prompt() -> None:
    text = function_calling_format(
        "What was the date two weeks ago?", [compute_now, compute_date_range]
    )
    assert "### compute_now" in text and "### compute_date_range" in text
    assert json.dumps(compute_date_range.parameters) in text
    assert text.endswith("What was the date two weeks ago?")
    assert "answer in plain text instead" in text


def test_function_calling_example_is_a_valid_call_of_an_offered_tool() -> None:
    text = function_calling_format("hi", [compute_now, compute_date_range])
    example = _json_blocks(text)[-1]
    assert isinstance(example, dict)
    (call,) = example["tool_calls"]
    assert call["name"] == "compute_date_range"  # the tool with the most to show
    compute_date_range.validate(call["arguments"])


def test_tool_choice_none_returns_the_prompt_untouched() -> None:
    assert function_calling_format("hello", [compute_now], "none") == "hello"


def test_tool_choice_required_and_named_tool_say_so() -> None:
    assert "must call at least one tool" in function_calling_format("q", [compute_now], "required")
    forced = function_calling_format("q", [compute_now, compute_date_range], compute_now)
    assert "You must call the tool compute_now." in forced
    assert _json_blocks(forced)[-1] == {"tool_calls": [{"name": "compute_now", "arguments": {}}]}


def test_plain_functions_and_dotted_schema_names_are_accepted() -> None:
    def lookup(term: str) -> str:
        """Look a term up."""
        return term

    text = function_calling_format(
        "q", [lookup, {"name": "math.factorial", "parameters": {"type": "dict"}}]
    )
    assert "### lookup" in text and "### math_factorial" in text


def test_unknown_tool_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="tool_choice 'nope'"):
        function_calling_format("q", [compute_now], "nope")


def test_user_template_replaces_the_format() -> None:
    text = function_calling_format(
        "q", [compute_now], template="{{ prompt }} | {% for t in tools %}{{ t.name }}{% endfor %}"
    )
    assert text == "q | compute_now"


def test_user_template_with_a_missing_variable_names_it() -> None:
    with pytest.raises(PromptTemplateError, match="'colour' is undefined"):
        response_class_format("q", Story, template="{{ colour }}")


def test_response_class_format_asks_for_json_of_the_schema() -> None:
    text = response_class_format("Tell me a story about cats.", Story)
    assert text.startswith("Tell me a story about cats.")
    (schema,) = _json_blocks(text)
    assert schema["properties"].keys() == {"title", "body"}  # type: ignore[index]


def test_after_chat_format_carries_the_schema_without_a_prompt() -> None:
    text = response_class_format_after_chat(Story)
    assert "your answer above" in text
    assert _json_blocks(text)[0]["description"] == "A short story."  # type: ignore[index]


def test_json_in_prompts_is_not_html_escaped() -> None:
    @tool
    def compare(expression: Literal["a < b", "a & b"]) -> None:
        """Compare <things> & more."""

    text = function_calling_format("q", [compare])
    assert "a < b" in text and "&lt;" not in text and "&amp;" not in text


def test_example_arguments_use_enums_defaults_and_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["c", "f"]},
            "n": {"type": "integer"},
            "when": {"type": "string", "format": "date"},
            "maybe": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "skipped": {"type": "string"},
        },
        "required": ["unit", "n", "when", "maybe"],
    }
    assert example_arguments(schema) == {"unit": "c", "n": 1, "when": "2024-01-31", "maybe": 1.5}
