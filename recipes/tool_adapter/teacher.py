"""The scripted teacher: a ``ScriptedBackend`` reply that answers each synthetic case's request with
its expected calls, or with ``NO_CALL_ANSWER`` when no offered tool fits.

The teacher finds the case by the user's words, not by position, so it answers right whatever the
loop adds around them: a system message, the tool descriptions it puts into the prompt for models
without native tool calling (the case's text then ends the message), or feedback turns after a
failed call (the case's message is then not the last one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from byzer_agents.types import ChatRequest
from recipes.tool_adapter.apps import NO_CALL_ANSWER, SyntheticCase

__all__ = ["Teacher", "teacher_reply"]


def teacher_reply(case: SyntheticCase) -> str | dict[str, Any]:
    """What the teacher says to ``case``: its calls, in ``ScriptedBackend``'s reply format."""
    if not case.expected:
        return NO_CALL_ANSWER
    return {
        "tool_calls": [
            {"id": f"call_{index}", "name": name, "arguments": arguments}
            for index, (name, arguments) in enumerate(case.expected)
        ]
    }


class Teacher:
    """A reply for ``ScriptedBackend``: ``backend.add(teacher)`` once per request it should answer.

    Raises LookupError for a request that holds none of its cases' messages."""

    def __init__(self, cases: Iterable[SyntheticCase]) -> None:
        self._by_text: dict[str, SyntheticCase] = {}
        for case in cases:
            known = self._by_text.setdefault(case.user_message, case)
            if known is not case and known.expected != case.expected:
                raise ValueError(
                    f"cases {known.id!r} and {case.id!r} ask {case.user_message!r} and expect "
                    "different calls; the teacher could not tell which one it is answering"
                )

    def case_for(self, request: ChatRequest) -> SyntheticCase:
        """The case whose user message the request holds, looking from its last message back."""
        for message in reversed(request.messages):
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, str):
                continue
            found = self._by_text.get(content) or self._by_text.get(content.strip())
            if found is None:  # prompt mode: the tool descriptions come first, then the words
                found = next(
                    (case for text, case in self._by_text.items() if content.endswith(text)), None
                )
            if found is not None:
                return found
        last = request.messages[-1] if request.messages else None
        raise LookupError(f"the teacher knows no case in this request; its last message: {last!r}")

    def __call__(self, request: ChatRequest) -> str | dict[str, Any]:
        return teacher_reply(self.case_for(request))
