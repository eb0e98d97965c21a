"""BFCL's AST check of a model's tool calls against a case's possible answers, rule for rule as
the leaderboard's ``ast_checker`` (gorilla, bfcl_eval/eval_checker/ast_eval/ast_checker.py)
applies them to Python categories, so the accuracies read beside its published ones.

The rules: the expected number of calls (one for simple and multiple); the expected function;
every required argument present; no argument the function or the answer does not know; each
value of the declared type (an int passes for a float) and among the acceptable ones; an argument
the answer lists may be left out only when ``""`` is among its acceptable values. Strings compare
after BFCL's normalisation (lowercase, without spaces and ``,./-_*^``, ``'`` read as ``"``), in
lists and dicts too; lists and dicts compare element-wise. Parallel categories match every
expected call with a distinct output call, in any order. Irrelevance is correct when no call is
made.

What is fragile is that BFCL's own quirks are part of the metric, and kept: a value of another
type than declared passes when it has the type of the acceptable values (BFCL's "variable" case,
compared exactly); the item types of an optional array are not checked; an optional list or list
of dicts may be given as ``[]``. One is not: BFCL matches parallel calls greedily (each expected
call in turn takes the first output call that fits), so an answer can fail for its order alone
when one output call fits two expected ones (parallel_178 accepts Microsoft or Apple for its first
call); here the match is a perfect matching, which differs from BFCL's only in such cases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from byzer_agents.evals.dataset import BfclCase
from byzer_agents.exceptions import ConfigurationError

__all__ = ["Call", "ErrorKind", "Verdict", "check_calls", "normalize_string"]

Call = Mapping[str, Mapping[str, Any]]
"""One tool call in BFCL's decoded form: ``{function_name: {argument: value}}``."""

ErrorKind = Literal[
    "unparseable",
    "model_error",
    "called_when_irrelevant",
    "wrong_count",
    "wrong_function",
    "missing_required",
    "unexpected_argument",
    "wrong_type",
    "wrong_value",
    "missing_argument",
    "no_match",
]

# BFCL's declared types as Python types; JSON Schema's own names for the same, as the normalised
# dialect writes them.
_PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "number": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "object": dict,
    "any": str,
}
_ITEM_CHECKED = frozenset({"array", "tuple"})
_IGNORED_IN_STRINGS = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Verdict:
    """Whether a case's calls are right and, when not, what kind of wrong and why."""

    correct: bool
    error_kind: ErrorKind | None = None
    reason: str | None = None
    """Why the calls are wrong, naming the argument and the value."""


_RIGHT = Verdict(True)


def _wrong(kind: ErrorKind, reason: str) -> Verdict:
    return Verdict(False, kind, reason)


def normalize_string(text: str) -> str:
    """BFCL's string normalisation: "April 1, 2024" and "april 1 2024" compare equal."""
    return _IGNORED_IN_STRINGS.sub("", text).lower().replace("'", '"')


def check_calls(case: BfclCase, calls: Sequence[Call]) -> Verdict:
    """Whether ``calls``, decoded from the model's output, answer ``case`` as BFCL scores it."""
    if case.kind == "irrelevance":
        if not calls:
            return _RIGHT
        return _wrong(
            "called_when_irrelevant", f"called {_names(calls)}; no function fits the question"
        )
    expected = case.ground_truth
    if len(calls) != len(expected):
        return _wrong(
            "wrong_count",
            f"made {len(calls)} call(s); {len(expected)} expected: {_names(expected)}",
        )
    if case.kind == "parallel":
        return _match_in_any_order(case, calls)
    return _check_call(case, calls[0], expected[0])


def _names(calls: Sequence[Call]) -> list[str]:
    return [name for call in calls for name in call]


def _match_in_any_order(case: BfclCase, calls: Sequence[Call]) -> Verdict:
    """Every expected call matched by a distinct output call: a perfect matching of the two, where
    BFCL takes the first output call that fits each expected call in turn."""
    verdicts = [
        [_check_call(case, call, expected) for call in calls] for expected in case.ground_truth
    ]
    matched_to: dict[int, int] = {}  # output call -> the expected call it answers

    def match(expected: int, tried: set[int]) -> bool:
        for index, verdict in enumerate(verdicts[expected]):
            if verdict.correct and index not in tried:
                tried.add(index)
                if index not in matched_to or match(matched_to[index], tried):
                    matched_to[index] = expected
                    return True
        return False

    for expected, row in enumerate(verdicts):
        if not match(expected, set()):
            misses = "; ".join(f"call {i}: {v.reason}" for i, v in enumerate(row) if not v.correct)
            return _wrong(
                "no_match",
                f"no call is left to match expected call {expected} "
                f"({_names([case.ground_truth[expected]])[0]}): "
                + (misses or "the calls that fit it answer other expected calls"),
            )
    return _RIGHT


def _function(case: BfclCase, name: str) -> Mapping[str, Any]:
    for function in case.functions:
        if function.get("name") == name:
            return function
    raise ConfigurationError(
        f"case {case.id!r} expects a call of {name!r}, which it does not define"
    )


def _check_call(case: BfclCase, call: Call, expected: Call) -> Verdict:
    ((name, answers),) = expected.items()
    ((called, arguments),) = call.items()
    if called != name:
        return _wrong("wrong_function", f"called {called!r}; expected {name!r}")
    parameters = _function(case, name).get("parameters") or {}
    properties = parameters.get("properties") or {}
    for required in parameters.get("required") or ():
        if required not in arguments:
            return _wrong("missing_required", f"{name}: required argument {required!r} is missing")
    for argument, value in arguments.items():
        if argument not in properties or argument not in answers:
            return _wrong("unexpected_argument", f"{name}: unexpected argument {argument!r}")
        verdict = _check_value(f"{name}.{argument}", value, properties[argument], answers[argument])
        if not verdict.correct:
            return verdict
    for argument, acceptable in answers.items():
        if argument not in arguments and "" not in acceptable:
            return _wrong("missing_argument", f"{name}: argument {argument!r} is missing")
    return _RIGHT


def _check_value(
    where: str, value: Any, schema: Mapping[str, Any], acceptable: list[Any]
) -> Verdict:
    declared = schema.get("type")
    expected_type = _python_type(where, declared)
    item_type = None
    if declared in _ITEM_CHECKED:
        item_type = _python_type(f"{where}[]", (schema.get("items") or {}).get("type"))
    if expected_type is float and type(value) is int:
        value = float(value)
    fits, is_variable = _type_fits(value, acceptable, expected_type, item_type)
    if not fits:
        return _wrong(
            "wrong_type", f"{where}: {value!r} is a {type(value).__name__}, declared {declared}"
        )
    if is_variable:
        found = value in acceptable
    elif expected_type is dict:
        found = _dict_fits(value, acceptable)
    elif expected_type is list and item_type is dict:
        found = _dicts_fit(value, acceptable)
    elif expected_type is str:
        found = normalize_string(value) in [
            normalize_string(choice) for choice in acceptable if type(choice) is str
        ]
    elif expected_type is list:
        found = _normalized(value) in [_normalized(_as_list(choice)) for choice in acceptable]
    else:
        found = value in acceptable
    if not found:
        return _wrong("wrong_value", f"{where}: {value!r} is not one of {acceptable!r}")
    return _RIGHT


def _python_type(where: str, declared: Any) -> type:
    found = _PYTHON_TYPES.get(declared) if isinstance(declared, str) else None
    if found is None:
        raise ConfigurationError(
            f"{where} declares type {declared!r}; the AST check knows {sorted(_PYTHON_TYPES)}"
        )
    return found


def _type_fits(
    value: Any, acceptable: list[Any], expected_type: type, item_type: type | None
) -> tuple[bool, bool]:
    """Whether ``value`` has the declared type, and whether the answer holds a "variable" (its
    acceptable values have another type than declared: they are then compared exactly)."""
    answer_type = next((type(choice) for choice in acceptable if choice != ""), None)
    is_variable = answer_type is not None and answer_type is not expected_type
    if type(value) is expected_type:
        if item_type is None:
            return True, is_variable
        items = cast(list[Any], value)  # item types are declared for arrays only
        for choice in acceptable:
            # As BFCL: a choice that is not a list (the "" of an optional array) checks nothing.
            if type(choice) is not list or all(
                _type_fits(item, choice, item_type, None)[0] for item in items
            ):
                return True, is_variable
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, False


def _normalized(values: list[Any]) -> list[Any]:
    return [normalize_string(item) if type(item) is str else item for item in values]


def _as_list(choice: Any) -> list[Any]:
    # BFCL walks each acceptable value by index: "" reads as [], a string as its characters.
    return list(choice) if isinstance(choice, (list, str)) else [choice]


def _dict_fits(value: Mapping[str, Any], acceptable: list[Any]) -> bool:
    return any(_dict_matches(value, choice) for choice in acceptable if isinstance(choice, Mapping))


def _dict_matches(value: Any, choice: Mapping[str, Any]) -> bool:
    if not isinstance(value, Mapping):
        return False
    for key, item in value.items():
        if key not in choice:
            return False
        options = _normalized(_as_list(choice[key]))
        if (normalize_string(item) if type(item) is str else item) not in options:
            return False
    return all(key in value or "" in _as_list(options) for key, options in choice.items())


def _dicts_fit(value: list[Any], acceptable: list[Any]) -> bool:
    for choice in acceptable:
        dicts = _as_list(choice)
        if len(value) == len(dicts) and all(
            isinstance(expected, Mapping) and _dict_matches(item, expected)
            for item, expected in zip(value, dicts, strict=True)
        ):
            return True
    return False
