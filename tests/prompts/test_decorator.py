"""@prompt(): docstring templates rendered with the call's arguments, and run on a bound model.

The model here is a recording stand-in for the client of the chat issue: these tests check how
@prompt renders and dispatches on the return annotation, not a model's answers.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from byzer_agents import PromptTemplateError, prompt


class Story(BaseModel):
    title: str


@dataclass
class Answer:
    output: str = ""
    value: Any = None


@dataclass
class RecordingClient:
    """Answers every chat with fixed values and records what it was asked."""

    output: str = "plain text"
    value: Any = None
    calls: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = field(default_factory=list)

    def chat_oai(self, conversations: list[dict[str, Any]], **kwargs: Any) -> list[Answer]:
        self.calls.append(("chat_oai", conversations, kwargs))
        return [Answer(output=self.output, value=self.value)]

    def stream_chat_oai(self, conversations: list[dict[str, Any]], **kwargs: Any) -> Iterator[str]:
        self.calls.append(("stream_chat_oai", conversations, kwargs))
        return iter(["plain ", "text"])


@prompt()
def tell_story(topic: str, words: int = 50) -> Story:
    """
    Write a story of about {{ words }} words about {{ topic }}, for {{ reader }}.
    """
    return {"reader": "children"}


def test_prompt_renders_arguments_defaults_and_the_returned_dict() -> None:
    assert tell_story.prompt("cats") == "Write a story of about 50 words about cats, for children."
    assert tell_story.prompt(topic="dogs", words=10).startswith("Write a story of about 10 words")


def test_plain_call_without_a_model_returns_the_prompt() -> None:
    assert tell_story("cats") == tell_story.prompt("cats")


def test_wrong_call_arguments_name_the_prompt_and_its_signature() -> None:
    with pytest.raises(TypeError, match=r"tell_story\(topic.*missing a required argument: 'topic'"):
        tell_story.prompt()


def test_a_missing_template_variable_is_an_error_not_an_empty_string() -> None:
    @prompt()
    def greet(name: str) -> str:
        """Hello {{ name }} from {{ place }}"""

    with pytest.raises(PromptTemplateError, match=r"greet.*'place' is undefined"):
        greet.prompt("Ada")


def test_a_function_without_docstring_is_refused_at_decoration() -> None:
    with pytest.raises(PromptTemplateError, match="needs a docstring"):

        @prompt()
        def empty() -> str: ...


def test_a_template_syntax_error_is_refused_at_decoration() -> None:
    with pytest.raises(PromptTemplateError, match="does not compile"):

        @prompt()
        def broken() -> str:
            """{% for x in items %}"""


def test_body_returning_something_other_than_a_dict_is_refused() -> None:
    @prompt()
    def odd() -> str:
        """text"""
        return "not a dict"  # type: ignore[return-value]

    with pytest.raises(TypeError, match="may return None or a dict"):
        odd.prompt()


def test_typed_return_asks_for_the_response_class_and_returns_its_value() -> None:
    client = RecordingClient(value=Story(title="Whiskers"))
    result = tell_story.with_llm(client).run("cats")
    assert result == Story(title="Whiskers")
    ((method, conversations, kwargs),) = client.calls
    assert method == "chat_oai"
    assert conversations == [{"role": "user", "content": tell_story.prompt("cats")}]
    assert kwargs == {"response_class": Story}


def test_str_return_gives_the_output_text() -> None:
    @prompt()
    def summarise(text: str) -> str:
        """Summarise: {{ text }}"""

    client = RecordingClient(output="short")
    assert summarise.with_llm(client).run("long text") == "short"
    assert "response_class" not in client.calls[0][2]


@pytest.mark.parametrize("annotation", [Iterator[str], Generator[str, None, None]])
def test_iterator_return_streams_deltas(annotation: Any) -> None:
    @prompt()
    def chat(question: str) -> str:
        """{{ question }}"""

    client = RecordingClient()
    streamed = chat.with_return_type(annotation).with_llm(client).run("hi")
    assert list(streamed) == ["plain ", "text"]
    assert client.calls[0][0] == "stream_chat_oai"


def test_extractor_turns_the_text_into_the_result() -> None:
    client = RecordingClient(output="42 apples")
    count = tell_story.with_llm(client).with_extractor(lambda text: int(text.split()[0]))
    assert count.run("apples") == 42
    assert "response_class" not in client.calls[0][2]


def test_options_pass_model_and_llm_config_and_refuse_unknown_keys() -> None:
    client = RecordingClient(value=Story(title="t"))
    configured = tell_story.with_llm(client).options(
        {"model": "smollm2", "llm_config": {"max_length": 64}}
    )
    configured.run("cats")
    assert client.calls[0][2] == {
        "response_class": Story,
        "model": "smollm2",
        "llm_config": {"max_length": 64},
    }
    with pytest.raises(ValueError, match=r"\['colour'\].*allowed: \['model', 'llm_config'\]"):
        tell_story.options({"colour": "red"})


def test_each_with_call_returns_a_new_object_and_shares_nothing() -> None:
    first, second = RecordingClient(value=Story(title="a")), RecordingClient(value=Story(title="b"))
    with_first = tell_story.with_llm(first)
    with_second = tell_story.with_llm(second).options({"model": "other"})
    assert tell_story.llm is None and tell_story.run_options == {}
    assert with_first.run("x").title == "a"
    assert with_second.run("x").title == "b"
    assert "model" not in first.calls[0][2]


def test_run_without_a_model_says_how_to_bind_one() -> None:
    with pytest.raises(ValueError, match=r"with_llm\(llm\)"):
        tell_story.run("cats")


def test_prompt_bound_at_decoration_runs_on_plain_call() -> None:
    client = RecordingClient(output="bonjour")

    @prompt(llm=client)
    def translate(text: str) -> str:
        """Translate to French: {{ text }}"""

    assert translate("hello") == "bonjour"


class Assistant:
    def __init__(self, persona: str) -> None:
        self.persona = persona

    @prompt()
    def introduce(self, name: str) -> str:
        """I am {{ persona }}; hello {{ name }}."""
        return {"persona": self.persona}


def test_method_prompts_bind_self_and_leave_it_out_of_the_context() -> None:
    assert Assistant("a pirate").introduce.prompt("Ada") == "I am a pirate; hello Ada."
    assert Assistant("a robot").introduce("Bob") == "I am a robot; hello Bob."


class _Writer:
    """A class whose prompts find their model on the instance, as in Byzer-LLM's examples."""

    def __init__(self, client: RecordingClient) -> None:
        self.llm = client

    @prompt(lambda self: self.llm, render="simple")
    def title_for(self, topic: str) -> str:
        """Give a title for a story about {topic}."""


def test_simple_render_fills_format_placeholders_and_leaves_jinja_syntax_alone() -> None:
    @prompt(render="simple")
    def ask(name: str) -> str:
        """Hello {name}, {{ not jinja }}"""

    assert ask.prompt("Ada") == "Hello Ada, { not jinja }"


def test_simple_render_names_the_placeholder_it_cannot_fill() -> None:
    @prompt(render="simple")
    def ask(name: str) -> str:
        """Hello {nobody}"""

    with pytest.raises(PromptTemplateError, match="nobody"):
        ask.prompt("Ada")


def test_an_unknown_renderer_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"render must be one of \['jinja2', 'simple'\]"):
        prompt(render="mustache")


def test_a_method_prompt_runs_on_the_model_its_instance_holds() -> None:
    first, second = RecordingClient(output="One"), RecordingClient(output="Two")
    assert _Writer(first).title_for("cats") == "One"
    assert _Writer(second).title_for("dogs") == "Two"
    assert first.calls[0][1] == [
        {"role": "user", "content": "Give a title for a story about cats."}
    ]
    assert len(second.calls) == 1


def test_with_llm_replaces_the_instance_lookup() -> None:
    held, chosen = RecordingClient(output="held"), RecordingClient(output="chosen")
    bound = _Writer(held).title_for.with_llm(chosen)
    assert bound("cats") == "chosen" and not held.calls
