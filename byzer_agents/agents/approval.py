"""Who approves a call of a tool that ``requires_approval`` when the run names no approver: a
person at the keyboard in an interactive session (a notebook, a terminal), asked with
``input()``; nobody otherwise, and the call is refused saying no approver was given."""

from __future__ import annotations

import json
import sys
from typing import Any

from byzer_agents.chat.effects import Approver
from byzer_agents.chat.results import ToolCall

__all__ = ["ask_in_console", "default_approver", "is_interactive"]

_YES = {"y", "yes"}
_NO = {"", "n", "no"}


def is_interactive() -> bool:
    """Whether a person can answer ``input()`` here: an IPython or Jupyter session, or a
    terminal on standard input."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is not None and get_ipython() is not None:
        return True
    stdin = sys.stdin
    return stdin is not None and stdin.isatty()


def ask_in_console(call: ToolCall) -> bool | str:
    """Ask on the console whether ``call`` may run: yes runs it, no (or nothing) refuses it, and
    any other answer refuses it with that answer as the reason the model reads."""
    arguments = json.dumps(call.arguments, default=str, ensure_ascii=False)
    answer = input(f"Allow {call.name}({arguments})? [y/N, or a reason to refuse] ").strip()
    if answer.lower() in _YES:
        return True
    return False if answer.lower() in _NO else answer


def default_approver(given: Any = None) -> Approver | None:
    """``given`` when there is one; else the console in an interactive session; else None
    (calls needing approval are then refused)."""
    if given is not None:
        return given
    return ask_in_console if is_interactive() else None
