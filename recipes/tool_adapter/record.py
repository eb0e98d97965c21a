"""Synthetic tool-calling data for the adapter: cases from the apps, recorded as traces through the
real chat loop (train), and written as a BFCL data directory (eval).

``python -m recipes.tool_adapter.record --out DIR --seed 0`` writes ``DIR/traces.db`` (a
``TraceStore`` of the train cases: the teacher's calls, each tool really run, its result) and
``DIR/synthetic_eval/`` (the eval cases, which ``byzer_agents.evals.load_cases(category,
data_dir=...)`` reads). No user message is in both.

What is fragile: BFCL's checker reads each parameter's ``type``, which pydantic's schemas do not
always state (``$ref`` to a nested model, ``anyOf`` with null for an optional value), so the BFCL
definitions are the tools' schemas with references inlined and optional values un-nulled
(``bfcl_function``). A model evaluated on them sees that form; the traces keep the tools' own.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.progress import track

from byzer_agents import LLM
from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.tools import Tool
from recipes.tool_adapter.apps import (
    APPS,
    CATEGORIES,
    NO_CALL_ANSWER,
    App,
    Category,
    SyntheticCase,
    build_case,
)
from recipes.tool_adapter.teacher import Teacher

__all__ = [
    "BFCL_CATEGORIES",
    "CATEGORY_SHARES",
    "TEACHER_CAPABILITIES",
    "bfcl_function",
    "bfcl_ground_truth",
    "generate_cases",
    "main",
    "record_traces",
    "split_cases",
    "write_bfcl_dir",
]

CATEGORY_SHARES: Mapping[Category, float] = {
    "simple": 0.35,
    "multiple": 0.25,
    "parallel": 0.15,
    "parallel_multiple": 0.10,
    "irrelevance": 0.15,
}
BFCL_CATEGORIES: Mapping[Category, str] = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
}
"""Each case category's BFCL file category."""
TEACHER_CAPABILITIES = Capabilities(native_tools=True, json_schema_output=True)
"""The teacher answers as a model with native tool calls: the traces hold ``tools`` and
``tool_calls`` as the OpenAI API writes them, which any chat template can render."""

_MAX_TRIES = 200


# --- cases ------------------------------------------------------------------------------------


def generate_cases(
    seed: int = 0, per_app: int = 46, apps: Sequence[App] = APPS
) -> list[SyntheticCase]:
    """``per_app`` cases for each app, split across categories by ``CATEGORY_SHARES``; the same
    cases for the same seed. No two cases share a user message."""
    if per_app < 1:
        raise ValueError(f"per_app must be 1 or more, got {per_app}")
    rng = random.Random(seed)
    seen: set[str] = set()
    cases = []
    for app in apps:
        for category, count in _apportion(per_app).items():
            for index in range(count):
                messages, tools, calls = _unseen_case(app, category, rng, apps, seen)
                cases.append(
                    SyntheticCase(
                        id=f"{app.name}_{category}_{index}",
                        app=app.name,
                        category=category,
                        messages=messages,
                        tools=tools,
                        expected=calls,
                    )
                )
    return cases


def _apportion(total: int) -> dict[Category, int]:
    """``total`` split by the category shares, by largest remainder (ties to the first)."""
    exact = {category: total * CATEGORY_SHARES[category] for category in CATEGORIES}
    counts = {category: int(share) for category, share in exact.items()}
    by_remainder = sorted(CATEGORIES, key=lambda c: counts[c] - exact[c])
    for category in by_remainder[: total - sum(counts.values())]:
        counts[category] += 1
    return counts


def _unseen_case(
    app: App, category: Category, rng: random.Random, apps: Sequence[App], seen: set[str]
) -> tuple[list[dict[str, str]], list[Tool[..., Any]], list[tuple[str, dict[str, Any]]]]:
    for _ in range(_MAX_TRIES):
        messages, tools, calls = build_case(app, category, rng, apps)
        text = messages[-1]["content"]
        if text not in seen:
            seen.add(text)
            return messages, tools, calls
    raise RuntimeError(
        f"{app.name}: no new {category} request in {_MAX_TRIES} tries; ask for fewer cases per "
        "app or give its makers more phrasings"
    )


def split_cases(
    cases: Sequence[SyntheticCase], eval_fraction: float, seed: int = 0
) -> tuple[list[SyntheticCase], list[SyntheticCase]]:
    """(train, eval): ``eval_fraction`` of each category's cases (rounded, at least one where
    there are two or more) go to eval, chosen by ``seed`` across the apps."""
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    rng = random.Random(seed)
    groups: dict[str, list[SyntheticCase]] = {}
    for case in cases:
        groups.setdefault(case.category, []).append(case)
    held_out: set[str] = set()
    for category in sorted(groups):
        group = groups[category]
        count = max(1, round(len(group) * eval_fraction)) if len(group) > 1 else 0
        if eval_fraction == 0:
            count = 0
        held_out.update(case.id for case in rng.sample(group, count))
    train = [case for case in cases if case.id not in held_out]
    evaluation = [case for case in cases if case.id in held_out]
    return train, evaluation


# --- traces -----------------------------------------------------------------------------------


def record_traces(
    cases: Sequence[SyntheticCase],
    store_path: str | Path,
    *,
    capabilities: Capabilities = TEACHER_CAPABILITIES,
    progress: bool = True,
) -> int:
    """Run each case through the chat loop with the teacher as the model and every call executed,
    recording the runs in the ``TraceStore`` at ``store_path``; returns how many were recorded.

    Each run is committed as it finishes, so an interrupted call keeps the runs before it. Raises
    AssertionError, naming the case, when a run's results are not what its tools return."""
    backend = ScriptedBackend(model="teacher", capabilities=capabilities)
    teacher = Teacher(cases)
    recorded = 0
    with LLM.from_backend(backend, model="teacher", trace_store=store_path, max_retries=0) as llm:
        steps = track(cases, description="recording traces") if progress else cases
        for case in steps:
            backend.add(teacher)
            (response,) = llm.chat_oai(
                case.messages, tools=case.tools, tool_choice="auto", execute_tool=True
            )
            called = [call.name for call in response.tool_calls]
            _check_run(case, response.output, called, response.values)
            recorded += 1
    return recorded


def _check_run(case: SyntheticCase, output: str, called: list[str], values: list[Any]) -> None:
    if not case.expected:
        if called or output != NO_CALL_ANSWER:
            raise AssertionError(f"{case.id}: expected no call, got {called} and {output!r}")
        return
    tools = {tool.name: tool for tool in case.tools}
    expected = [tools[name].invoke(arguments) for name, arguments in case.expected]
    names = [name for name, _ in case.expected]
    if called != names or values != expected:
        raise AssertionError(
            f"{case.id}: the loop ran {called} -> {values!r}; "
            f"the tools give {names} -> {expected!r}"
        )


# --- BFCL -------------------------------------------------------------------------------------


def bfcl_function(tool: Tool[..., Any]) -> dict[str, Any]:
    """``tool``'s definition as BFCL's checker reads it: ``tool.to_openai()["function"]`` with
    ``$ref``s inlined and ``anyOf: [X, null]`` (an optional value) read as X."""
    function = dict(tool.to_openai()["function"])
    parameters = dict(function["parameters"])
    definitions = parameters.pop("$defs", {})
    function["parameters"] = _inline(parameters, definitions)
    return function


def _inline(schema: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return _inline({**target, **rest}, definitions)
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
        (kept,) = [option for option in options if option != {"type": "null"}]
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        return _inline({**kept, **rest}, definitions)
    return {key: _inline(value, definitions) for key, value in schema.items()}


def bfcl_ground_truth(case: SyntheticCase) -> list[dict[str, dict[str, list[Any]]]]:
    """The expected calls as BFCL possible answers: each given argument with its one acceptable
    value; an argument the request did not give is left out, and BFCL's checker then refuses it
    (as the teacher, a model should not invent what was not asked)."""
    return [
        {name: {argument: [_acceptable(value)] for argument, value in arguments.items()}}
        for name, arguments in case.expected
    ]


def _acceptable(value: Any) -> Any:
    # Inside an object argument BFCL lists the acceptable values of each field.
    if isinstance(value, dict):
        return {key: [_acceptable(item)] for key, item in value.items()}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [_acceptable(item) for item in value]
    return value


def write_bfcl_dir(cases: Sequence[SyntheticCase], directory: str | Path) -> dict[str, int]:
    """Write ``cases`` as a BFCL data directory (``BFCL_v4_<category>.json`` and
    ``possible_answer/``, JSON Lines), replacing its files; returns the cases per BFCL category."""
    root = Path(directory)
    (root / "possible_answer").mkdir(parents=True, exist_ok=True)
    counts = {}
    for category, bfcl_category in BFCL_CATEGORIES.items():
        chosen = [case for case in cases if case.category == category]
        if not chosen:
            continue
        entries = [
            {
                "id": case.id,
                "question": [case.messages],
                "function": [bfcl_function(tool) for tool in case.tools],
            }
            for case in chosen
        ]
        _write_jsonl(root / f"BFCL_v4_{bfcl_category}.json", entries)
        if category != "irrelevance":
            answers = [{"id": case.id, "ground_truth": bfcl_ground_truth(case)} for case in chosen]
            _write_jsonl(root / "possible_answer" / f"BFCL_v4_{bfcl_category}.json", answers)
        counts[bfcl_category] = len(chosen)
    return counts


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text("".join(lines), encoding="utf-8")


# --- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.tool_adapter.record",
        description="Record synthetic tool-calling traces (train) and a BFCL directory (eval).",
    )
    parser.add_argument("--out", type=Path, required=True, help="the output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-app", type=int, default=46, help="cases per app, train and eval")
    parser.add_argument("--eval-fraction", type=float, default=0.13)
    parser.add_argument("--force", action="store_true", help="replace an existing traces.db")
    args = parser.parse_args(argv)
    store = args.out / "traces.db"
    if store.exists():
        if not args.force:
            parser.error(f"{store} exists; pass --force to replace it (runs would be doubled)")
        store.unlink()
    args.out.mkdir(parents=True, exist_ok=True)
    cases = generate_cases(seed=args.seed, per_app=args.per_app)
    train, evaluation = split_cases(cases, args.eval_fraction, seed=args.seed)
    written = write_bfcl_dir(evaluation, args.out / "synthetic_eval")
    recorded = record_traces(train, store)
    print(
        f"{recorded} train runs in {store}; eval cases in {args.out / 'synthetic_eval'}: {written}"
    )


if __name__ == "__main__":
    main()
