"""The engines side by side: the shipped SmolLM2-135M-Instruct on transformers in float32, on
transformers with its linear layers quantized to dynamic int8, and on llama.cpp (its Q4_1 GGUF
as shipped), each bare and through the stack, in one run with the paths taking turns.

- **Decode**: tokens/s of one greedy request (the same prompt, ``max_tokens=128``, 2 threads):
  transformers fp32 bare ``generate`` / ``LLM.chat_oai`` on a deployment; transformers int8 bare
  ``generate`` on a model quantized in place / ``LLM.chat_oai`` on a deployment with
  ``infer_params={"quantization": "dynamic-int8"}`` (both quantized by the same
  ``quantize_dynamic_int8``); llama.cpp bare ``Llama.create_completion`` / ``LLM.chat_oai`` on
  an ``InferBackend.LlamaCpp`` deployment.
- **8 at once** on llama.cpp: aggregate tokens/s of 8 requests from 8 threads through
  ``LLM.chat_oai`` against the same 8 prompts as sequential bare calls.
- **Constrained decoding** on the llama.cpp deployment (``RayDeployment.chat``): ms per
  token with ``response_format`` json_schema against none, from a full request less a half one.

Run: ``.venv/bin/python benchmarks/bench_engines.py`` (or ``bench_runtime.py --engines``), a few
minutes on 2 idle CPU cores; writes its section of RESULTS.md. ``--quick``: 16 tokens, one
repeat, nothing written. Needs llama-cpp-python (``make install``). Bare llama.cpp runs in a
process of its own (see ``bench_runtime.LlamaCpp`` for why).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runtime import (
    JSON_SCHEMA_FORMAT,
    PROMPTS,
    THREADS,
    TINY_PROMPT,
    BareModel,
    Runs,
    backend_chat,
    progress,
    take_turns,
    timed,
)
from results_file import library_versions, write_section

SECTION_HEADING = (
    "## Engines side by side: transformers fp32, dynamic int8, llama.cpp (bench_engines.py)"
)
FP32_UDF = "bench-engines-transformers"
INT8_UDF = "bench-engines-int8"
LLAMACPP_UDF = "bench-engines-llamacpp"
UDF_NAMES = (FP32_UDF, INT8_UDF, LLAMACPP_UDF)
DEFAULT_MAX_TOKENS = 128
DEFAULT_REPEATS = 3
INFER_PARAMS = {"num_threads": THREADS, "max_model_len": 2048}
INT8_INFER_PARAMS = {**INFER_PARAMS, "quantization": "dynamic-int8"}
PAUSE_S = 0.5
"""Idle before each timed path: torch's OpenMP threads in this process keep spinning for a
while after a call, and took 10% off the llama.cpp path that ran next (seen here: bare 168
and stack 150 tok/s right after torch, 196 and 189 in a process without torch)."""

Call = Callable[[], tuple[int, str]]


@dataclass(frozen=True)
class Settings:
    """How long each request is, how often each path runs, and whether RESULTS.md is written."""

    max_tokens: int
    repeats: int
    write: bool


@dataclass
class Results:
    """Everything one run measured."""

    settings: Settings
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    decode: dict[str, Runs] = field(default_factory=dict)
    together: dict[str, Runs] = field(default_factory=dict)
    constrained_ms: dict[str, float] = field(default_factory=dict)
    constrained_tokens: dict[str, str] = field(default_factory=dict)
    prefill: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per deployment: (prompt tokens, median seconds to a 1-token answer of a long prompt)."""
    elapsed_s: float = 0.0


# --- the engines ------------------------------------------------------------------------------


class BareLlama:
    """``Llama.create_completion`` on the GGUF file, in a process of its own, fed prompt text."""

    def __init__(self, gguf: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            1, mp_context=context, initializer=_load_llama, initargs=(str(gguf),)
        )
        self._pool.submit(_llama_complete, TINY_PROMPT, 1).result()  # loaded, or the error raised

    def complete(self, prompt_text: str, max_tokens: int) -> tuple[int, str]:
        """(tokens generated, text) of one greedy completion."""
        return self._pool.submit(_llama_complete, prompt_text, max_tokens).result()

    def close(self) -> None:
        """Stop the child process."""
        self._pool.shutdown()


_llama: Any = None
"""The model, in the llama.cpp child process only (set by its initializer)."""


def _load_llama(gguf: str) -> None:
    global _llama
    from llama_cpp import Llama

    _llama = Llama(model_path=gguf, n_threads=THREADS, n_ctx=2048, seed=0, verbose=False)


def _llama_complete(prompt_text: str, max_tokens: int) -> tuple[int, str]:
    answer = _llama.create_completion(prompt_text, max_tokens=max_tokens, temperature=0.0)
    return int(answer["usage"]["completion_tokens"]), answer["choices"][0]["text"]


def stack_chat(llm: Any, udf_name: str, prompt: str, max_tokens: int) -> tuple[int, str]:
    """One greedy request through ``LLM.chat_oai``."""
    (answer,) = llm.chat_oai(
        prompt, model=udf_name, llm_config={"temperature": 0, "max_tokens": max_tokens}
    )
    return int(answer.metadata["usage"]["completion_tokens"]), answer.output


class PromptRenderer:
    """The prompt text the transformers backend renders for a request (the checkpoint's own
    chat template), without loading a model: for the bare paths."""

    def __init__(self, checkpoint: Path) -> None:
        from byzer_agents.llm_runtime.backends.transformers_loading import load_tokenizer
        from byzer_agents.prompts.chat_templates import Templates

        tokenizer = load_tokenizer(checkpoint)
        self.template = Templates.from_tokenizer(tokenizer) or Templates.chatml()

    def render_prompt(self, request: Any) -> str:
        """``request`` as the model reads it."""
        from byzer_agents.llm_runtime.chat_prompt import render_chat_prompt

        return render_chat_prompt(request.chat_template or self.template, request)


@dataclass(frozen=True)
class Engines:
    """Everything measured, each loaded once."""

    llm: Any
    llamacpp_deployment: Any
    renderer: PromptRenderer
    fp32: BareModel
    int8: BareModel
    llama: BareLlama

    def prompt_text(self, prompt: str) -> str:
        """The prompt as the chat template renders it (the same SmolLM2 template both engines
        read), for bare llama.cpp."""
        from byzer_agents.types import ChatRequest

        request = ChatRequest(messages=[{"role": "user", "content": prompt}])
        return str(self.renderer.render_prompt(request))


def load_engines(llm: Any, gguf: Path) -> Engines:
    """Deploy the three engines, then load the bare ones in this process (llama.cpp in its
    own)."""
    import torch

    from byzer_agents.llm_runtime.backends.transformers_loading import quantize_dynamic_int8
    from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
    from byzer_agents.llm_runtime.infer_backend import InferBackend

    for name in UDF_NAMES:
        if llm.undeploy(name):
            progress(f"removed a {name} left by an earlier run")
    progress(f"deploying {gguf.name} on transformers (float32) as {FP32_UDF}")
    llm.deploy(gguf, "custom/auto", FP32_UDF, INFER_PARAMS, infer_backend="transformers")
    progress(f"deploying {gguf.name} on transformers (dynamic int8) as {INT8_UDF}")
    llm.deploy(gguf, "custom/auto", INT8_UDF, INT8_INFER_PARAMS, infer_backend="transformers")
    quantization = llm.get_meta(model=INT8_UDF)["quantization"]
    if quantization != "dynamic-int8":
        raise SystemExit(f"{INT8_UDF} serves quantization={quantization!r}, not dynamic-int8")
    progress(f"deploying {gguf.name} on llama.cpp as {LLAMACPP_UDF}")
    llamacpp = llm.deploy(
        model_path=gguf,
        pretrained_model_type="custom/auto",
        udf_name=LLAMACPP_UDF,
        infer_backend=InferBackend.LlamaCpp,
        infer_params=INFER_PARAMS,
    )
    checkpoint = resolve_checkpoint(gguf)  # the converted directory the workers loaded
    progress(f"loading {checkpoint.name} here: bare fp32, bare int8")
    torch.set_num_threads(THREADS)
    renderer = PromptRenderer(checkpoint)
    fp32 = BareModel(checkpoint, renderer)
    int8 = BareModel(checkpoint, renderer)
    quantize_dynamic_int8(int8.model)  # what the int8 deployment's worker does
    progress("loading the GGUF file in bare llama.cpp, in a process of its own")
    return Engines(llm, llamacpp, renderer, fp32, int8, BareLlama(gguf))


def close_engines(e: Engines) -> None:
    """The llama.cpp child process."""
    e.llama.close()


# --- the measurements -------------------------------------------------------------------------


def decode_paths(e: Engines, prompt: str, n: int) -> dict[str, Call]:
    """The six ways to answer one request, by the names of the table."""
    ids = e.fp32.prompt_ids(prompt)
    text = e.prompt_text(prompt)
    return {
        "transformers fp32, bare `generate`": lambda: e.fp32.generate([ids], n)[0],
        "transformers fp32, `LLM.chat_oai`": lambda: stack_chat(e.llm, FP32_UDF, prompt, n),
        "transformers int8, bare `generate`": lambda: e.int8.generate([ids], n)[0],
        "transformers int8, `LLM.chat_oai`": lambda: stack_chat(e.llm, INT8_UDF, prompt, n),
        "llama.cpp, bare `create_completion`": lambda: e.llama.complete(text, n),
        "llama.cpp, `LLM.chat_oai`": lambda: stack_chat(e.llm, LLAMACPP_UDF, prompt, n),
    }


def warm_up(e: Engines, n: int) -> None:
    """Every path once with a short answer, and every constrained request once (the grammar
    compiled for each length), before any timing."""
    for call in constrained_paths(e, n).values():
        call()
    for call in decode_paths(e, PROMPTS[0], 8).values():  # last: each engine's cached prompt
        call()
    progress("warmed up every engine")


def measure_together(e: Engines, n: int, repeats: int) -> dict[str, Runs]:
    """The 8 prompts on llama.cpp: at once from 8 threads through the stack, one after another
    bare."""
    texts = [e.prompt_text(prompt) for prompt in PROMPTS]

    def through_stack() -> tuple[int, str]:
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            answers = list(
                pool.map(lambda prompt: stack_chat(e.llm, LLAMACPP_UDF, prompt, n), PROMPTS)
            )
        return sum(tokens for tokens, _ in answers), ""

    def bare_in_turn() -> tuple[int, str]:
        return sum(e.llama.complete(text, n)[0] for text in texts), ""

    return take_turns(
        {
            f"llama.cpp, {len(PROMPTS)} at once through `LLM.chat_oai`": through_stack,
            f"llama.cpp, {len(PROMPTS)} bare calls in turn": bare_in_turn,
        },
        repeats,
        f"{len(PROMPTS)} prompts",
        PAUSE_S,
    )


CONSTRAINED_SHAPES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "json_schema": JSON_SCHEMA_FORMAT,
}


def constrained_paths(e: Engines, n: int) -> dict[str, Call]:
    """An ``n // 2``-token and an ``n``-token request on the llama.cpp deployment, per
    response_format. Not a 1-token one: a json_schema request of 1 token takes ~0.27 s where
    one of 16 takes 0.1 s (seen here), so it is no measure of the fixed cost."""
    paths: dict[str, Call] = {}
    for shape, response_format in CONSTRAINED_SHAPES.items():
        for tokens in (n // 2, n):
            paths[f"{shape}, {tokens} token(s)"] = functools.partial(
                backend_chat, e.llamacpp_deployment, PROMPTS[0], tokens, response_format
            )
    return paths


def measure_constrained(
    e: Engines, n: int, repeats: int
) -> tuple[dict[str, float], dict[str, str]]:
    """ms per token on the llama.cpp deployment, json_schema against none. Each timed request
    follows an untimed 1-token one with the same prompt: llama.cpp reuses the prompt it has
    in its cache, and the json_schema prompt (the schema written in) differs from the free one,
    so without it a request's time depends on which one came before."""
    paths = constrained_paths(e, n)
    runs = {name: Runs() for name in paths}
    for repeat in range(1, repeats + 1):
        for name, call in paths.items():
            backend_chat(
                e.llamacpp_deployment, PROMPTS[0], 1, CONSTRAINED_SHAPES[name.split(",")[0]]
            )
            time.sleep(PAUSE_S)
            run = runs[name].add(timed(call))
            progress(
                f"constrained [{repeat}/{repeats}] {name}: {run.tokens} tokens in"
                f" {run.seconds:.3f} s"
            )
    per_token, counts = {}, {}
    for shape in CONSTRAINED_SHAPES:
        half, full = runs[f"{shape}, {n // 2} token(s)"], runs[f"{shape}, {n} token(s)"]
        more = statistics.median(r.tokens for r in full.runs) - statistics.median(
            r.tokens for r in half.runs
        )
        per_token[shape] = 1000 * (full.seconds - half.seconds) / max(more, 1)
        counts[shape] = full.tokens
    return per_token, counts


PREFILL_TEXT = " ".join(
    f"Tool {i}: get_record_{i}(id: int, fields: list[str]) returns record {i} of the archive."
    for i in range(40)
)
"""About 1,000 tokens: a prompt the size of a tool-calling request with many tools (BFCL's)."""


def measure_prefill(e: Engines, repeats: int) -> dict[str, tuple[int, float]]:
    """Seconds from the call to a 1-token answer of a ~1,000-token prompt on each deployment,
    the engines taking turns. Each repeat's prompt starts differently, so llama.cpp's reuse of
    the prompt it has cached covers only the system prompt."""
    timings: dict[str, list[float]] = {name: [] for name in UDF_NAMES}
    prompt_tokens: dict[str, int] = {}
    for repeat in range(repeats + 1):  # the first round warms up
        for name in UDF_NAMES:
            time.sleep(PAUSE_S)
            started = time.perf_counter()
            (answer,) = e.llm.chat_oai(
                f"Round {repeat}. {PREFILL_TEXT} Which tool returns record 7?",
                model=name,
                llm_config={"temperature": 0, "max_tokens": 1},
            )
            seconds = time.perf_counter() - started
            prompt_tokens[name] = int(answer.metadata["usage"]["prompt_tokens"])
            if repeat:
                timings[name].append(seconds)
                progress(f"prefill [{repeat}/{repeats}] {name}: {seconds:.2f} s")
    return {name: (prompt_tokens[name], statistics.median(timings[name])) for name in UDF_NAMES}


def measure(settings: Settings) -> Results:
    """Deploy, load, warm up, time every path, undeploy."""
    from byzer_agents import LLM
    from byzer_agents.llm_runtime.models import default_chat_model

    started = time.perf_counter()
    results = Results(settings, os.getloadavg())
    progress(f"load average: {' '.join(f'{x:.2f}' for x in results.load_before)}")
    llm = LLM()
    n, repeats = settings.max_tokens, settings.repeats
    try:
        engines = load_engines(llm, default_chat_model())
        try:
            warm_up(engines, n)
            results.decode = take_turns(
                decode_paths(engines, PROMPTS[0], n), repeats, "decode", PAUSE_S
            )
            results.together = measure_together(engines, n, repeats)
            results.constrained_ms, results.constrained_tokens = measure_constrained(
                engines, n, repeats
            )
            results.prefill = measure_prefill(engines, repeats)
        finally:
            close_engines(engines)
    finally:
        for name in UDF_NAMES:
            llm.undeploy(name)
        progress("undeployed all three; the local Ray cluster keeps running")
    results.load_after = os.getloadavg()
    results.elapsed_s = time.perf_counter() - started
    return results


# --- report -----------------------------------------------------------------------------------


def section_text(r: Results, command: str) -> str:
    """The RESULTS.md section of one run."""
    s = r.settings
    decode = r.decode
    llama_bare = decode["llama.cpp, bare `create_completion`"].tokens_per_s
    llama_stack = decode["llama.cpp, `LLM.chat_oai`"].tokens_per_s
    fp32_bare = decode["transformers fp32, bare `generate`"].tokens_per_s
    together = list(r.together.values())
    at_once, in_turn = together[0].tokens_per_s, together[1].tokens_per_s
    free, schema = r.constrained_ms["none"], r.constrained_ms["json_schema"]
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `{command}`; run on {dt.date.today().isoformat()}, in"
        f" {r.elapsed_s / 60:.1f} min, on a quiet machine (the Ray lock held, nothing else"
        f" running; load average (1 min) {r.load_before[0]:.2f} before,"
        f" {r.load_after[0]:.2f} after);",
        f"{library_versions('ray', 'torch', 'transformers', 'llama_cpp_python', 'xgrammar')}.",
        "",
        "SmolLM2-135M-Instruct as shipped (Q4_1 GGUF). transformers: the float32 checkpoint the"
        " worker converts it to; int8: the same with every `nn.Linear` quantized by"
        " `torch.ao.quantization.quantize_dynamic` (qint8), served by a deployment with"
        ' `infer_params={"quantization": "dynamic-int8"}`; llama.cpp: the GGUF file as it is.'
        f" Every engine on {THREADS} threads (deployments: `num_threads={THREADS}`, one replica"
        " each, `cpus_per_worker=0.5`); bare llama.cpp in a process of its own. Greedy; medians"
        f" of {s.repeats} repeats in which the paths take turns, after every path has answered"
        " once, with 0.5 s idle before each timed path (torch's threads in the driver spin for a"
        " while after a call); tokens are each engine's own count.",
        "",
        f"**Decode, one request** of up to {s.max_tokens} new tokens (`{PROMPTS[0]}`), timed"
        " from the call to the answer:",
        "",
        "| engine, path | tokens | s | tok/s | against transformers fp32 bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, runs in decode.items():
        lines.append(
            f"| {name} | {runs.tokens} | {runs.seconds:.2f} | {runs.tokens_per_s:.1f} |"
            f" {runs.tokens_per_s / fp32_bare:.2f}x |"
        )
    lines += [
        "",
        f"llama.cpp through `LLM.chat_oai` runs at {100 * llama_stack / llama_bare:.0f}% of bare"
        " llama-cpp-python's tokens/s (aim: at least 90%).",
        "",
        f"**{len(PROMPTS)} requests** (the runtime benchmark's prompts, up to {s.max_tokens} new"
        " tokens each) on llama.cpp; aggregate tokens/s from the first call to the last answer:",
        "",
        "| path | tokens | s | tok/s |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {runs.tokens} | {runs.seconds:.2f} | {runs.tokens_per_s:.1f} |"
            for name, runs in r.together.items()
        ),
        "",
        f"Through the stack, {100 * at_once / in_turn:.0f}% of the bare calls' aggregate tokens/s"
        " (aim: at least 90%).",
        "",
        "**Constrained decoding** on the llama.cpp deployment (`RayDeployment.chat`): the decode"
        " prompt with `response_format` json_schema (`title` and at least 3 `paragraphs`) against"
        f" none; per token: (a request of up to {s.max_tokens} tokens less one of up to"
        f" {s.max_tokens // 2}) / (the difference of their tokens), so the prompt and the"
        " grammar's set-up cancel out.",
        "",
        "| response_format | tokens | ms per token |",
        "|---|---:|---:|",
        f"| none | {r.constrained_tokens['none']} | {free:.2f} |",
        f"| json_schema | {r.constrained_tokens['json_schema']} | {schema:.2f} |",
        "",
        f"Constrained decoding costs {100 * (schema / free - 1):+.1f}% per token (aim: under 5%).",
        "",
    ]
    if r.prefill:
        labels = {
            FP32_UDF: "transformers fp32",
            INT8_UDF: "transformers dynamic int8",
            LLAMACPP_UDF: "llama.cpp (Q4_1)",
        }
        fp32_s = r.prefill[FP32_UDF][1]
        lines += [
            "**A long prompt** (about 1,000 tokens, the size of a tool-calling request with many"
            " tools), answered with 1 token through `LLM.chat_oai`: what a tool call or a BFCL"
            " case waits for before its first token. Medians of"
            f" {s.repeats}, the engines taking turns:",
            "",
            "| engine | prompt tokens | s to the answer | prompt tok/s | against fp32 |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {labels[name]} | {tokens} | {seconds:.2f} | {tokens / seconds:.0f} |"
                f" {fp32_s / seconds:.2f}x |"
                for name, (tokens, seconds) in r.prefill.items()
            ),
            "",
        ]
    return "\n".join(lines)


def run(max_tokens: int, repeats: int, quick: bool, command: str) -> None:
    """Measure, print the section, and write it to RESULTS.md unless ``quick``."""
    if quick:
        settings = Settings(max_tokens=16, repeats=1, write=False)
    else:
        settings = Settings(max_tokens, repeats, write=True)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    results = measure(settings)
    text = section_text(results, command)
    print(text)
    if settings.write:
        write_section(SECTION_HEADING, text)
    progress(f"done in {results.elapsed_s / 60:.1f} min")


def main() -> None:
    """Command line: ``--max-tokens``, ``--repeats``, ``--quick``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--quick", action="store_true", help="16 tokens, 1 repeat, no writing")
    args = parser.parse_args()
    command = ".venv/bin/python benchmarks/bench_engines.py"
    if args.max_tokens != DEFAULT_MAX_TOKENS or args.repeats != DEFAULT_REPEATS:
        command += f" --max-tokens {args.max_tokens} --repeats {args.repeats}"
    run(args.max_tokens, args.repeats, args.quick, command)


if __name__ == "__main__":
    main()
