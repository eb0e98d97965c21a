"""Warm deploy to first answer, broken down: the shipped SmolLM2-135M-Instruct deployed with
``LLM().deploy(default_chat_model(), "custom/auto", ...)`` on a Ray cluster that already runs, its
GGUF file already converted (the safetensors cache warm), up to the first ``chat_oai`` answer of
one token.

Each repeat deploys, asks, and undeploys: first each in a new Python process (as a user's program
does it: the driver joins the cluster, Ray starts a worker process for the new job), then in this
process, joined already. The phases:

- **driver joins the cluster**: ``cluster.connect()``, which ``deploy`` does first;
- **deploy -> worker process**: from ``deploy`` called to the worker process's creation (its
  ``create_time``; 0 when Ray handed the actor a process it had started before);
- **worker process -> ready**: the process's start-up (Ray, the actor's module), imports and
  model load, up to ``deploy`` returning;
- **ready -> first answer**: ``chat_oai`` on the new deployment (driver side and first generate);
- **second answer**: the same call once more, for what a warm call costs.

Then one more worker, a measuring actor with the deployment's resources, repeats what
``ModelWorker.__init__`` does step by step with a clock between the steps (process start to
actor start, the worker module, torch, transformers, the backend module, tokenizer, model, the
rest of the backend, first generate), so the worker's share is split by cause.

Run: ``.venv/bin/python benchmarks/bench_warm_deploy.py [--repeats 3] [--engine transformers]``.
Without ``--engine`` the deployment names none, so ``custom/auto`` picks the engine as a user's
deploy does (llama.cpp for this GGUF when llama-cpp-python is installed); the measuring actor's
breakdown is of the transformers worker, printed with ``--engine transformers`` only. Joins the
local Ray cluster (starting it when none runs; it is left running). Prints; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

UDF_NAME = "bench-warm-deploy"
INFER_PARAMS = {"num_threads": 2, "max_model_len": 2048}
ONE_TOKEN = {"temperature": 0, "max_tokens": 1}
ENGINE: str | None = None
"""``--engine``: the infer_backend every deploy here names (None: custom/auto chooses)."""


def deploy_once(llm: Any, model_path: Path) -> dict[str, float]:
    """One deploy to first answer, its phases in seconds."""
    import psutil
    import ray

    from byzer_agents.llm_runtime import cluster

    started_wall, started = time.time(), time.perf_counter()
    cluster.connect()  # what deploy does first; at once when this process has joined already
    joined = time.perf_counter()
    deployment = llm.deploy(model_path, "custom/auto", UDF_NAME, INFER_PARAMS, infer_backend=ENGINE)
    ready = time.perf_counter()
    llm.chat_oai("Hi", model=UDF_NAME, llm_config=ONE_TOKEN)
    answered = time.perf_counter()
    llm.chat_oai("Hi", model=UDF_NAME, llm_config=ONE_TOKEN)
    second = time.perf_counter()
    pid = int(ray.get(deployment.workers[0].ping.remote()))
    process_at = max(0.0, psutil.Process(pid).create_time() - started_wall - (joined - started))
    llm.undeploy(UDF_NAME)
    return {
        "driver joins the cluster": joined - started,
        "deploy -> worker process": process_at,
        "worker process -> ready": ready - joined - process_at,
        "ready -> first answer": answered - ready,
        "deploy -> first answer": answered - started,
        "second answer": second - answered,
    }


def fresh_driver_once() -> dict[str, float]:
    """``deploy_once`` in a new Python process, as a user's program runs it: the driver joins
    the cluster and Ray starts a worker process for the new job."""
    import json
    import subprocess

    # Without the RAY_ADDRESS this process's ray.init set: the child finds the cluster as a
    # user's program does.
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    if ENGINE:
        env["BENCH_WARM_ENGINE"] = ENGINE
    result = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
    )
    phases: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return phases


def child() -> None:
    """One fresh-driver repeat: print its phases as JSON."""
    import json

    from byzer_agents import LLM
    from byzer_agents.llm_runtime.models import default_chat_model

    print(json.dumps(deploy_once(LLM(), default_chat_model())))


class PhaseWorker:
    """What ``ModelWorker.__init__`` does, step by step, with the wall clock between steps."""

    def __init__(self, spec_json: str) -> None:
        import psutil

        self.laps: list[tuple[str, float]] = [
            ("process start", psutil.Process().create_time()),
            ("actor start", time.time()),
        ]
        self.spec_json = spec_json

    def _lap(self, name: str) -> None:
        self.laps.append((name, time.time()))

    def run(self) -> list[tuple[str, float]]:
        """Load as the worker does; the laps, as (step, wall clock at its end)."""
        from byzer_agents.llm_runtime import worker

        self._lap("import the worker module")
        import torch  # noqa: F401

        self._lap("import torch")
        import transformers  # noqa: F401

        self._lap("import transformers")
        from byzer_agents.llm_runtime.backends import transformers_backend as backend_module

        self._lap("import the backend module")
        for name in ("load_tokenizer", "load_causal_lm"):
            self._time_calls(backend_module, name)
        spec = worker.DeploymentSpec.model_validate_json(self.spec_json)
        backend = worker.build_backend(spec)
        self._lap("rest of the backend")
        request = worker.ChatRequest.model_validate(
            {"model": spec.udf_name, "messages": [{"role": "user", "content": "Hi"}], **ONE_TOKEN}
        )
        backend.chat(request)
        self._lap("first generate")
        return self.laps

    def _time_calls(self, module: Any, name: str) -> None:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self._lap("backend set-up before " + name)
            try:
                return original(*args, **kwargs)
            finally:
                self._lap(name)

        setattr(module, name, timed)


def report(title: str, runs: list[dict[str, float]]) -> None:
    """Print each phase's median, then each repeat's figure."""
    print(f"warm deploy, {title}: median of {len(runs)} (each), load {os.getloadavg()[0]:.2f}")
    for phase in runs[0]:
        values = [run[phase] for run in runs]
        each = " ".join(f"{value:5.2f}" for value in values)
        print(f"  {phase:28s} {statistics.median(values):5.2f} s   ({each})")


def worker_phases(llm: Any, model_path: Path) -> list[tuple[str, float]]:
    """The measuring actor's steps, in seconds each."""
    import ray

    from byzer_agents.llm_runtime.cluster import NAMESPACE
    from byzer_agents.llm_runtime.deploy_config import InferParams

    spec = llm._models.ray.spec(  # the spec deploy builds, with its defaults
        model_path,
        "custom/auto",
        UDF_NAME,
        INFER_PARAMS,
        llm._models.ray.defaults,
    )
    assert isinstance(spec.infer_params, InferParams)
    created = time.time()
    actor = (
        ray.remote(PhaseWorker)
        .options(namespace=NAMESPACE, num_cpus=spec.cpus_per_worker)
        .remote(spec.worker_json())
    )
    laps = ray.get(actor.run.remote())
    ray.kill(actor)
    steps, previous = [], created
    for name, at in laps:
        steps.append((name, max(0.0, at - previous)))
        previous = max(previous, at)
    return steps


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", choices=["transformers", "llama_cpp"], default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global ENGINE
    ENGINE = args.engine or os.environ.get("BENCH_WARM_ENGINE") or None
    if args.child:
        child()
        return

    from byzer_agents import LLM
    from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
    from byzer_agents.llm_runtime.models import default_chat_model

    model_path = default_chat_model()
    resolve_checkpoint(model_path)  # the safetensors cache warm (converted once, here if need be)
    llm = LLM()
    llm.undeploy(UDF_NAME)
    # every import cache warm
    llm.deploy(model_path, "custom/auto", UDF_NAME, INFER_PARAMS, infer_backend=ENGINE)
    print(f"engine: {llm.get_meta(model=UDF_NAME)['backend']}", flush=True)
    llm.undeploy(UDF_NAME)
    report("a new driver process each time", [fresh_driver_once() for _ in range(args.repeats)])
    report(
        "in this process, joined already",
        [deploy_once(llm, model_path) for _ in range(args.repeats)],
    )
    if ENGINE != "transformers":
        return
    print("inside one worker (a measuring actor doing what ModelWorker.__init__ does):")
    for name, seconds in worker_phases(llm, model_path):
        print(f"  {name:40s} {seconds:5.2f} s")


if __name__ == "__main__":
    main()
