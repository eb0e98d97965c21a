"""What constrained decoding costs per token on the llama.cpp engine, in this process: the
shipped SmolLM2-135M-Instruct GGUF in an in-process ``LlamaCppBackend`` (2 threads, no Ray),
the same prompt with ``response_format`` json_schema (bench_runtime's essay schema) against none.

Per token: (a greedy request of up to ``n`` tokens less one of up to ``n // 2``) / (the
difference of their tokens), so the prompt and the grammar's set-up cancel out; medians over
repeats in which the paths take turns, each timed request after an untimed 1-token one with the
same prompt (llama.cpp then reuses the cached prompt, whichever request came before). The time
spent in ``Llama.sample`` (llama.cpp's sampler chain, the grammar's mask in it when
constrained) is timed too, per token of the full-length requests: a steadier measure of what
the grammar adds than the difference of two requests' times on a shared machine.

Run: ``nice -n 19 .venv/bin/python benchmarks/bench_llamacpp_constrained.py`` (about a minute
on 2 idle cores); ``--profile`` adds cProfile's top functions of one constrained request.
Prints only; bench_engines.py's constrained row is the figure RESULTS.md keeps.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runtime import JSON_SCHEMA_FORMAT, PROMPTS

SHAPES: dict[str, dict[str, Any] | None] = {"none": None, "json_schema": JSON_SCHEMA_FORMAT}


class SampleTimer:
    """Times every ``Llama.sample`` call (patched on the class for this process): llama.cpp's
    sampler chain, with the grammar's masking in it when a request is constrained."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def install(self) -> None:
        """Wrap ``Llama.sample``."""
        import llama_cpp

        original = llama_cpp.Llama.sample
        timer = self

        def timed_sample(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - start
                timer.calls += 1

        llama_cpp.Llama.sample = timed_sample  # type: ignore[method-assign]

    def reset(self) -> None:
        """Start counting afresh."""
        self.seconds, self.calls = 0.0, 0


def request(max_tokens: int, response_format: dict[str, Any] | None) -> Any:
    """The benchmark's greedy request."""
    from byzer_agents.types import ChatRequest

    return ChatRequest(
        messages=[{"role": "user", "content": PROMPTS[0]}],
        temperature=0,
        max_tokens=max_tokens,
        response_format=response_format,
    )


def run(backend: Any, max_tokens: int, shape: str) -> tuple[int, float, str]:
    """(tokens, seconds, text) of one request, after an untimed 1-token one."""
    backend.chat(request(1, SHAPES[shape]))
    start = time.perf_counter()
    completion = backend.chat(request(max_tokens, SHAPES[shape]))
    seconds = time.perf_counter() - start
    return completion.usage.completion_tokens, seconds, completion.choices[0].message.content or ""


def main() -> None:
    """Load, warm up, time the paths in turn, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    # The untimed 1-token json_schema requests end cut off, and say so at WARNING.
    logging.getLogger("byzer_agents").setLevel(logging.ERROR)

    from byzer_agents.llm_runtime.backends.llamacpp_backend import LlamaCppBackend
    from byzer_agents.llm_runtime.models import default_chat_model

    timer = SampleTimer()
    timer.install()
    backend = LlamaCppBackend(
        default_chat_model(), model_name="bench-smollm2", num_threads=args.threads
    )
    n, half = args.tokens, args.tokens // 2
    for shape in SHAPES:  # warm-up: the tokenizer and grammar compiler load here
        run(backend, 16, shape)
    times: dict[tuple[str, int], list[float]] = {}
    tokens: dict[tuple[str, int], list[int]] = {}
    sample_ms: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    text = ""
    for repeat in range(args.repeats):
        for shape in SHAPES:
            for size in (half, n):
                timer.reset()
                count, seconds, answer = run(backend, size, shape)
                times.setdefault((shape, size), []).append(seconds)
                tokens.setdefault((shape, size), []).append(count)
                if size == n:
                    sample_ms[shape].append(1000 * timer.seconds / max(timer.calls, 1))
                if shape == "json_schema":
                    text = answer
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    per_token = {}
    for shape in SHAPES:
        more = statistics.median(tokens[shape, n]) - statistics.median(tokens[shape, half])
        spent = statistics.median(times[shape, n]) - statistics.median(times[shape, half])
        per_token[shape] = 1000 * spent / max(more, 1)
        print(
            f"{shape:12s} tokens {statistics.median(tokens[shape, n]):.0f} "
            f"ms/token {per_token[shape]:.3f}, in Llama.sample "
            f"{statistics.median(sample_ms[shape]):.3f} ms/token"
        )
    ratio = per_token["json_schema"] / per_token["none"] - 1
    print(f"constrained costs {100 * ratio:+.1f}% per token")
    extra = statistics.median(sample_ms["json_schema"]) - statistics.median(sample_ms["none"])
    print(
        f"sampling with the grammar: +{extra:.3f} ms/token, "
        f"{100 * extra / per_token['none']:+.1f}% of an unconstrained token"
    )
    json.loads(text)  # the constrained answer is JSON (the backend checked it against the schema)
    if args.profile:
        profiler = cProfile.Profile()
        backend.chat(request(1, SHAPES["json_schema"]))
        profiler.enable()
        backend.chat(request(n, SHAPES["json_schema"]))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    backend.close()


if __name__ == "__main__":
    main()
