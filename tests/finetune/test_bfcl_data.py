"""BFCL cases become training chats: their tools under API-safe names, their ground truth as
calls that validate, irrelevance as a plain answer, the eval slice left out when asked."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from byzer_agents.evals.dataset import (
    HELDOUT_PER_CATEGORY,
    SHIPPED_CATEGORIES,
    heldout_ids,
    load_cases,
)
from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.bfcl_data import (
    NO_CALL_ANSWER,
    BfclExamples,
    bfcl_examples,
    dataset_from_bfcl,
)
from byzer_agents.finetune.examples import ChatExample
from byzer_agents.tools import Tool

API_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Ground truths that contradict their own schema (tests/tools/test_bfcl.py says how).
CONTRADICTING = {"parallel_multiple_21", "parallel_multiple_94"}


@pytest.fixture(scope="module")
def shipped() -> BfclExamples:
    return bfcl_examples()


@pytest.fixture(scope="module")
def by_id(shipped: BfclExamples) -> dict[str, ChatExample]:
    return {example.metadata["id"]: example for example in shipped.examples}


def arguments(example: ChatExample, call: int = 0) -> dict:
    answer = example.messages[-1]
    return json.loads(answer["tool_calls"][call]["function"]["arguments"])


def test_every_shipped_category_loads_with_its_case_count(shipped) -> None:
    counts = Counter(example.metadata["category"] for example in shipped.examples)
    assert counts == {
        "simple_python": 400,
        "multiple": 200,
        "parallel": 200,
        "parallel_multiple": 200 - len(CONTRADICTING),
        "irrelevance": 240,
    }
    assert set(counts) == set(SHIPPED_CATEGORIES)


def test_cases_whose_truth_fails_their_schema_are_skipped_with_the_reason(shipped) -> None:
    assert set(shipped.skipped) == CONTRADICTING
    assert "is not of type 'integer'" in shipped.skipped["parallel_multiple_94"]


def test_skipped_cases_are_logged_by_id(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="byzer_agents.finetune.bfcl_data"):
        examples = dataset_from_bfcl(categories=["parallel_multiple"])
    assert len(examples) == 198
    assert all(case_id in caplog.text for case_id in CONTRADICTING)


def test_tool_names_are_api_safe_and_every_call_validates(shipped) -> None:
    calls = 0
    for example in shipped.examples:
        tools = {tool["function"]["name"]: Tool.from_schema(tool) for tool in example.tools}
        assert all(API_NAME.fullmatch(name) for name in tools)
        for call in example.messages[-1].get("tool_calls", []):
            tools[call["function"]["name"]].validate(call["function"]["arguments"])
            calls += 1
    skipped_calls = sum(
        len(case.ground_truth)
        for case in load_cases("parallel_multiple")
        if case.id in CONTRADICTING
    )
    assert calls == 1747 - skipped_calls  # every ground-truth call of the cases kept


def test_a_dotted_name_is_offered_and_called_api_safe(by_id) -> None:
    example = by_id["simple_python_1"]
    assert [tool["function"]["name"] for tool in example.tools] == ["math_factorial"]
    assert example.messages[-1]["tool_calls"][0]["function"]["name"] == "math_factorial"
    assert arguments(example) == {"number": 5}


def test_the_question_comes_first_and_the_answer_last(by_id) -> None:
    example = by_id["simple_python_0"]
    assert example.messages[0]["role"] == "user" and "triangle" in example.messages[0]["content"]
    assert [m["role"] for m in example.messages] == ["user", "assistant"]
    assert example.source == "bfcl:simple_python_0"
    assert example.metadata == {"category": "simple_python", "id": "simple_python_0"}


def test_irrelevance_is_answered_in_words_without_a_call(by_id) -> None:
    answer = by_id["irrelevance_0"].messages[-1]
    assert answer == {"role": "assistant", "content": NO_CALL_ANSWER}
    (own,) = dataset_from_bfcl(
        categories=["irrelevance"],
        exclude_ids=_all_but("irrelevance_0"),
        no_call_answer="I cannot help with that.",
    )
    assert own.messages[-1]["content"] == "I cannot help with that."


def test_parallel_calls_are_all_in_one_answer(by_id) -> None:
    example = by_id["parallel_29"]
    assert [arguments(example, n)["location"] for n in (0, 1)] == ["Los Angeles", "New York"]
    assert [c["id"] for c in example.messages[-1]["tool_calls"]] == ["call_0", "call_1"]


def test_an_optional_argument_whose_first_value_is_blank_is_left_out(by_id) -> None:
    # parallel_152: "mod": ["", null]
    assert "mod" not in arguments(by_id["parallel_152"])


def test_a_required_argument_whose_first_value_is_blank_takes_the_next(by_id) -> None:
    # simple_python_200: "fuel_efficiency": ["", 25.0], and the schema requires it
    assert arguments(by_id["simple_python_200"])["fuel_efficiency"] == 25.0


def test_nested_objects_take_each_fields_first_value(by_id) -> None:
    conditions = arguments(by_id["simple_python_96"])["conditions"]
    assert conditions[0] == {"field": "age", "operation": ">", "value": "25"}
    grades = arguments(by_id["multiple_9"])["gradeDict"]
    assert grades == {"math": 90, "science": 75, "history": 82, "music": 89}


def test_arguments_the_function_does_not_declare_are_left_out(by_id) -> None:
    assert "type" not in arguments(by_id["parallel_multiple_26"], 1)


def test_heldout_ids_are_the_evenly_spaced_eval_slice() -> None:
    ids = heldout_ids()
    assert len(ids) == HELDOUT_PER_CATEGORY * len(SHIPPED_CATEGORIES)
    assert ids == heldout_ids()
    assert {c.id for c in load_cases("parallel", limit=HELDOUT_PER_CATEGORY)} <= ids
    assert heldout_ids(["multiple"], per_category=2) == {"multiple_0", "multiple_100"}


def test_heldout_ids_are_excluded_when_passed(shipped) -> None:
    held = heldout_ids(["simple_python"])
    examples = dataset_from_bfcl(categories=["simple_python"], exclude_ids=held)
    assert len(examples) == 400 - HELDOUT_PER_CATEGORY
    assert not {example.metadata["id"] for example in examples} & held


def test_an_unknown_category_is_refused() -> None:
    with pytest.raises(FinetuneDataError, match="unknown BFCL category 'chess'"):
        dataset_from_bfcl(categories=["chess"])


def test_a_directory_without_the_category_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FinetuneDataError) as caught:
        dataset_from_bfcl(tmp_path, ["simple_python"])
    assert str(tmp_path) in str(caught.value) and "BFCL_v4_simple_python.json" in str(caught.value)


def test_excluding_every_case_is_refused() -> None:
    with pytest.raises(FinetuneDataError, match="no BFCL case left"):
        dataset_from_bfcl(categories=["irrelevance"], exclude_ids=_all_but())


def _all_but(*kept: str) -> set[str]:
    return {case.id for case in load_cases("irrelevance")} - set(kept)
