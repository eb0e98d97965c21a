"""Built-in tools: the seed's date helpers and the arithmetic-only calculator."""

from __future__ import annotations

import datetime

import pytest

from byzer_agents import ToolArgumentsError
from byzer_agents.tools import compute_date_range, compute_now, python_eval

FORMAT = "%Y-%m-%d %H:%M:%S"


def test_compute_now_is_the_current_time() -> None:
    before = datetime.datetime.now().replace(microsecond=0)
    now = datetime.datetime.strptime(compute_now.invoke({}), FORMAT)
    assert before <= now <= datetime.datetime.now()
    assert compute_now.parameters["properties"] == {}


@pytest.mark.parametrize(
    ("unit", "days_low", "days_high"),
    [("day", 3, 3), ("week", 21, 21), ("month", 89, 92), ("year", 1095, 1096)],
)
def test_compute_date_range_goes_back_count_units(unit: str, days_low: int, days_high: int) -> None:
    start, end = (
        datetime.datetime.strptime(text, FORMAT)
        for text in compute_date_range.invoke({"count": 3, "unit": unit})
    )
    assert days_low <= (end - start).days <= days_high


def test_compute_date_range_refuses_unknown_unit_and_negative_count() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        compute_date_range.invoke({"count": -2, "unit": "hour"})
    assert {e.field for e in caught.value.errors} == {"count", "unit"}
    assert compute_date_range.parameters["properties"]["unit"]["enum"] == [
        "day",
        "week",
        "month",
        "year",
    ]


@pytest.mark.parametrize(
    ("expression", "value"),
    [("1 + 2 * 3", 7), ("(3 + 4.5) * 2 ** 3", 60.0), ("-7 // 2", -4), ("7 % 3", 1), ("1/4", 0.25)],
)
def test_python_eval_computes_arithmetic(expression: str, value: float) -> None:
    assert python_eval.invoke({"expression": expression}) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "not allowed"),
        ("x + 1", "'x' is not allowed"),
        ("(1).real", "not allowed"),
        ("[1, 2]", "not allowed"),
        ("'a' * 3", "not allowed"),
        ("9 ** 9 ** 9", "exponent"),
        ("1 / 0", "division by zero"),
        ("(-8) ** 0.5", "no real value"),
        ("1 +", "not an arithmetic expression"),
    ],
)
def test_python_eval_refuses_everything_but_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        python_eval.invoke({"expression": expression})
