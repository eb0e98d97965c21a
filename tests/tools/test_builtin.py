"""Built-in tools: the seed's date helpers and the arithmetic-only calculator."""

from __future__ import annotations

import datetime
import time

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
        ("9 ** 9 ** 9", "too large to compute: about 369,693,100 digits"),
        ("10 ** 4300", "at most 4300 digits"),
        ("2.0 ** 5000", "too large for a float"),
        ("1e308 * 10", "too large for a float"),
        ("-" * 300 + "1", "nested 301 levels deep; at most 200"),
        ("1 / 0", "division by zero"),
        ("(-8) ** 0.5", "no real value"),
        ("1 +", "not an arithmetic expression"),
    ],
)
def test_python_eval_refuses_everything_but_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        python_eval.invoke({"expression": expression})


def test_python_eval_refuses_a_huge_power_before_computing_it() -> None:
    # Computing it took 57 s holding the GIL, which no tool timeout can stop.
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"\(10\*\*4299\)\*\*10000 is too large to compute"):
        python_eval.invoke({"expression": "(10**4299)**10000"})
    with pytest.raises(ValueError, match="too large to compute"):
        python_eval.invoke({"expression": "(10**4299) * (10**4299)"})
    assert time.perf_counter() - started < 2


def test_python_eval_computes_large_results_within_the_limit() -> None:
    assert python_eval.invoke({"expression": "2 ** 10000"}) == 2**10000
    assert python_eval.invoke({"expression": "10 ** 4299 - 1"}) == 10**4299 - 1
    assert python_eval.invoke({"expression": "1 ** (10 ** 4000)"}) == 1
    assert python_eval.invoke({"expression": " + ".join(["1"] * 200)}) == 200
