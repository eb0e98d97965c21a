"""Built-in tools: Byzer-LLM's date helpers and a calculator that evaluates arithmetic only."""

from __future__ import annotations

import ast
import datetime
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from dateutil.relativedelta import relativedelta

from byzer_agents.exceptions import ConfigurationError
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
# Bounds that keep one expression from eating the CPU or memory. A result's size is estimated
# from its operands before it is computed: ``(10**4299)**10000`` would take a minute, holding the
# GIL, which no tool timeout can stop. 4300 digits is also the most Python writes as text.
_MAX_DIGITS = 4300
_MAGNITUDE_LIMIT = 10**_MAX_DIGITS
_MAX_EXPRESSION_LENGTH = 1_000
_MAX_DEPTH = 200  # a sum of 200 terms; well within the interpreter's recursion limit
_MAX_SHOWN = 60


@tool
def python_eval(
    expression: Annotated[str, "An arithmetic expression, e.g. (3 + 4.5) * 2 ** 3"],
) -> float | int:
    """Evaluate an arithmetic expression: numbers, + - * / // % **, unary signs and parentheses.
    Names, calls and attribute access are refused, and so are results over 4300 digits."""
    if len(expression) > _MAX_EXPRESSION_LENGTH:
        raise ConfigurationError(
            f"expression is {len(expression)} characters long; at most {_MAX_EXPRESSION_LENGTH}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigurationError(
            f"{expression!r} is not an arithmetic expression: {exc.msg}"
        ) from None
    except (RecursionError, MemoryError):
        raise ConfigurationError(f"{expression[:40]!r}... is nested too deeply to read") from None
    depth = _depth(tree.body)
    if depth > _MAX_DEPTH:
        raise ConfigurationError(f"expression is nested {depth} levels deep; at most {_MAX_DEPTH}")
    return _evaluate(tree.body, expression.strip())


def _depth(root: ast.AST) -> int:
    """How deep the tree goes, counted without recursion (a deep tree is what is refused)."""
    deepest = 0
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _evaluate(node: ast.AST, source: str) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, source))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, source), _evaluate(node.right, source)
        shown = _shown(node, source)
        digits = _estimated_digits(node.op, left, right)
        if digits > _MAX_DIGITS + 1:
            raise ConfigurationError(
                f"{shown} is too large to compute: about {digits:,.0f} digits; "
                f"at most {_MAX_DIGITS}"
            )
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ConfigurationError("division by zero") from None
        except OverflowError:
            raise ConfigurationError(f"{shown} is too large for a float") from None
        if isinstance(result, complex) or (isinstance(result, float) and math.isnan(result)):
            raise ConfigurationError(f"{shown} has no real value")
        if isinstance(result, float) and math.isinf(result):
            raise ConfigurationError(f"{shown} is too large for a float")
        if isinstance(result, int) and abs(result) >= _MAGNITUDE_LIMIT:
            raise ConfigurationError(
                f"{shown} is too large to compute; at most {_MAX_DIGITS} digits"
            )
        return result
    raise ConfigurationError(
        f"{_shown(node, source)!r} is not allowed: only numbers, + - * / // % **, unary signs "
        "and parentheses"
    )


def _shown(node: ast.AST, source: str) -> str:
    # The expression's own text (ast.unparse would recurse as deep as the tree goes).
    text = ast.get_source_segment(source, node) or type(node).__name__
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _estimated_digits(op: ast.operator, left: Any, right: Any) -> float:
    """About how many decimal digits ``left op right`` has, from the operands alone; 0 where it
    cannot outgrow them by much (sums, quotients) or a float overflows at once instead."""
    if type(left) is not int or type(right) is not int or abs(left) <= 1:
        return 0.0
    if isinstance(op, ast.Pow) and right > 0:
        return right * math.log10(abs(left))
    if isinstance(op, ast.Mult) and right:
        return math.log10(abs(left)) + math.log10(abs(right))
    return 0.0
