"""Built-in tools: Byzer-LLM's date helpers and a calculator that evaluates arithmetic only."""

from __future__ import annotations

import ast
import datetime
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from dateutil.relativedelta import relativedelta

from byzer_agents.tools.tool import tool

__all__ = ["compute_date_range", "compute_now", "python_eval"]

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@tool
def compute_now() -> str:
    """Return the current local date and time, as ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.datetime.now().strftime(_TIME_FORMAT)


@tool
def compute_date_range(
    count: Annotated[int, "How many units back from now the range starts", {"minimum": 0}],
    unit: Annotated[
        Literal["day", "week", "month", "year"],
        "The unit of time: day, week, month or year",
    ],
) -> list[str]:
    """Return the date range that ends now and starts `count` units earlier, as two
    ``YYYY-MM-DD HH:MM:SS`` strings: [start, end]."""
    now = datetime.datetime.now()
    start = now - relativedelta(**{f"{unit}s": count})  # type: ignore[arg-type]
    return [start.strftime(_TIME_FORMAT), now.strftime(_TIME_FORMAT)]


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
# Bounds that keep one expression from eating the CPU or memory (``9**9**9`` has 370M digits).
_MAX_EXPONENT = 10_000
_MAX_MAGNITUDE = 10**4300
_MAX_EXPRESSION_LENGTH = 1_000


@tool
def python_eval(
    expression: Annotated[str, "An arithmetic expression, e.g. (3 + 4.5) * 2 ** 3"],
) -> float | int:
    """Evaluate an arithmetic expression: numbers, + - * / // % **, unary signs and parentheses.
    Names, calls and attribute access are refused."""
    if len(expression) > _MAX_EXPRESSION_LENGTH:
        raise ValueError(
            f"expression is {len(expression)} characters long; at most {_MAX_EXPRESSION_LENGTH}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{expression!r} is not an arithmetic expression: {exc.msg}") from None
    return _evaluate(tree.body)


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large; at most {_MAX_EXPONENT}")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
        if isinstance(result, complex) or (isinstance(result, float) and math.isnan(result)):
            raise ValueError(f"{ast.unparse(node)} has no real value")
        if isinstance(result, int) and abs(result) > _MAX_MAGNITUDE:
            raise ValueError(f"{ast.unparse(node)} is too large to compute")
        return result
    raise ValueError(
        f"{ast.unparse(node)!r} is not allowed: only numbers, + - * / // % **, unary signs "
        "and parentheses"
    )
