"""Deployments on a real local Ray cluster: loopback-only, found from other processes, restarted
when a worker dies, load shared between workers. The model here is an OpenAI-compatible endpoint
(saas/openai) served on 127.0.0.1, so these tests run the whole Ray path in seconds; the shipped
local model's deployment is tested in test_local_model.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents import ByzerLLM, ModelNotFoundError
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from tests.openai_server import ServerURL, serve_backend

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ServerURL]:
    backend = ScriptedBackend([lambda request: "pong"] * 200)
    with serve_backend(backend) as url:
        yield url


@pytest.fixture
def llm(ray_cluster: cluster.ClusterInfo) -> Iterator[ByzerLLM]:
    client = ByzerLLM()
    yield client
    for name in ("echo", "echo2"):
        client.undeploy(name)


def saas_params(url: str) -> dict[str, str]:
    return {
        "saas.base_url": url,
        "saas.api_key": "sk-test-1234567890abcdef",
        "saas.model": "scripted",
    }


def test_every_ray_listener_is_on_loopback(ray_cluster: cluster.ClusterInfo) -> None:
    import psutil

    ray_pids = {
        process.pid
        for process in psutil.process_iter(["name", "cmdline"])
        if any(
            word in " ".join(process.info["cmdline"] or [])
            for word in ("ray", "gcs_server", "raylet")
        )
    }
    listeners = [
        connection.laddr
        for connection in psutil.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.pid in ray_pids
    ]
    assert listeners, "found no Ray listener at all"
    assert all(address.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for address in listeners), (
        listeners
    )


def test_deploy_chat_meta_and_undeploy(llm: ByzerLLM, endpoint: ServerURL) -> None:
    deployment = llm.deploy("unused", "saas/openai", "echo", saas_params(endpoint))
    assert llm.chat_oai("ping", model="echo")[0].output == "pong"
    assert llm.is_model_exist("echo") and "echo" in llm.list_models()
    meta = llm.get_meta(model="echo")
    assert meta["udf_name"] == "echo" and meta["num_workers"] == 1
    assert meta["pretrained_model_type"] == "saas/openai"
    assert "sk-test" not in repr(meta) and "sk-test" not in repr(deployment.spec)
    assert llm.undeploy("echo") is True
    assert not llm.is_model_exist("echo")


def test_another_process_finds_the_deployment(llm: ByzerLLM, endpoint: ServerURL) -> None:
    llm.deploy("unused", "saas/openai", "echo", saas_params(endpoint))
    script = textwrap.dedent(
        """
        from byzer_agents import LLM
        llm = LLM()
        print("echo" in llm.list_models())
        print(llm.chat_oai("ping", model="echo")[0].output)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, **cluster.local_cluster_env()},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["True", "pong"]


def test_a_killed_worker_is_replaced_and_the_next_request_succeeds(
    llm: ByzerLLM, endpoint: ServerURL
) -> None:
    import ray

    deployment = llm.deploy("unused", "saas/openai", "echo", saas_params(endpoint))
    worker = deployment.workers[0]
    first_pid = ray.get(worker.ping.remote())
    ray.kill(worker, no_restart=False)
    assert llm.chat_oai("ping", model="echo")[0].output == "pong"
    assert ray.get(worker.ping.remote()) != first_pid


def test_two_workers_share_the_load(llm: ByzerLLM, endpoint: ServerURL) -> None:
    import ray

    llm.setup_num_workers(2).setup_cpus_per_worker(0.25)
    deployment = llm.deploy("unused", "saas/openai", "echo2", saas_params(endpoint))
    for _ in range(6):
        llm.chat_oai("ping", model="echo2")
    served = [ray.get(worker.stats.remote())["served"] for worker in deployment.workers]
    assert served == [3, 3]


def test_bad_deployments_fail_before_any_worker_starts(llm: ByzerLLM) -> None:
    with pytest.raises(
        ValueError, match=r"unknown pretrained_model_type 'custom/nope'.*custom/auto"
    ):
        llm.deploy("x", "custom/nope", "bad")
    with pytest.raises(FileNotFoundError, match="'/no/such/model' does not exist"):
        llm.deploy("/no/such/model", "custom/auto", "bad")
    with pytest.raises(ValueError, match="unknown infer_params key 'colour'"):
        llm.deploy("x", "custom/auto", "bad", {"colour": "red"})
    with pytest.raises(ValueError, match="quantization"):
        llm.deploy("x", "custom/auto", "bad", {"quatization": "16"})
    assert not llm.is_model_exist("bad")


def test_unknown_model_on_ray_lists_the_deployments(llm: ByzerLLM) -> None:
    with pytest.raises(ModelNotFoundError, match="'ghost'"):
        llm.chat_oai("hi", model="ghost")


def test_asking_for_more_cpus_than_are_free_fails_at_once(
    llm: ByzerLLM, endpoint: ServerURL
) -> None:
    llm.setup_num_workers(1).setup_cpus_per_worker(64)
    with pytest.raises(RuntimeError, match=r"needs 64 CPU .* only [\d.]+ are free"):
        llm.deploy("unused", "saas/openai", "echo", saas_params(endpoint))
    assert not llm.is_model_exist("echo")


def test_a_worker_of_an_earlier_version_reads_requests_that_use_no_newer_field() -> None:
    from pydantic import ConfigDict, create_model

    from byzer_agents.llm_runtime.deployment import _on_the_wire
    from byzer_agents.types import ChatRequest

    newer = {"chat_template", "max_model_len"}  # fields added after workers were deployed
    earlier = create_model(  # type: ignore[call-overload]
        "EarlierChatRequest",
        __config__=ConfigDict(extra="forbid"),
        **{
            name: (field.annotation, field)
            for name, field in ChatRequest.model_fields.items()
            if name not in newer
        },
    )
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    assert earlier.model_validate(_on_the_wire(request)).max_tokens == 8
    with_template = request.model_copy(update={"max_model_len": 64})
    assert _on_the_wire(with_template)["max_model_len"] == 64  # a set field still travels
