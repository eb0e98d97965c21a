"""The runner end to end against scripted models: the request each case makes, how the answers are
read (native tool calls, calls written in text, prose, calls the schema refuses, failures), and
the report and records it gives back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from byzer_agents import LLM
from byzer_agents.core.protocol import Capabilities
from byzer_agents.evals import (
    SHIPPED_CATEGORIES,
    BfclCase,
    CaseRecord,
    EvalReport,
    load_cases,
    read_records,
    run_bfcl,
)
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.tools import ToolSet
from byzer_agents.types import ChatRequest
from tests.evals.bfcl import first_choice_calls

NATIVE = Capabilities(native_tools=True)
CASES = [case for category in SHIPPED_CATEGORIES for case in load_cases(category, limit=6)]


def _case_of(request: ChatRequest, cases: list[BfclCase]) -> BfclCase:
    asked = str(request.messages[-1]["content"])
    (case,) = (case for case in cases if case.messages[-1]["content"] in asked)
    return case


def _api_calls(case: BfclCase) -> list[dict[str, Any]]:
    """The right calls as a model sees the tools: under their API-safe names."""
    toolset = ToolSet(case.functions)
    return [
        {"name": toolset.get(name).name, "arguments": arguments}  # type: ignore[union-attr]
        for call in first_choice_calls(case)
        for name, arguments in call.items()
    ]


def _oracle(cases: list[BfclCase], *, as_text: bool = False) -> Callable[[ChatRequest], Any]:
    def answer(request: ChatRequest) -> Any:
        case = _case_of(request, cases)
        if case.kind == "irrelevance":
            return "None of these functions can answer that."
        calls = _api_calls(case)
        if as_text:
            return "Here you go:\n```json\n" + json.dumps({"tool_calls": calls}) + "\n```"
        return {"tool_calls": calls}

    return answer


def _run(replies: list[Any], cases: list[BfclCase], **options: Any) -> EvalReport:
    backend = ScriptedBackend(replies, capabilities=options.pop("capabilities", NATIVE))
    return run_bfcl(LLM.from_backend(backend, model="scripted"), cases, **options)


def test_right_native_calls_score_every_category_fully() -> None:
    report = _run([_oracle(CASES)] * len(CASES), CASES)
    assert [score.category for score in report.categories] == list(SHIPPED_CATEGORIES)
    assert all(score.accuracy == 1.0 and score.cases == 6 for score in report.categories)
    assert report.accuracy == report.ast_summary == 1.0
    assert report.unparseable_share == 0.0


def test_right_calls_written_in_text_are_read_by_the_tolerant_parser() -> None:
    report = _run([_oracle(CASES, as_text=True)] * len(CASES), CASES, capabilities=Capabilities())
    assert report.accuracy == 1.0


def test_each_case_offers_its_functions_under_api_names_with_auto_choice_and_no_retry() -> None:
    (case,) = load_cases("simple_python", limit=1)
    backend = ScriptedBackend(["I cannot."], capabilities=NATIVE)
    report = run_bfcl(LLM.from_backend(backend), [case], llm_config={"max_tokens": 64})
    (request,) = backend.requests  # max_retries=0: one request even for a wrong answer
    assert request.tool_choice == "auto"
    assert [tool["function"]["name"] for tool in request.tools or []] == ["calculate_triangle_area"]
    assert request.messages == case.messages
    assert (request.temperature, request.max_tokens) == (0, 64)
    assert request.constrained_decoding is None
    assert report.constrained_decoding is True


def test_unconstrained_runs_ask_the_backend_to_drop_its_grammar() -> None:
    (case,) = load_cases("simple_python", limit=1)
    backend = ScriptedBackend(["no"], capabilities=NATIVE)
    report = run_bfcl(LLM.from_backend(backend), [case], constrained_decoding=False)
    assert backend.requests[0].constrained_decoding is False
    assert report.constrained_decoding is False


def test_prose_where_a_call_is_expected_is_unparseable_and_right_for_irrelevance() -> None:
    cases = [load_cases("multiple", limit=1)[0], load_cases("irrelevance", limit=1)[0]]
    report = _run(["The answer is 42.", "The answer is 42."], cases)
    multiple, irrelevance = report.records
    assert (multiple.correct, multiple.unparseable, multiple.error_kind) == (
        False,
        True,
        "unparseable",
    )
    assert (irrelevance.correct, irrelevance.unparseable) == (True, False)
    assert report.unparseable_share == 1.0
    assert [score.unparseable for score in report.categories] == [1, None]


def test_calls_the_schema_refuses_are_scored_as_written() -> None:
    (case,) = load_cases("simple_python", limit=1)  # calculate_triangle_area(base: int, height)
    reply = {"tool_calls": [{"name": "calculate_triangle_area", "arguments": {"base": "ten"}}]}
    (record,) = _run([reply], [case]).records
    assert record.schema_error and "height" in record.schema_error
    assert record.calls == [{"calculate_triangle_area": {"base": "ten"}}]
    assert (record.correct, record.error_kind) == (False, "missing_required")


def test_dotted_names_are_scored_under_their_original_names() -> None:
    (case,) = (c for c in load_cases("simple_python") if c.id == "simple_python_1")
    reply = {"tool_calls": [{"name": "math_factorial", "arguments": {"number": 5}}]}
    (record,) = _run([reply], [case]).records
    assert record.calls == [{"math.factorial": {"number": 5}}] and record.correct


def test_an_unknown_function_is_read_and_scored_wrong() -> None:
    (case,) = load_cases("simple_python", limit=1)
    reply = {"tool_calls": [{"name": "area_of_circle", "arguments": {"radius": 1}}]}
    (record,) = _run([reply], [case]).records
    assert record.calls == [{"area_of_circle": {"radius": 1}}]
    assert record.error_kind == "wrong_function" and "no tool named" in (record.schema_error or "")


def test_arguments_that_are_not_an_object_make_the_output_unparseable() -> None:
    (case,) = load_cases("simple_python", limit=1)
    reply = {"tool_calls": [{"name": "calculate_triangle_area", "arguments": "base=10, height=5"}]}
    (record,) = _run([reply], [case]).records
    assert record.unparseable and not record.correct and record.calls == []


def test_a_failing_model_is_recorded_and_the_run_goes_on() -> None:
    cases = load_cases("simple_python", limit=2)
    report = _run([ConnectionError("endpoint down"), _oracle(cases)], cases)
    failed, answered = report.records
    assert failed.error_kind == "model_error" and "endpoint down" in (failed.reason or "")
    assert answered.correct
    assert report.categories[0].model_errors == 1


def test_progress_hears_every_record_in_order(tmp_path: Path) -> None:
    cases = load_cases("parallel", limit=3)
    heard: list[CaseRecord] = []
    report = _run([_oracle(cases)] * 3, cases, on_case=heard.append)
    assert heard == report.records and [r.id for r in heard] == [c.id for c in cases]
    assert all(record.seconds > 0 for record in heard)


def test_records_round_trip_through_jsonl(tmp_path: Path) -> None:
    cases = [load_cases("parallel_multiple", limit=1)[0], load_cases("irrelevance", limit=1)[0]]
    report = _run([_oracle(cases)] * 2, cases)
    path = report.write_jsonl(tmp_path / "out" / "bfcl.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["id"] == "parallel_multiple_0"
    assert read_records(path) == report.records


def test_required_tool_choice_forces_a_call_and_other_choices_are_refused() -> None:
    (case,) = load_cases("irrelevance", limit=1)
    backend = ScriptedBackend([_oracle([case])] * 2, capabilities=NATIVE)
    report = run_bfcl(LLM.from_backend(backend), [case], tool_choice="required")
    assert backend.requests[0].tool_choice == "required"
    assert report.tool_choice == "required"
    with pytest.raises(ValueError, match="tool_choice must be 'auto' or 'required', got 'none'"):
        run_bfcl(LLM.from_backend(backend), [case], tool_choice="none")  # type: ignore[arg-type]
