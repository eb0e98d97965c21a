"""Below the agent: ``RunContext`` parameters left out of a tool's schema and filled in when it
runs, and the chat loop's own handling of approvals and ``ModelRetry``."""

from __future__ import annotations

import pytest

from byzer_agents import ModelRetry, RunContext, ToolDefinitionError, tool
from byzer_agents.exceptions import ToolCallDeniedError, ToolRetryRequestedError
from tests.agents.conftest import call, calls


def test_a_context_parameter_is_left_out_and_filled_in() -> None:
    @tool
    def scaled(ctx: RunContext[int], x: int, /, y: int = 1) -> int:
        """Scale."""
        return ctx.deps * (x + y)

    assert scaled.context_parameter == "ctx"
    assert scaled.parameters["required"] == ["x"]
    arguments = scaled.validate({"x": 2})
    assert scaled.call_validated(arguments, RunContext(deps=10)) == 30
    assert scaled.call_validated(arguments, RunContext(deps=1)) == 3


def test_without_a_run_the_context_has_no_deps() -> None:
    @tool
    def peek(ctx: RunContext[None]) -> object:
        """Peek."""
        return ctx.deps

    assert peek.invoke({}) is None


def test_two_context_parameters_are_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="RunContext"):

        @tool
        def twice(a: RunContext[int], b: RunContext[int]) -> None:
            """Twice."""


def test_chat_oai_refuses_a_call_that_needs_approval(scripted) -> None:
    ran: list[int] = []

    @tool(requires_approval=True)
    def launch() -> str:
        """Launch."""
        ran.append(1)
        return "launched"

    llm, _ = scripted(calls(call("launch", {})))
    response = llm.chat_oai("launch", tools=[launch], execute_tool=True)[0]
    assert ran == []
    assert isinstance(response.tool_errors[0], ToolCallDeniedError)
    assert "no approver was given" in str(response.tool_errors[0])


def test_chat_oai_reports_a_model_retry(scripted) -> None:
    @tool
    def picky() -> str:
        """Picky."""
        raise ModelRetry("ask nicely")

    llm, _ = scripted(calls(call("picky", {})))
    response = llm.chat_oai("go", tools=[picky], execute_tool=True)[0]
    (error,) = response.tool_errors
    assert isinstance(error, ToolRetryRequestedError) and error.reason == "ask nicely"
