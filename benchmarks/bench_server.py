"""What the HTTP server costs: the shipped SmolLM2-135M-Instruct deployed on the local Ray cluster,
asked the same short questions through ``byzer-agents serve`` (the official openai SDK over
127.0.0.1) and through the Python API (``LLM.chat_oai``), in one run.

- **Throughput and latency** at 1, 8 and 32 concurrent clients: requests/s and p50 / p99 latency
  of each path, each level bounded by a count of requests (``--requests``) and a time limit.
- **Time to first token** of a streamed answer: the server's first SSE delta against the Python
  API's first streamed text.

Run: ``.venv/bin/python benchmarks/bench_server.py`` (a few minutes on 2 CPU cores) writes its
section of RESULTS.md; ``--quick`` prints a smaller run and writes nothing.

The deployment takes ``max_concurrency=32`` requests at once so that neither path is refused at 32
clients (the server answers 429 past a model's limit; the count of such answers is reported).
Answers are greedy and short (``max_tokens`` 16), so the figures weigh the stack more than the
model; the paths take turns level by level.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import library_versions, write_section  # noqa: E402

SECTION_HEADING = "## Server: HTTP against the Python API on one deployment (bench_server.py)"
UDF_NAME = "bench-server-smollm2"
MAX_TOKENS = 16
LEVELS = (1, 8, 32)
QUESTIONS = (
    "What is the capital of France?",
    "Name a primary colour.",
    "What is two plus two?",
    "Say hello in Spanish.",
)


@dataclass(frozen=True)
class LevelResult:
    path: str
    clients: int
    requests: int
    refused: int
    seconds: float
    latencies_s: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def run_level(
    path: str, ask: Callable[[str], bool], clients: int, requests: int, limit_s: float
) -> LevelResult:
    """``requests`` calls of ``ask`` from ``clients`` threads, stopping early at ``limit_s``."""
    latencies: list[float] = []
    refused = 0
    deadline = time.perf_counter() + limit_s

    def one(index: int) -> tuple[float, bool] | None:
        if time.perf_counter() > deadline:
            return None
        started = time.perf_counter()
        answered = ask(QUESTIONS[index % len(QUESTIONS)])
        return time.perf_counter() - started, answered

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for outcome in pool.map(one, range(requests)):
            if outcome is None:
                continue
            latency, answered = outcome
            if answered:
                latencies.append(latency)
            else:
                refused += 1
    seconds = time.perf_counter() - started
    return LevelResult(path, clients, len(latencies), refused, seconds, latencies)


def first_token_s(stream: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in stream():
        return time.perf_counter() - started
    raise RuntimeError("the stream gave nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64, help="requests per level and path")
    parser.add_argument("--limit-s", type=float, default=60.0, help="time limit per level")
    parser.add_argument("--quick", action="store_true", help="a small run; writes nothing")
    options = parser.parse_args()
    requests = 8 if options.quick else options.requests

    import openai

    from byzer_agents import LLM
    from byzer_agents.llm_runtime.models import default_chat_model
    from byzer_agents.serve import BackgroundServer

    llm = LLM()
    llm.undeploy(UDF_NAME)
    print(f"deploying {UDF_NAME} ...", flush=True)
    llm.deploy(
        default_chat_model(), "custom/auto", UDF_NAME, {"max_concurrency": 32},
        num_workers=1, cpus_per_worker=0.5,
    )  # fmt: skip
    config = {"temperature": 0, "max_tokens": MAX_TOKENS}
    try:
        with BackgroundServer(LLM()) as server:
            client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)

            def over_http(question: str) -> bool:
                try:
                    client.chat.completions.create(
                        model=UDF_NAME,
                        messages=[{"role": "user", "content": question}],
                        **config,  # type: ignore[arg-type]
                    )
                except openai.RateLimitError:
                    return False
                return True

            def in_python(question: str) -> bool:
                llm.chat_oai(question, model=UDF_NAME, llm_config=config)
                return True

            over_http(QUESTIONS[0]), in_python(QUESTIONS[0])  # warm both paths
            results: list[LevelResult] = []
            for clients in LEVELS:
                for path, ask in (("Python API", in_python), ("HTTP server", over_http)):
                    result = run_level(path, ask, clients, requests, options.limit_s)
                    results.append(result)
                    print(
                        f"{path:12} {clients:3} clients: {result.per_second:6.2f} req/s, "
                        f"p50 {result.percentile(0.5):7.0f} ms, p99 {result.percentile(0.99):7.0f}"
                        f" ms, {result.refused} refused",
                        flush=True,
                    )
            question = [{"role": "user", "content": QUESTIONS[0]}]
            ttft_http = statistics.median(
                first_token_s(
                    lambda: client.chat.completions.create(
                        model=UDF_NAME, messages=question, stream=True, **config
                    )
                )
                for _ in range(3 if options.quick else 7)
            )
            ttft_python = statistics.median(
                first_token_s(
                    lambda: llm.stream_chat_oai(QUESTIONS[0], model=UDF_NAME, llm_config=config)
                )
                for _ in range(3 if options.quick else 7)
            )
            print(
                f"first token: HTTP {ttft_http * 1000:.0f} ms, Python {ttft_python * 1000:.0f} ms"
            )
    finally:
        llm.undeploy(UDF_NAME)
    if not options.quick:
        write_section(SECTION_HEADING, report(results, ttft_http, ttft_python, requests))


def report(results: list[LevelResult], ttft_http: float, ttft_python: float, requests: int) -> str:
    rows = []
    by_key = {(result.path, result.clients): result for result in results}
    for clients in LEVELS:
        python, http = by_key[("Python API", clients)], by_key[("HTTP server", clients)]
        rows.append(
            f"| {clients} | {python.per_second:.2f} | {http.per_second:.2f} | "
            f"{http.per_second / python.per_second:.2f} | {python.percentile(0.5):.0f} / "
            f"{python.percentile(0.99):.0f} | {http.percentile(0.5):.0f} / "
            f"{http.percentile(0.99):.0f} | {http.refused} |"
        )
    return "\n".join(
        [
            SECTION_HEADING,
            "",
            f"Measured {dt.date.today().isoformat()}; "
            + library_versions("fastapi", "uvicorn", "openai", "ray"),
            "",
            f"SmolLM2-135M-Instruct, one replica (0.5 CPU, 32 requests in flight), greedy, "
            f"max_tokens {MAX_TOKENS}; {requests} requests per level and path, the paths taking "
            "turns. HTTP: the openai SDK in threads over 127.0.0.1; Python: `LLM.chat_oai` in "
            "threads.",
            "",
            "| clients | Python req/s | HTTP req/s | HTTP / Python | Python p50 / p99 ms | "
            "HTTP p50 / p99 ms | HTTP 429s |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Time to first streamed token (median of 7): HTTP {ttft_http * 1000:.0f} ms, Python "
            f"API {ttft_python * 1000:.0f} ms ({ttft_http / ttft_python:.2f}x).",
        ]
    )


if __name__ == "__main__":
    main()
