"""Run BFCL-format cases against a model through the framework's own loop, and score them.

Each case is asked once (no retries: a benchmark scores the first answer), with the case's
function definitions as tools (``ToolSet`` normalises BFCL's dialect and maps the model's API-safe
names back to the originals) and ``tool_choice="auto"``, so declining to call stays possible, as
BFCL asks; ``"required"`` forces a call, which measures the calls alone (irrelevance cases are then
wrong by construction).
Calls the framework's schema validation refuses are still scored, as the model wrote them: the
AST check, not the framework, decides what is right.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from byzer_agents.core.parsing import ParsedToolCall, parse_tool_calls
from byzer_agents.evals.checker import check_calls
from byzer_agents.evals.dataset import BfclCase
from byzer_agents.evals.results import CaseRecord, EvalReport
from byzer_agents.exceptions import ConfigurationError, ModelCallError, ToolCallError
from byzer_agents.tools import ToolSet

if TYPE_CHECKING:
    from byzer_agents.llm import LLM

__all__ = ["DEFAULT_LLM_CONFIG", "EvalToolChoice", "run_bfcl", "run_case"]

EvalToolChoice = Literal["auto", "required"]

DEFAULT_LLM_CONFIG: dict[str, Any] = {"temperature": 0, "max_tokens": 256}
"""Greedy decoding, room for a few calls."""


def run_bfcl(
    llm: LLM,
    cases: Sequence[BfclCase],
    *,
    model: str | None = None,
    constrained_decoding: bool = True,
    tool_choice: EvalToolChoice = "auto",
    llm_config: Mapping[str, Any] | None = None,
    on_case: Callable[[CaseRecord], None] | None = None,
    concurrency: int = 1,
) -> EvalReport:
    """Ask ``model`` (``llm``'s default when None) every case in turn and score the answers.

    ``constrained_decoding=False`` asks local backends to let the model write freely (the loop's
    tolerant parsing then reads the calls from its text); endpoints without constrained decoding
    ignore it. ``tool_choice="required"`` forces a call in every case. ``llm_config`` is laid over
    ``DEFAULT_LLM_CONFIG``. ``on_case`` hears each record as it is made (for progress).
    ``concurrency`` cases are asked at once (a local deployment batches them); the report keeps
    the cases' order, and greedy answers do not depend on it.
    """
    if tool_choice not in ("auto", "required"):
        raise ConfigurationError(f"tool_choice must be 'auto' or 'required', got {tool_choice!r}")
    config = {**DEFAULT_LLM_CONFIG, **(llm_config or {})}
    if not constrained_decoding:
        config["constrained_decoding"] = False
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be 1 or more cases at once, got {concurrency}")

    def ask(case: BfclCase) -> CaseRecord:
        record = run_case(llm, case, model=model, tool_choice=tool_choice, llm_config=config)
        if on_case is not None:
            on_case(record)
        return record

    if concurrency == 1:
        records = [ask(case) for case in cases]
    else:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bfcl") as pool:
            records = list(pool.map(ask, cases))
    return EvalReport(
        model=model or llm.get_meta().get("model", "default"),
        constrained_decoding=constrained_decoding,
        tool_choice=tool_choice,
        records=records,
    )


def run_case(
    llm: LLM,
    case: BfclCase,
    *,
    model: str | None = None,
    tool_choice: EvalToolChoice = "auto",
    llm_config: Mapping[str, Any] | None = None,
) -> CaseRecord:
    """One case: ask, read the calls, score them."""
    toolset = ToolSet(case.functions)
    schema_error = None
    started = time.perf_counter()
    try:
        (response,) = llm.chat_oai(
            case.messages,
            tools=toolset,
            tool_choice=tool_choice,
            model=model,
            llm_config=llm_config,
            max_retries=0,
        )
        parsed = [
            ParsedToolCall(call.tool.original_name, call.raw_arguments, call.id)
            for call in response.tool_calls
        ]
        output = response.output
    except ToolCallError as exc:
        # The calls did not validate; Attempt.output holds them as JSON (native calls) or the
        # model's text (prompted calls), which the tolerant parser reads back either way.
        last = exc.attempts[-1]
        parsed, output, schema_error = parse_tool_calls(last.output) or [], last.output, last.error
    except ModelCallError as exc:
        return CaseRecord(
            id=case.id,
            category=case.category,
            correct=False,
            calls=[],
            output="",
            seconds=time.perf_counter() - started,
            error_kind="model_error",
            reason=str(exc),
        )
    seconds = time.perf_counter() - started
    calls = _decoded(parsed, toolset)
    if output == "" and parsed:
        output = json.dumps([_as_dict(call) for call in parsed], ensure_ascii=False, default=str)
    if calls is None:
        # BFCL: an output that does not decode into calls is wrong, except where none is wanted.
        irrelevant = case.kind == "irrelevance"
        return CaseRecord(
            id=case.id,
            category=case.category,
            correct=irrelevant,
            calls=[],
            output=output,
            seconds=seconds,
            unparseable=not irrelevant,
            error_kind=None if irrelevant else "unparseable",
            reason=None if irrelevant else "no tool call could be read from the output",
            schema_error=schema_error,
        )
    verdict = check_calls(case, calls)
    return CaseRecord(
        id=case.id,
        category=case.category,
        correct=verdict.correct,
        calls=calls,
        output=output,
        seconds=seconds,
        error_kind=verdict.error_kind,
        reason=verdict.reason,
        schema_error=schema_error,
    )


def _decoded(
    parsed: Sequence[ParsedToolCall], toolset: ToolSet
) -> list[dict[str, dict[str, Any]]] | None:
    """The calls in BFCL's form, under the functions' original names; None when there are none,
    or one's arguments are not a JSON object (BFCL's decoder fails on the whole output then)."""
    decoded = []
    for call in parsed:
        if not isinstance(call.arguments, dict):
            return None
        tool = toolset.get(call.name)
        decoded.append({tool.original_name if tool else call.name: dict(call.arguments)})
    return decoded or None


def _as_dict(call: ParsedToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": call.arguments}
