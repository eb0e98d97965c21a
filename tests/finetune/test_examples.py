"""The training example, its checks, deduplication and the seeded train/eval split."""

from __future__ import annotations

import pytest

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.examples import (
    ChatExample,
    deduplicate,
    split_examples,
)


def chat(question: str, answer: str = "ok", *, source: str = "") -> ChatExample:
    record = {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }
    return ChatExample.from_openai(record, source=source)


def refusal(record: object) -> FinetuneDataError:
    with pytest.raises(FinetuneDataError) as caught:
        ChatExample.from_openai(record, source="data.jsonl", line=7)  # type: ignore[arg-type]
    assert "data.jsonl:7" in str(caught.value)
    return caught.value


EXAMPLES = [chat(f"question {n}") for n in range(20)]


def test_the_same_seed_gives_the_same_split() -> None:
    assert split_examples(EXAMPLES, seed=4) == split_examples(EXAMPLES, seed=4)


def test_another_seed_gives_another_split() -> None:
    assert split_examples(EXAMPLES, seed=1).eval != split_examples(EXAMPLES, seed=2).eval


def test_the_split_holds_out_the_fraction_and_keeps_every_example() -> None:
    split = split_examples(EXAMPLES, eval_fraction=0.25)
    assert (len(split.train), len(split.eval)) == (15, 5)
    assert sorted(map(id, [*split.train, *split.eval])) == sorted(map(id, EXAMPLES))
    assert len(split) == 20


def test_a_small_set_still_holds_out_one() -> None:
    assert len(split_examples(EXAMPLES[:2], eval_fraction=0.1).eval) == 1


def test_no_eval_fraction_holds_out_nothing() -> None:
    split = split_examples(EXAMPLES, eval_fraction=0)
    assert split.eval == () and len(split.train) == 20


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_an_eval_fraction_outside_0_to_1_is_refused(fraction: float) -> None:
    with pytest.raises(FinetuneDataError, match="eval_fraction"):
        split_examples(EXAMPLES, eval_fraction=fraction)


def test_an_empty_set_is_refused() -> None:
    with pytest.raises(FinetuneDataError, match="empty"):
        split_examples([])


def test_deduplicate_drops_repeats_and_keeps_the_first() -> None:
    first = chat("same", source="a.jsonl:1")
    repeat = chat("same", source="b.jsonl:9")
    unique = deduplicate([first, chat("other"), repeat])
    assert len(unique) == 2 and unique[0].source == "a.jsonl:1"


def test_the_key_ignores_source_and_metadata_but_not_content() -> None:
    tagged = ChatExample(messages=chat("q").messages, source="x", metadata={"category": "c"})
    assert tagged.key() == chat("q").key()
    assert chat("q", "yes").key() != chat("q", "no").key()


def test_a_bare_function_definition_is_wrapped_as_a_tool() -> None:
    record = {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            },
        ],
        "tools": [{"name": "f", "parameters": {"type": "object"}}],
    }
    example = ChatExample.from_openai(record)
    assert example.tools == ({"type": "function", "function": record["tools"][0]},)
    assert example.tool_names == {"f"} and example.has_tool_calls


def test_a_record_that_is_not_an_object_is_refused() -> None:
    assert "got list" in str(refusal([]))


def test_tools_that_are_not_a_list_are_refused() -> None:
    error = refusal({"messages": [{"role": "user", "content": "hi"}], "tools": {"name": "f"}})
    assert error.field == "tools"


def test_a_chat_without_an_assistant_message_is_refused() -> None:
    error = refusal({"messages": [{"role": "user", "content": "hi"}]})
    assert error.field == "messages" and "no assistant message" in str(error)


def test_a_user_message_without_content_is_refused() -> None:
    error = refusal({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]})
    assert error.field == "messages.0.content"


@pytest.mark.parametrize(
    ("arguments", "reason"), [("{not json", "not JSON"), ("[1, 2]", "JSON object")]
)
def test_call_arguments_must_be_a_json_object(arguments: str, reason: str) -> None:
    call = {"id": "c", "function": {"name": "f", "arguments": arguments}}
    error = refusal(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [call]},
            ]
        }
    )
    assert error.field == "messages.1.tool_calls.0.function.arguments" and reason in str(error)


def test_a_call_without_a_name_is_refused() -> None:
    call = {"id": "c", "function": {"arguments": "{}"}}
    error = refusal(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [call]},
            ]
        }
    )
    assert error.field == "messages.1.tool_calls.0.function"
