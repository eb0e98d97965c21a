"""The AST checker against BFCL's own ground truth: every right answer the possible answers
describe scores correct, and every way of being wrong that BFCL names scores wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from byzer_agents.evals import BfclCase, check_calls, load_cases, normalize_string
from tests.evals.bfcl import ANSWERED_CATEGORIES, first_choice_calls

ALL_ANSWERED = [case for category in ANSWERED_CATEGORIES for case in load_cases(category)]


def _case(category: str, case_id: str) -> BfclCase:
    (found,) = (case for case in load_cases(category) if case.id == case_id)
    return found


def _properties(case: BfclCase, name: str) -> dict[str, Any]:
    (function,) = (f for f in case.functions if f["name"] == name)
    return function["parameters"]


# --- every right answer is right ---------------------------------------------------------------


@pytest.mark.parametrize("minimal", [False, True], ids=["every-argument", "required-only"])
def test_first_acceptable_values_of_every_possible_answer_score_correct(minimal: bool) -> None:
    wrong = {}
    for case in ALL_ANSWERED:
        verdict = check_calls(case, first_choice_calls(case, minimal=minimal))
        if not verdict.correct:
            wrong[case.id] = verdict.reason
    assert len(ALL_ANSWERED) == 1000
    assert wrong == {}


def test_every_alternative_acceptable_value_scores_correct() -> None:
    from tests.evals.bfcl import _first_choice

    wrong, tried = {}, 0
    for case in ALL_ANSWERED:
        right = first_choice_calls(case)
        for index, expected in enumerate(case.ground_truth):
            ((name, arguments),) = expected.items()
            properties = _properties(case, name)["properties"]
            for argument, values in arguments.items():
                for alternative in [v for v in values[1:] if v != ""]:
                    if argument not in properties:
                        continue
                    calls = copy.deepcopy(right)
                    calls[index][name][argument] = _first_choice(alternative, properties[argument])
                    tried += 1
                    verdict = check_calls(case, calls)
                    if not verdict.correct:
                        wrong[(case.id, argument, repr(alternative))] = verdict.reason
    assert tried > 1500
    assert wrong == {}


def test_parallel_calls_score_correct_in_any_order() -> None:
    for category in ("parallel", "parallel_multiple"):
        for case in load_cases(category):
            calls = first_choice_calls(case)
            assert check_calls(case, calls[::-1]).correct, case.id


def test_an_answer_is_not_wrong_for_its_order_where_bfcl_greedy_matching_would_fail_it() -> None:
    # parallel_178 accepts Microsoft or Apple for its first call (2022-01-01): matched greedily,
    # Apple's 2022-01-01 call coming first is taken by it, and Apple's own expected call is left
    # without one. A one-to-one matching finds the assignment.
    case = _case("parallel", "parallel_178")
    calls = first_choice_calls(case)[::-1]
    assert [next(iter(c.values()))["company_name"] for c in calls[:3]] == ["Apple"] * 2 + [
        "Microsoft"
    ]
    assert check_calls(case, calls).correct


def test_irrelevance_is_correct_without_a_call_and_wrong_with_one() -> None:
    (case,) = load_cases("irrelevance", limit=1)
    assert check_calls(case, []).correct
    name = case.functions[0]["name"]
    verdict = check_calls(case, [{name: {}}])
    assert not verdict.correct and verdict.error_kind == "called_when_irrelevant"


# --- every way of being wrong is wrong ---------------------------------------------------------


def test_a_wrong_function_name_is_wrong_in_every_case() -> None:
    for case in ALL_ANSWERED:
        calls = first_choice_calls(case)
        ((name, arguments),) = calls[0].items()
        calls[0] = {name + "_v2": arguments}
        verdict = check_calls(case, calls)
        assert not verdict.correct, case.id
        assert verdict.error_kind in ("wrong_function", "no_match")


def test_a_missing_required_argument_is_wrong_in_every_case() -> None:
    dropped = 0
    for case in ALL_ANSWERED:
        calls = first_choice_calls(case)
        ((name, arguments),) = calls[0].items()
        for required in _properties(case, name).get("required", []):
            if required in arguments:
                del arguments[required]
                dropped += 1
                break
        else:
            continue
        verdict = check_calls(case, calls)
        assert not verdict.correct, case.id
    assert dropped > 950


def test_an_extra_call_is_wrong_in_every_case() -> None:
    for case in ALL_ANSWERED:
        calls = first_choice_calls(case)
        verdict = check_calls(case, [*calls, calls[0]])
        assert not verdict.correct and verdict.error_kind == "wrong_count", case.id


def test_no_call_is_wrong_where_one_is_expected() -> None:
    for case in ALL_ANSWERED:
        assert check_calls(case, []).error_kind == "wrong_count", case.id


def _wrong_value(value: Any) -> Any:
    """A value of the same type that no possible answer holds."""
    if isinstance(value, bool):
        return None  # bools have no third value: the type check refuses None
    if isinstance(value, (int, float)):
        return value + 987654321
    if isinstance(value, str):
        return value + " nowhere"
    if isinstance(value, list):
        return [*value, value[0] if value else "extra"]
    return {**value, "unexpected_key": 1}


def test_a_wrong_value_is_wrong_in_every_case() -> None:
    for case in ALL_ANSWERED:
        calls = first_choice_calls(case)
        (arguments,) = calls[0].values()
        if not arguments:
            continue
        argument = next(iter(arguments))
        arguments[argument] = _wrong_value(arguments[argument])
        verdict = check_calls(case, calls)
        assert not verdict.correct, (case.id, argument, arguments[argument])
        assert verdict.error_kind in ("wrong_value", "wrong_type", "no_match"), case.id


def test_an_argument_the_function_does_not_know_is_wrong() -> None:
    case = _case("simple_python", "simple_python_0")
    calls = first_choice_calls(case)
    calls[0]["calculate_triangle_area"]["colour"] = "red"
    verdict = check_calls(case, calls)
    assert verdict.error_kind == "unexpected_argument" and "'colour'" in (verdict.reason or "")


# --- the rules one by one (simple_python_0: base 10, height 5, unit "units" or left out) -------


def _simple(**arguments: Any) -> bool:
    case = _case("simple_python", "simple_python_0")
    return check_calls(case, [{"calculate_triangle_area": arguments}]).correct


def test_an_optional_argument_whose_answers_hold_empty_may_be_left_out() -> None:
    assert _simple(base=10, height=5)
    assert _simple(base=10, height=5, unit="units")
    assert not _simple(base=10, height=5, unit="metres")


def test_a_float_for_an_integer_and_a_string_for_a_number_are_wrong_types() -> None:
    assert not _simple(base=10.0, height=5)
    assert not _simple(base="10", height=5)
    assert not _simple(base=True, height=5)


def test_an_int_passes_for_a_float() -> None:
    case = _case("parallel_multiple", "parallel_multiple_12")
    calls = first_choice_calls(case)
    assert calls[0]["calculate_magnetic_field"] == {"current": 4.0, "distance": 2.0}
    calls[0]["calculate_magnetic_field"] = {"current": 4, "distance": 2}
    assert check_calls(case, calls).correct


def test_strings_compare_as_bfcl_normalises_them() -> None:
    assert normalize_string("Los Angeles, CA") == normalize_string("los-angeles ca")
    assert _simple(base=10, height=5, unit="Units")
    assert _simple(base=10, height=5, unit=" u.n_i-t*s^ ")
    assert not _simple(base=10, height=5, unit="unit")


def test_a_parallel_answer_needs_a_distinct_call_for_every_expected_call() -> None:
    case = _case("parallel", "parallel_29")
    calls = first_choice_calls(case)
    verdict = check_calls(case, [calls[0], calls[0]])
    assert not verdict.correct and verdict.error_kind == "no_match"


def test_dict_values_compare_key_by_key_with_normalised_strings() -> None:
    case = _case("parallel", "parallel_29")
    calls = first_choice_calls(case)
    (arguments,) = calls[0].values()
    assert arguments["population"] == {"adults": 2, "children": 2, "singles": 0}
    arguments["location"] = "los angeles, ca"
    assert check_calls(case, calls).correct
    arguments["population"] = {"adults": 2, "children": 2}
    assert not check_calls(case, calls).correct
    arguments["population"] = {"adults": 2, "children": 2, "singles": 0, "pets": 1}
    assert not check_calls(case, calls).correct
