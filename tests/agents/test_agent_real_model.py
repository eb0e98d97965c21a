"""An Agent on the shipped tool model (SmolLM2-135M-Instruct + the project's LoRA adapter) on the
real local Ray, with constrained decoding: the run ends with an output of the requested type,
validated, and a tool the model called ran."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from byzer_agents import LLM, Agent
from byzer_agents.models import default_tool_model

pytestmark = pytest.mark.slow

NAME = "test-agent-tool-model"


class Sum(BaseModel):
    total: int


@pytest.fixture(scope="module")
def llm(ray_cluster: object) -> Iterator[LLM]:
    client = LLM()
    client.undeploy(NAME)
    client.deploy(default_tool_model(), "custom/auto", NAME, cpus_per_worker=0.5)
    yield client
    client.undeploy(NAME)


def test_an_agent_on_the_shipped_model_ends_with_a_validated_typed_output(llm: LLM) -> None:
    ran: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first number
            b: the second number
        """
        ran.append((a, b))
        return a + b

    agent = Agent(
        llm,
        model=NAME,
        tools=[add],
        output_type=Sum,
        instructions="You add numbers with the add tool, then answer with the total.",
        max_steps=4,
        llm_config={"max_tokens": 96},
    )
    assert llm.backend(NAME).capabilities.constrained_decoding
    result = agent.run("What is 3 plus 4?")

    assert isinstance(result.output, Sum)
    assert Sum.model_validate(result.output.model_dump()) == result.output
    called = [run for step in result.steps for run in step.tool_runs if run.name == "add"]
    valid = [run for run in called if run.ok]
    # Every call the model made that validated ran, with the arguments the function received
    # (measured: add(3, 4) first, then more sums; the last step, tools withdrawn, answers).
    assert not called or ran
    assert len(ran) == len({(run.arguments["a"], run.arguments["b"]) for run in valid})
    assert all(run.value == run.arguments["a"] + run.arguments["b"] for run in valid)
    assert result.usage.requests == len(result.steps)
