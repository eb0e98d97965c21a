"""What the server holds and gives back: a stream the client drops stops the model (its worker's
CPU measured) and keeps its place in the in-flight limit until then, in-process models get a
thread per request they admit, a network address needs a key, and SIGTERM stops it quietly.

The first tests use a scripted model and no Ray; the rest run the shipped model on the real local
Ray (run them under ``flock /tmp/byzer-ray.lock``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

from byzer_agents import LLM, ScriptedBackend
from byzer_agents.exceptions import UnprotectedServerError
from byzer_agents.llm_runtime.models import default_chat_model

pytest.importorskip("fastapi", reason="the server needs the serve extra")
from byzer_agents.cli import app
from byzer_agents.serve import BackgroundServer, serve

KEY = "sk-resources"
CHAT = "resources-smollm2"
LONG_ANSWER = [{"role": "user", "content": "Count from 1 to 1000, one number per line."}]


def in_flight(server: BackgroundServer, model: str) -> int:
    with urllib.request.urlopen(f"http://{server.host}:{server.port}/health", timeout=10) as reply:
        return int(json.loads(reply.read())["in_flight"].get(model, 0))


def wait_until_free(server: BackgroundServer, model: str, timeout_s: float) -> float:
    """Seconds until ``model`` has nothing in flight."""
    started = time.monotonic()
    while in_flight(server, model):
        assert time.monotonic() - started < timeout_s, f"{model} still busy after {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - started


def read_then_drop(client: openai.OpenAI, model: str, chunks: int, **options: Any) -> None:
    """Read ``chunks`` chunks of a stream, then close the connection, as a client that leaves."""
    stream = client.chat.completions.create(model=model, stream=True, **options)
    for index, chunk in enumerate(stream):
        assert not chunk.choices or chunk.choices[0].finish_reason is None, "it ended already"
        if index + 1 >= chunks:
            break
    stream.close()


# --- in-process models (scripted, no Ray) -----------------------------------------------------


def test_a_dropped_stream_stops_an_in_process_model_before_its_place_is_free() -> None:
    backend = ScriptedBackend(["word " * 2000], model="slow", delay_s=25.0)  # 2,500 pieces
    with BackgroundServer(LLM.from_backend(backend, model="slow"), api_key=KEY) as server:
        client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
        read_then_drop(client, "slow", 5, messages=[{"role": "user", "content": "go"}])
        wait_until_free(server, "slow", timeout_s=5)
        sent = backend.pieces_streamed
        time.sleep(0.5)
        assert backend.pieces_streamed == sent < 2500  # stopped, and before its place was free


def test_in_process_requests_up_to_the_capacity_run_at_once() -> None:
    requests, seconds_each = 24, 1.0  # asyncio's default pool ran 6 at a time here (4 s)
    backend = ScriptedBackend(["done"] * requests, model="slow", delay_s=seconds_each)
    with BackgroundServer(LLM.from_backend(backend, model="slow"), api_key=KEY) as server:
        client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
        answers: list[str | None] = []

        def ask() -> None:
            completion = client.chat.completions.create(
                model="slow", messages=[{"role": "user", "content": "hi"}]
            )
            answers.append(completion.choices[0].message.content)

        callers = [threading.Thread(target=ask) for _ in range(requests)]
        started = time.perf_counter()
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=30)
        elapsed = time.perf_counter() - started
    assert answers == ["done"] * requests
    assert elapsed < 2.5 * seconds_each, f"{requests} requests of 1 s took {elapsed:.1f} s"


# --- who may listen where ---------------------------------------------------------------------


def test_serve_refuses_a_network_address_without_a_key() -> None:
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0"], env={"BYZER_AGENTS_API_KEY": None}
    )
    assert result.exit_code == 1
    assert "refusing to serve on 0.0.0.0 without an API key" in result.output
    assert "--allow-unauthenticated-network" in result.output


def test_the_python_server_refuses_a_network_address_without_a_key() -> None:
    llm = LLM.from_backend(ScriptedBackend(), model="m")
    with pytest.raises(UnprotectedServerError, match=r"0\.0\.0\.0"):
        serve(llm, host="0.0.0.0")
    with pytest.raises(UnprotectedServerError, match=r"192\.0\.2\.1"):
        BackgroundServer(llm, host="192.0.2.1")


# --- the shipped model on the real local Ray ---------------------------------------------------


@pytest.fixture(scope="module")
def worker_pid(ray_cluster: object) -> Iterator[int]:
    """The process of the one worker of a SmolLM2 deployment."""
    import ray

    llm = LLM()
    llm.undeploy(CHAT)
    deployment = llm.deploy(default_chat_model(), "custom/auto", CHAT, cpus_per_worker=0.5)
    try:
        yield int(ray.get(deployment.workers[0].ping.remote()))
    finally:
        llm.undeploy(CHAT)


def cpu_seconds_over(pid: int, window_s: float) -> float:
    import psutil

    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(window_s)
    after = process.cpu_times()
    return (after.user - before.user) + (after.system - before.system)


def test_a_dropped_stream_stops_the_worker_before_its_place_is_free(worker_pid: int) -> None:
    with BackgroundServer(LLM(), api_key=KEY) as server:
        client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
        read_then_drop(client, CHAT, 5, messages=LONG_ANSWER, max_tokens=1000, temperature=0)
        waited = wait_until_free(server, CHAT, timeout_s=30)
        busy = cpu_seconds_over(worker_pid, 1.5)
    # Unstopped, the worker went on at about one CPU for the rest of its 1,000 tokens.
    assert busy < 0.5, f"the worker used {busy:.2f} CPU-s in 1.5 s after its place was free"
    assert waited < 10


def test_sigterm_stops_the_server_quietly_with_status_0(ray_cluster: object) -> None:
    from byzer_agents.llm_runtime import cluster

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **cluster.local_cluster_env()}
    env.pop("BYZER_AGENTS_API_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "byzer_agents.cli", "serve", "--host", "0.0.0.0",
         "--port", str(port), "--allow-unauthenticated-network"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # /v1/models joins Ray, whose driver has a SIGTERM handler of its own
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err[-2000:]
    assert "SIGTERM received" not in err and "PC: @" not in err, err[-2000:]
    assert "no API key: anyone who reaches 0.0.0.0" in out
