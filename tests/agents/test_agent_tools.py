"""What tools do inside an agent run: ask for a retry (``ModelRetry``), wait for approval,
receive the run's dependencies through ``RunContext``, and delegate to another agent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from byzer_agents import LLM, Agent, ModelRetry, RunContext, ScriptedBackend, tool
from byzer_agents.agents import approval
from byzer_agents.chat.results import ToolCall
from byzer_agents.tools import Tool
from tests.agents.conftest import NATIVE, call, calls


def test_model_retry_goes_back_and_the_call_may_be_made_again(scripted) -> None:
    seen: list[str] = []

    @tool
    def lookup(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        if city != "Paris":
            raise ModelRetry(f"no city named {city!r}; try its English name")
        return "sunny"

    llm, backend = scripted(
        calls(call("lookup", {"city": "Pariss"})),
        calls(call("lookup", {"city": "Pariss"})),  # a retried call is not final: it runs again
        calls(call("lookup", {"city": "Paris"})),
        "sunny in Paris",
    )
    result = Agent(llm, tools=[lookup]).run("weather?")
    assert seen == ["Pariss", "Pariss", "Paris"]
    first = result.steps[0].tool_runs[0]
    assert not first.ok and "English name" in first.error
    fed_back = backend.requests[1].messages[-1]
    assert fed_back["role"] == "tool" and "try its English name" in fed_back["content"]
    assert result.steps[2].tool_runs[0].value == "sunny"
    assert result.output == "sunny in Paris"


def test_model_retry_is_not_repeated_by_a_retrying_tool(scripted) -> None:
    runs: list[int] = []

    @tool(retries=3)
    def flaky() -> str:
        """Ask the model again."""
        runs.append(1)
        raise ModelRetry("say please")

    llm, _ = scripted(calls(call("flaky", {})), "ok")
    Agent(llm, tools=[flaky]).run("go")
    assert len(runs) == 1


def _send_email_tool(sent: list[str]) -> Tool:
    @tool(requires_approval=True)
    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return "sent"

    return send_email


def test_an_approved_call_runs(scripted) -> None:
    sent: list[str] = []
    asked: list[ToolCall] = []

    def approve(call_: ToolCall) -> bool:
        asked.append(call_)
        return True

    llm, _ = scripted(calls(call("send_email", {"to": "a@b.c"})), "emailed")
    result = Agent(llm, tools=[_send_email_tool(sent)], approve=approve).run("email")
    assert sent == ["a@b.c"] and asked[0].arguments == {"to": "a@b.c"}
    assert result.steps[0].tool_runs[0].value == "sent"


def test_a_denial_with_a_reason_goes_back_to_the_model_and_the_run_goes_on(scripted) -> None:
    sent: list[str] = []
    llm, backend = scripted(calls(call("send_email", {"to": "boss@x.y"})), "I did not send it")
    agent = Agent(llm, tools=[_send_email_tool(sent)])
    result = agent.run("email", approve=lambda c: "not to the boss")
    assert sent == []
    run = result.steps[0].tool_runs[0]
    assert run.denied and "not to the boss" in run.error
    assert result.usage.tool_calls == 0
    assert "not to the boss" in backend.requests[1].messages[-1]["content"]
    assert result.output == "I did not send it"


def test_without_an_approver_outside_a_session_the_call_is_refused(scripted, monkeypatch) -> None:
    monkeypatch.setattr(approval, "is_interactive", lambda: False)
    sent: list[str] = []
    llm, backend = scripted(calls(call("send_email", {"to": "a@b.c"})), "ok")
    result = Agent(llm, tools=[_send_email_tool(sent)]).run("email")
    assert sent == [] and result.steps[0].tool_runs[0].denied
    assert "no approver was given" in backend.requests[1].messages[-1]["content"]


@pytest.mark.parametrize(("typed", "runs"), [("y", True), ("", False), ("too costly", False)])
def test_in_a_session_the_default_approver_asks_on_the_console(
    scripted, monkeypatch, typed, runs
) -> None:
    monkeypatch.setattr(approval, "is_interactive", lambda: True)
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda text: prompts.append(text) or typed)
    sent: list[str] = []
    llm, backend = scripted(calls(call("send_email", {"to": "a@b.c"})), "ok")
    result = Agent(llm, tools=[_send_email_tool(sent)]).run("email")
    assert "send_email" in prompts[0] and "a@b.c" in prompts[0]
    assert bool(sent) is runs
    if typed == "too costly":
        assert "too costly" in backend.requests[1].messages[-1]["content"]
    assert result.steps[0].tool_runs[0].denied is not runs


def test_an_async_approver_under_run_async(scripted) -> None:
    sent: list[str] = []

    async def approve(call_: ToolCall) -> bool:
        await asyncio.sleep(0)
        return call_.arguments["to"].endswith("@ok.com")

    llm, _ = scripted(calls(call("send_email", {"to": "x@ok.com"})), "ok")
    agent = Agent(llm, tools=[_send_email_tool(sent)], approve=approve)
    asyncio.run(agent.run_async("email"))
    assert sent == ["x@ok.com"]


@dataclass
class Database:
    users: dict[str, str]


def test_deps_reach_the_tool_and_are_not_in_its_schema(scripted) -> None:
    @tool
    def user_name(ctx: RunContext[Database], user_id: str) -> str:
        """A user's name."""
        assert ctx.step == 1 and ctx.run_id and ctx.tool_call_id == "c1"
        return ctx.deps.users[user_id]

    assert list(user_name.parameters["properties"]) == ["user_id"]
    assert user_name.validate({"user_id": "7"}) == {"user_id": "7"}
    llm, backend = scripted(calls(call("user_name", {"user_id": "7"}, "c1")), "Ada")
    result = Agent(llm, tools=[user_name]).run("who is 7?", deps=Database({"7": "Ada"}))
    assert result.steps[0].tool_runs[0].value == "Ada"
    sent_schema = backend.requests[0].tools[0]["function"]["parameters"]
    assert "ctx" not in sent_schema["properties"]


def test_a_plain_function_taking_a_context_works_as_a_tool_too(scripted) -> None:
    def greeting(ctx: RunContext[str], name: str) -> str:
        """Greet someone."""
        return f"{ctx.deps}, {name}"

    llm, _ = scripted(calls(call("greeting", {"name": "Bo"})), "done")
    result = Agent(llm, tools=[greeting]).run("greet", deps="Hello")
    assert result.steps[0].tool_runs[0].value == "Hello, Bo"


def test_a_delegated_agent_runs_under_the_parent_run(scripted, trace_store) -> None:
    child_backend = ScriptedBackend(
        [calls(call("count", {"text": "a b"})), '{"value": 2}'], capabilities=NATIVE
    )
    child_llm = LLM.from_backend(child_backend, model="child-model")

    def count(ctx: RunContext[str], text: str) -> int:
        """Count words."""
        assert ctx.deps == "shared"
        return len(text.split())

    child = Agent(child_llm, tools=[count], output_type=int, name="counter")
    parent_llm, parent_backend = scripted(
        calls(call("counter", {"task": "count 'a b'"})), "There are 2 words."
    )
    parent = Agent(parent_llm, tools=[child])
    result = parent.run("how many words in 'a b'?", deps="shared")

    assert result.steps[0].tool_runs[0].value == 2
    assert result.output == "There are 2 words."
    runs = {run.id: run for run in trace_store.runs()}
    children = [run for run in runs.values() if run.id != result.run_id]
    assert len(children) == 1
    child_run = children[0]
    assert child_run.metadata["parent_run_id"] == result.run_id
    parent_event = trace_store.get(child_run.metadata["parent_event_id"])
    assert parent_event.run_id == result.run_id and parent_event.kind == "model_call"
    assert [event.kind for event in trace_store.events(child_run.id)] == [
        "model_call",
        "tool_call",
        "model_call",
    ]
    assert "task" in parent_backend.requests[0].tools[0]["function"]["parameters"]["properties"]


def test_as_tool_names_and_describes_the_agent(scripted) -> None:
    llm, _ = scripted()
    made = Agent(llm, name="writer").as_tool(name="draft", description="Drafts text.")
    assert made.name == "draft" and made.description == "Drafts text."
    assert list(made.parameters["properties"]) == ["task"]
