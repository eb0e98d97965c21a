"""The default prompt formats: tool calling, response class, after-chat extraction."""

from __future__ import annotations

import datetime
import json
import re
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from byzer_agents import (
    PromptTemplateError,
    function_calling_format,
    response_class_format,
    response_class_format_after_chat,
    tool,
)
from byzer_agents.tools import compute_date_range, compute_now


class Story(BaseModel):
    """A short story."""

    title: str = Field(description="The story's title")
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


def _example(text: str) -> str:
    """The example call the prompt shows (the plain code block after "For example")."""
    return re.search(r"For example[^\n]*\n```\n(.*?)\n```", text, re.S).group(1)  # type: ignore[union-attr]


def test_function_calling_example_names_an_offered_tool_with_placeholders_only() -> None:
    text = function_calling_format("hi", [compute_now, compute_date_range])
    example = _example(text)
    assert example == (
        '{"tool_calls": [{"name": "compute_date_range", "arguments": '
        '{"count": <integer>, "unit": <one of "day", "week", "month", "year">}}]}'
    )


def test_function_calling_example_holds_no_value_a_model_could_copy() -> None:
    # The old example showed {"count": 1, "unit": "day"}: the shipped model answered "the last
    # 2 weeks" with exactly that. A placeholder is not JSON, so a copy never parses as a call.
    @tool
    def book(
        city: str,
        nights: int,
        when: datetime.date,
        unit: Literal["c", "f"] = "c",
        late: bool = False,
    ) -> None:
        """Book a room."""

    text = function_calling_format("q", [book])
    example = _example(text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(example)
    arguments = re.search(r'"arguments": \{(.*)\}\}\]\}$', example).group(1)  # type: ignore[union-attr]
    values = re.findall(r'"\w+": (<[^>]*>)', arguments)
    assert values == ["<string>", "<integer>", "<string, date>"]  # required ones, all placeholders
    assert not _json_blocks(text)[1:], "no JSON block beyond the reply form"


def test_tool_choice_none_returns_the_prompt_untouched() -> None:
    assert function_calling_format("hello", [compute_now], "none") == "hello"


def test_tool_choice_required_and_named_tool_say_so() -> None:
    assert "must call at least one tool" in function_calling_format("q", [compute_now], "required")
    forced = function_calling_format("q", [compute_now, compute_date_range], compute_now)
    assert "You must call the tool compute_now." in forced
    assert _example(forced) == '{"tool_calls": [{"name": "compute_now", "arguments": {}}]}'


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


def test_response_class_format_shows_the_form_the_notes_and_the_schema() -> None:
    text = response_class_format("Tell me a story about cats.", Story)
    assert text.startswith("Tell me a story about cats.")
    assert '{"title": <string>, "body": <string>}' in text
    assert "- title (string, required): The story's title" in text
    (schema,) = _json_blocks(text)
    assert schema["properties"].keys() == {"title", "body"}  # type: ignore[index]


def test_response_class_format_keeps_descriptions_out_of_value_positions() -> None:
    # Shown beside its key, "What the meeting is about" came back as the topic.
    text = response_class_format("q", Story)
    for line in text.splitlines():
        if "The story's title" in line:
            assert line.startswith("- title ("), line
    assert "description" not in json.dumps(_json_blocks(text))


def test_after_chat_format_carries_the_form_without_a_prompt() -> None:
    text = response_class_format_after_chat(Story)
    assert text.startswith("Now write the information in your answer above")
    assert '{"title": <string>, "body": <string>}' in text
    assert _json_blocks(text)[0]["required"] == ["title", "body"]  # type: ignore[index]


def test_json_in_prompts_is_not_html_escaped() -> None:
    @tool
    def compare(expression: Literal["a < b", "a & b"]) -> None:
        """Compare <things> & more."""

    text = function_calling_format("q", [compare])
    assert "a < b" in text and "&lt;" not in text and "&amp;" not in text
