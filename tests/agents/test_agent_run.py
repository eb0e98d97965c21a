"""An agent run on a scripted model: tools then a typed output, parallel calls with one failing,
invalid outputs fed back, timeouts, and the limits that end a run."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from pydantic import BaseModel

from byzer_agents import (
    Agent,
    AgentResult,
    ByzerAgentsError,
    ExtractionError,
    MaxStepsExceededError,
    UsageLimitExceededError,
    UsageLimits,
    tool,
)
from byzer_agents.agents import Step
from tests.agents.conftest import PROMPT_ONLY, call, calls


class Story(BaseModel):
    title: str
    words: int


def count_words(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


def test_steps_with_tools_end_in_a_validated_typed_output(scripted, trace_store) -> None:
    llm, backend = scripted(
        calls(call("count_words", {"text": "a b c"})),
        calls(call("count_words", {"text": "d e"})),
        '{"title": "Tale", "words": 5}',
    )
    agent = Agent(llm, tools=[count_words], output_type=Story, instructions="Be brief.")
    result = agent.run("Write a story")

    assert isinstance(result, AgentResult)
    assert result.output == Story(title="Tale", words=5)
    assert [step.number for step in result.steps] == [1, 2, 3]
    assert [run.value for step in result.steps for run in step.tool_runs] == [3, 2]
    assert result.usage.requests == 3 and result.usage.tool_calls == 2
    assert result.usage.total_tokens == sum(step.usage.total_tokens for step in result.steps)
    assert result.messages[0] == {"role": "system", "content": "Be brief."}
    assert result.messages[-1]["role"] == "assistant"
    # The typed output is asked with response_format where the backend honours it.
    assert backend.requests[0].response_format["json_schema"]["name"] == "Story"
    assert backend.requests[0].tools[0]["function"]["name"] == "count_words"
    # Every step traced in the agent's run: three model calls, two tool calls under them.
    events = trace_store.events(result.run_id)
    assert [event.kind for event in events].count("model_call") == 3
    tool_events = [event for event in events if event.kind == "tool_call"]
    assert len(tool_events) == 2 and all(event.parent_id for event in tool_events)
    assert trace_store.run(result.run_id).status == "ok"


def test_a_text_output_is_the_final_answer(scripted) -> None:
    llm, _ = scripted("All done.")
    result = Agent(llm).run("hello")
    assert result.output == "All done."
    assert len(result.steps) == 1 and result.steps[0].tool_runs == ()


def test_parallel_calls_with_one_failing_never_run_the_good_one_again(scripted) -> None:
    ran: list[str] = []
    lock = threading.Lock()

    def fetch(key: str) -> str:
        """Fetch a value."""
        with lock:
            ran.append(key)
        if key == "bad":
            raise KeyError(key)
        return key.upper()

    llm, backend = scripted(
        calls(call("fetch", {"key": "good"}), call("fetch", {"key": "bad"})),
        # The model repeats the whole step: the call that succeeded is reused, not run again.
        calls(call("fetch", {"key": "good"}), call("fetch", {"key": "worse"})),
        "done",
    )
    result = Agent(llm, tools=[fetch]).run("fetch both")

    assert sorted(ran) == ["bad", "good", "worse"]
    first = result.steps[0].tool_runs
    assert first[0].ok and first[0].value == "GOOD"
    assert not first[1].ok and "KeyError" in first[1].error
    fed_back = [m for m in backend.requests[1].messages if m["role"] == "tool"]
    assert json.loads(fed_back[0]["content"]) == "GOOD"
    assert "KeyError" in fed_back[1]["content"]
    assert result.usage.tool_calls == 3


def test_parallel_calls_run_at_the_same_time(scripted) -> None:
    # Each call waits until all four are running: run one after another, they would time out.
    all_running = threading.Barrier(4, timeout=10)

    def meet(n: int) -> int:
        """Wait for the other calls."""
        all_running.wait()
        return n

    llm, _ = scripted(calls(*(call("meet", {"n": n}) for n in range(4))), "ok")
    result = Agent(llm, tools=[meet]).run("go")
    assert [run.value for run in result.steps[0].tool_runs] == [0, 1, 2, 3]
    assert all(run.ok for run in result.steps[0].tool_runs)


def test_invalid_calls_are_fed_back_and_corrected(scripted) -> None:
    llm, backend = scripted(
        calls(call("count_words", {"txt": "a"}), call("nope", {})),
        calls(call("count_words", {"text": "a"})),
        "1 word",
    )
    result = Agent(llm, tools=[count_words]).run("count")
    first = result.steps[0]
    assert len(first.problems) == 2 and all(not run.ok for run in first.tool_runs)
    feedback = [m["content"] for m in backend.requests[1].messages if m["role"] == "tool"]
    assert "text" in feedback[0] and "no tool named 'nope'" in feedback[1]
    assert result.steps[1].tool_runs[0].value == 1


def test_an_invalid_final_output_is_fed_back_then_fixed(scripted) -> None:
    llm, backend = scripted('{"title": "T"}', '{"title": "T", "words": 2}')
    result = Agent(llm, output_type=Story).run("story")
    assert result.output == Story(title="T", words=2)
    assert result.steps[0].problems and "words" in result.steps[0].problems[0]
    assert "could not be used" in backend.requests[1].messages[-1]["content"]


def test_too_many_invalid_outputs_raise_extraction_error(scripted) -> None:
    llm, _ = scripted("no json", "still none")
    with pytest.raises(ExtractionError) as raised:
        Agent(llm, output_type=Story, max_retries=1).run("story")
    assert len(raised.value.attempts) == 2


def test_prompt_mode_writes_the_schema_into_the_task(scripted) -> None:
    llm, backend = scripted('{"title": "T", "words": 1}', capabilities=PROMPT_ONLY)
    result = Agent(llm, output_type=Story).run("story please")
    assert result.output.words == 1
    assert backend.requests[0].response_format is None
    sent = backend.requests[0].messages[-1]["content"]
    assert "story please" in sent and "words" in sent
    assert result.messages[0] == {"role": "user", "content": "story please"}


def test_a_list_output(scripted) -> None:
    llm, _ = scripted('{"value": [1, 2, 3]}')
    assert Agent(llm, output_type=list[int]).run("numbers").output == [1, 2, 3]


def test_a_tool_past_its_timeout_is_reported_and_the_run_goes_on(scripted) -> None:
    def sleepy() -> str:
        """Take too long."""
        time.sleep(0.5)
        return "late"

    llm, backend = scripted(calls(call("sleepy", {})), "gave up")
    result = Agent(llm, tools=[sleepy], tool_timeout_s=0.05).run("go")
    assert "timed out" in result.steps[0].tool_runs[0].error
    assert result.output == "gave up"
    assert "timed out" in backend.requests[1].messages[-1]["content"]


def test_max_steps_ends_the_run_with_the_steps_so_far(scripted) -> None:
    llm, _ = scripted(*(calls(call("count_words", {"text": f"w{i}"})) for i in range(5)))
    with pytest.raises(MaxStepsExceededError) as raised:
        Agent(llm, tools=[count_words], max_steps=3).run("loop")
    assert isinstance(raised.value, ByzerAgentsError)
    assert [step.number for step in raised.value.steps] == [1, 2, 3]
    assert all(isinstance(step, Step) for step in raised.value.steps)


@pytest.mark.parametrize(
    ("limits", "what"),
    [
        (UsageLimits(request_limit=2), "request_limit"),
        (UsageLimits(tool_calls_limit=1), "tool_calls_limit"),
        (UsageLimits(total_tokens_limit=3), "total_tokens_limit"),
    ],
)
def test_usage_limits_end_the_run(scripted, limits, what) -> None:
    replies = [calls(call("count_words", {"text": f"w{i} x y z"})) for i in range(4)]
    llm, _ = scripted(*replies)
    agent = Agent(llm, tools=[count_words])
    with pytest.raises(UsageLimitExceededError, match=what) as raised:
        agent.run("loop", usage_limits=limits)
    assert raised.value.steps
    assert isinstance(raised.value, ByzerAgentsError)


def test_usage_limits_must_be_counts() -> None:
    with pytest.raises(ValueError, match="request_limit"):
        UsageLimits(request_limit=-1)


def test_run_async_runs_async_tools_concurrently(scripted) -> None:
    # Each call waits until both have started: awaited one after the other, they would time out.
    started: list[int] = []
    both_started = asyncio.Event()

    @tool
    async def nap(n: int) -> int:
        """Wait for the other call."""
        started.append(n)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=10)
        return n * 10

    llm, _ = scripted(calls(call("nap", {"n": 1}), call("nap", {"n": 2})), '{"value": [10, 20]}')
    agent = Agent(llm, tools=[nap], output_type=list[int])
    result = asyncio.run(agent.run_async("nap"))
    assert all(run.ok for run in result.steps[0].tool_runs)
    assert result.output == [10, 20]


def test_a_failed_run_is_traced_as_an_error(scripted, trace_store) -> None:
    llm, _ = scripted("x")
    with pytest.raises(ExtractionError):
        Agent(llm, output_type=Story, max_retries=0).run("story")
    assert trace_store.runs()[0].status == "error"


def test_the_last_step_and_a_repeating_model_are_asked_to_answer_now(scripted) -> None:
    repeat = calls(call("count_words", {"text": "a b"}))
    llm, backend = scripted(repeat, repeat, '"2 words"')
    result = Agent(llm, tools=[count_words], max_steps=5).run("count")
    assert [r.tool_choice for r in backend.requests] == ["auto", "auto", "none"]
    assert result.output == '"2 words"'

    llm, backend = scripted(
        calls(call("count_words", {"text": "a"})), calls(call("count_words", {"text": "b"})), "2"
    )
    result = Agent(llm, tools=[count_words], max_steps=3).run("count")
    assert [r.tool_choice for r in backend.requests] == ["auto", "auto", "none"]
    assert result.output == "2"
