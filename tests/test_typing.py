"""The user's type flows through the public API: mypy, run on a snippet that uses ``LLM`` and
``ByzerLLM``, reveals ``Story`` for ``extract(Story, ...)``, ``list[Story]`` for
``extract(list[Story], ...)``, and so on, sync and async."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

REPO = Path(__file__).resolve().parents[1]

SNIPPET = """
from collections.abc import AsyncIterator, Iterator

from pydantic import BaseModel

from byzer_agents import LLM, Agent, ByzerLLM, ScriptedBackend, ToolChoice


class Story(BaseModel):
    title: str


def now() -> str:
    return "noon"


llm = LLM.from_backend(ScriptedBackend())
reveal_type(llm.extract(Story, "text"))  # extract
reveal_type(llm.extract(list[Story], "text"))  # extract list
reveal_type(llm.extract(dict[str, int], "text", model="m", max_retries=1))  # extract dict
reveal_type(llm.chat_oai("hi", response_class=Story)[0].value)  # chat_oai typed
reveal_type(llm.chat_oai("hi", response_class=list[Story])[0].value)  # chat_oai list
reveal_type(llm.chat_oai("hi")[0].value)  # chat_oai plain
reveal_type(llm.chat_oai("hi", tools=[now], tool_choice="required")[0].values)  # tools
reveal_type(llm.chat_oai("hi", tools=[now], tool_choice=ToolChoice("required", "now")))  # choice
for partial in llm.stream_extract(Story, "text"):
    reveal_type(partial)  # stream_extract
reveal_type(ByzerLLM.from_backend(ScriptedBackend()))  # constructor
reveal_type(ByzerLLM().setup_template("m", "qwen").setup_num_workers(2))  # chained setup
reveal_type(ByzerLLM().chat("m", "hi")[0].output)  # byzer chat
reveal_type(Agent(llm))  # agent
reveal_type(Agent(llm, output_type=Story))  # typed agent
reveal_type(Agent(llm).run("task").output)  # agent text output
reveal_type(Agent(llm, output_type=Story).run("task").output)  # agent typed output


async def main() -> None:
    reveal_type(await llm.aextract(Story, "text"))  # aextract
    reveal_type(await llm.aextract(list[Story], "text"))  # aextract list
    reveal_type((await llm.achat_oai("hi", response_class=Story))[0].value)  # achat_oai
    async for piece in llm.astream_chat_oai("hi"):
        reveal_type(piece)  # astream_chat_oai
    reveal_type((await Agent(llm, output_type=Story).run_async("t")).output)  # agent async


llm.chat_oai("hi", tool_choice=3)  # wrong tool_choice
llm.extract(Story, "text", temperature=0)  # unknown option
"""

EXPECTED = {
    "extract": "snippet.Story",
    "extract list": "list[snippet.Story]",
    "extract dict": "dict[str, int]",
    "chat_oai typed": "snippet.Story",
    "chat_oai list": "list[snippet.Story]",
    "chat_oai plain": "None",
    "tools": "list[Any]",
    "choice": "list[byzer_agents.chat.results.LLMResponse[None]]",
    "stream_extract": "snippet.Story",
    "constructor": "byzer_agents.byzer_llm.ByzerLLM",
    "chained setup": "byzer_agents.byzer_llm.ByzerLLM",
    "byzer chat": "str",
    "aextract": "snippet.Story",
    "aextract list": "list[snippet.Story]",
    "achat_oai": "snippet.Story",
    "astream_chat_oai": "str",
    "agent": "byzer_agents.agents.agent.Agent[str]",
    "typed agent": "byzer_agents.agents.agent.Agent[snippet.Story]",
    "agent text output": "str",
    "agent typed output": "snippet.Story",
    "agent async": "snippet.Story",
}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's revealed types and errors on the snippet, by the comment that ends their line."""
    folder = tmp_path_factory.mktemp("typing")
    snippet = folder / "snippet.py"
    snippet.write_text(textwrap.dedent(SNIPPET), encoding="utf-8")
    # In a process of its own: mypy raises the interpreter's recursion limit for good, which
    # would let later tests' deliberately too-deep inputs through.
    checked = subprocess.run(
        [
            sys.executable, "-m", "mypy",
            "--config-file", str(REPO / "pyproject.toml"),
            "--cache-dir", str(REPO / ".mypy_cache"),
            "--no-error-summary", "--hide-error-context", "--show-error-codes",
            str(snippet),
        ],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    stdout, stderr = checked.stdout, checked.stderr
    assert not stderr, stderr
    lines = snippet.read_text(encoding="utf-8").splitlines()
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(r".*snippet\.py:(\d+): (\w+): (.*)", line)
        assert match, line
        if match[2] == "note" and not match[3].startswith("Revealed type"):
            continue  # the overloads mypy lists under an error
        comment = lines[int(match[1]) - 1].partition("# ")[2]
        found.setdefault(comment, []).append(f"{match[2]}: {match[3]}")
    return found


@pytest.mark.parametrize(("call", "revealed"), EXPECTED.items(), ids=list(EXPECTED))
def test_the_revealed_type_is_the_users_type(
    mypy_output: dict[str, list[str]], call: str, revealed: str
) -> None:
    assert mypy_output.get(call) == [f'note: Revealed type is "{revealed}"']


def test_a_tool_choice_that_is_no_mode_name_or_choice_is_a_type_error(
    mypy_output: dict[str, list[str]],
) -> None:
    (error,) = mypy_output["wrong tool_choice"]
    assert error.startswith('error: No overload variant of "chat_oai"')


def test_an_unknown_keyword_is_a_type_error(mypy_output: dict[str, list[str]]) -> None:
    errors = mypy_output["unknown option"]
    assert 'Unexpected keyword argument "temperature"' in errors[0]


def test_nothing_else_is_reported(mypy_output: dict[str, list[str]]) -> None:
    assert set(mypy_output) == {*EXPECTED, "wrong tool_choice", "unknown option"}
