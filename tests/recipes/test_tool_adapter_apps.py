"""The synthetic tool-calling apps, their cases, the teacher's traces and the BFCL eval directory
(recipes/tool_adapter)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from byzer_agents.evals.checker import check_calls
from byzer_agents.evals.dataset import load_cases
from byzer_agents.tools import ToolSet
from byzer_agents.traces import TraceStore
from byzer_agents.types import ChatRequest
from recipes.tool_adapter.apps import (
    APPS,
    CATEGORIES,
    NO_CALL_ANSWER,
    SyntheticCase,
    number_words,
)
from recipes.tool_adapter.record import (
    BFCL_CATEGORIES,
    bfcl_function,
    generate_cases,
    record_traces,
    split_cases,
    write_bfcl_dir,
)
from recipes.tool_adapter.teacher import Teacher

PER_APP = 46


@pytest.fixture(scope="module")
def cases() -> list[SyntheticCase]:
    return generate_cases(seed=0, per_app=PER_APP)


def test_every_expected_call_validates_and_runs(cases: list[SyntheticCase]) -> None:
    for case in cases:
        offered = {tool.name: tool for tool in case.tools}
        assert len(offered) == len(case.tools), case.id
        for name, arguments in case.expected:
            assert name in offered, f"{case.id}: {name} is not offered"
            offered[name].validate(arguments)
            offered[name].invoke(arguments)
            json.dumps(arguments)  # plain JSON values, as a model writes them


def test_each_app_has_every_category_in_the_planned_shares(cases: list[SyntheticCase]) -> None:
    assert len(APPS) == 12
    per_app = Counter(case.app for case in cases)
    assert set(per_app.values()) == {PER_APP}
    shares = Counter(case.category for case in cases)
    assert set(shares) == set(CATEGORIES)
    assert shares["simple"] > shares["multiple"] > shares["parallel"] > shares["parallel_multiple"]


def test_categories_have_their_shape(cases: list[SyntheticCase]) -> None:
    for case in cases:
        names = [name for name, _ in case.expected]
        if case.category == "simple":
            assert len(case.tools) == 1 and len(names) == 1
        elif case.category == "multiple":
            assert len(case.tools) >= 2 and len(names) == 1
        elif case.category == "parallel":
            assert len(case.tools) == 1 and len(names) >= 2
        elif case.category == "parallel_multiple":
            assert len(case.tools) >= 2 and len(names) >= 2 and len(set(names)) >= 2
        else:
            assert names == []
        assert case.messages[-1]["role"] == "user"


def test_multiple_cases_offer_tools_of_other_apps_as_distractors(
    cases: list[SyntheticCase],
) -> None:
    own = {app.name: {tool.name for tool in app.tools} for app in APPS}
    mixed = [
        case
        for case in cases
        if case.category == "multiple" and {t.name for t in case.tools} - own[case.app]
    ]
    assert len(mixed) > 20


def test_generation_is_deterministic_for_a_seed(cases: list[SyntheticCase]) -> None:
    again = generate_cases(seed=0, per_app=PER_APP)
    assert [(c.id, c.messages, c.expected) for c in again] == [
        (c.id, c.messages, c.expected) for c in cases
    ]
    other = generate_cases(seed=1, per_app=PER_APP)
    assert [c.messages for c in other] != [c.messages for c in cases]


def test_no_user_message_is_in_both_train_and_eval(cases: list[SyntheticCase]) -> None:
    train, evaluation = split_cases(cases, 0.13, seed=0)
    assert len(train) + len(evaluation) == len(cases)
    assert {c.user_message for c in train}.isdisjoint(c.user_message for c in evaluation)
    per_category = Counter(case.category for case in evaluation)
    assert set(per_category) == set(CATEGORIES) and min(per_category.values()) >= 5
    assert {case.app for case in evaluation} == {app.name for app in APPS}


def test_numbers_in_words_and_paraphrased_enums_appear(cases: list[SyntheticCase]) -> None:
    assert number_words(25) == "twenty-five" and number_words(140) == "one hundred forty"
    spelled = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|twenty|thirty)\b")
    assert sum(bool(spelled.search(case.user_message.lower())) for case in cases) > 40
    texts = " ".join(case.user_message for case in cases)
    for paraphrase in ("sushi", "lbs", "°F", "study", "plant-based", "direct flights"):
        assert paraphrase in texts


def test_optional_arguments_are_sometimes_given(cases: list[SyntheticCase]) -> None:
    lengths = Counter(
        len(arguments)
        for case in cases
        for name, arguments in case.expected
        if name == "book_table"
    )
    assert lengths[4] and lengths[5]  # special_request left out, and given


def test_teacher_finds_its_case_behind_the_loops_additions(cases: list[SyntheticCase]) -> None:
    teacher = Teacher(cases)
    case = next(c for c in cases if c.category == "parallel")
    prompt_mode = {"role": "user", "content": "### Tools ...\n\n" + case.user_message}
    feedback = [
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "That call could not be run; try again."},
    ]
    reply = teacher(ChatRequest(messages=[prompt_mode, *feedback]))
    assert [call["name"] for call in reply["tool_calls"]] == [name for name, _ in case.expected]
    irrelevant = next(c for c in cases if c.category == "irrelevance")
    assert teacher(ChatRequest(messages=irrelevant.messages)) == NO_CALL_ANSWER
    with pytest.raises(LookupError):
        teacher(ChatRequest(messages=[{"role": "user", "content": "never asked"}]))


def test_record_traces_runs_each_tool_through_the_loop(
    cases: list[SyntheticCase], tmp_path: Path
) -> None:
    chosen = [next(c for c in cases if c.category == category) for category in CATEGORIES] * 2
    chosen = list({case.id: case for case in cases[::55] + chosen[:5]}.values())[:10]
    path = tmp_path / "traces.db"
    assert record_traces(chosen, path, progress=False) == len(chosen)
    with TraceStore(path) as store:
        runs = store.runs(limit=None)
        assert len(runs) == len(chosen) and {run.status for run in runs} == {"ok"}
        events = [store.events(run.id) for run in reversed(runs)]
    for case, run_events in zip(chosen, events, strict=True):
        tool_events = [event for event in run_events if event.kind == "tool_call"]
        assert [event.tool_name for event in tool_events] == [name for name, _ in case.expected]
        assert all(event.status == "ok" and event.result is not None for event in tool_events)
        (model_call,) = [event for event in run_events if event.kind == "model_call"]
        assert model_call.request["tools"] and model_call.request["messages"] == case.messages


def test_record_traces_refuses_a_run_whose_calls_are_not_the_cases(
    cases: list[SyntheticCase], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = next(c for c in cases if c.category == "simple")
    name, arguments = case.expected[0]

    class WrongTeacher(Teacher):
        def __call__(self, request: ChatRequest) -> dict:
            (argument, value), *rest = arguments.items()
            changed = {argument: _changed(value), **dict(rest)}
            return {"tool_calls": [{"name": name, "arguments": changed}]}

    monkeypatch.setattr("recipes.tool_adapter.record.Teacher", WrongTeacher)
    with pytest.raises(AssertionError, match=case.id):
        record_traces([case], tmp_path / "traces.db", progress=False)


def test_bfcl_dir_loads_and_scores_the_expected_calls_right(
    cases: list[SyntheticCase], tmp_path: Path
) -> None:
    _, evaluation = split_cases(cases, 0.13, seed=0)
    counts = write_bfcl_dir(evaluation, tmp_path)
    assert sum(counts.values()) == len(evaluation)
    by_id = {case.id: case for case in evaluation}
    for category, bfcl_category in BFCL_CATEGORIES.items():
        loaded = load_cases(bfcl_category, data_dir=tmp_path)
        assert len(loaded) == counts[bfcl_category] > 0
        for bfcl_case in loaded:
            case = by_id[bfcl_case.id]
            assert bfcl_case.messages == case.messages
            toolset = ToolSet(bfcl_case.functions)  # as the eval runner reads them
            for name, arguments in case.expected:
                toolset.get(name).validate(arguments)
            calls = [{name: arguments} for name, arguments in case.expected]
            verdict = check_calls(bfcl_case, calls)
            assert verdict.correct, (case.id, verdict.reason)
            if category == "irrelevance":
                assert not check_calls(bfcl_case, [{"list_tasks": {}}]).correct
                continue
            name, arguments = case.expected[0]
            bad = {"made_up": 1}  # list_tasks() takes no arguments when all is default
            if arguments:
                argument = next(iter(arguments))
                bad = {**arguments, argument: _changed(arguments[argument])}
            assert not check_calls(bfcl_case, [{name: bad}, *calls[1:]]).correct, case.id


def test_an_optional_argument_left_out_by_the_case_must_be_left_out(
    cases: list[SyntheticCase], tmp_path: Path
) -> None:
    case = next(
        c
        for c in cases
        if c.category == "simple"
        and c.expected[0][0] == "book_table"
        and "special_request" not in c.expected[0][1]
    )
    write_bfcl_dir([case], tmp_path)
    (bfcl_case,) = load_cases("simple_python", data_dir=tmp_path)
    arguments = case.expected[0][1]
    assert check_calls(bfcl_case, [{"book_table": arguments}]).correct
    given = {**arguments, "special_request": ""}
    assert check_calls(bfcl_case, [{"book_table": given}]).error_kind == "unexpected_argument"


def test_bfcl_functions_state_a_type_for_every_parameter() -> None:
    for app in APPS:
        for tool in app.tools:
            function = bfcl_function(tool)
            text = json.dumps(function)
            assert "$ref" not in text and "anyOf" not in text, tool.name
            for schema in function["parameters"]["properties"].values():
                assert "type" in schema, tool.name


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + " extra"
    if isinstance(value, list):
        return value[:-1] if len(value) > 1 else [*value, value[0]]
    if isinstance(value, dict):
        key = next(iter(value))
        return {**value, key: _changed(value[key])}
    raise TypeError(value)
