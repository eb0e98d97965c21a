"""SaaS deployments on the real local Ray, talking to the fault server on 127.0.0.1 over real
HTTP: the key reaches the workers, retries run inside them and reach the driver's trace, errors
cross the process boundary typed, a failing deployment falls back to another, and num_workers
bounds the requests in flight."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from byzer_agents import LLM, ByzerLLM
from byzer_agents.exceptions import ModelCallError, ModelRateLimitError, ModelStreamBrokenError
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.deployment import RayDeployment
from byzer_agents.types import ChatRequest
from tests.fault_server import Answer, CutOff, FaultServer, Slow, Status, serve_faults

KEY = "sk-deployed-SECRET-0123456789abcdef"
DIRECT, ROUTED, BACKUP = "saas-test-direct", "saas-test-routed", "saas-test-backup"


@dataclass(frozen=True)
class Deployed:
    llm: LLM
    flaky: FaultServer
    backup: FaultServer
    direct: RayDeployment


@pytest.fixture(scope="module")
def deployed(ray_cluster: cluster.ClusterInfo) -> Iterator[Deployed]:
    """Three deployments for the module: DIRECT (2 workers, retries, no fallbacks), ROUTED (no
    retries, falls back to BACKUP), both on the flaky server, and BACKUP on a healthy one."""
    with serve_faults(api_key=KEY) as flaky, serve_faults(api_key=KEY) as backup:
        llm = ByzerLLM()
        llm.setup_cpus_per_worker(0.1).setup_gpus_per_worker(0)
        common = {"saas.api_key": KEY, "saas.model": "fault", "saas.retry_backoff_s": 0}
        try:
            llm.setup_num_workers(2)
            direct = llm.deploy(
                pretrained_model_type="saas/openai",
                udf_name=DIRECT,
                infer_params={**common, "saas.base_url": flaky.url, "saas.retry_count": 2},
            )
            llm.setup_num_workers(1)
            llm.deploy(
                pretrained_model_type="saas/deepseek",  # any provider: base_url overrides
                udf_name=BACKUP,
                infer_params={**common, "saas.base_url": backup.url},
            )
            llm.deploy(
                pretrained_model_type="saas/openai",
                udf_name=ROUTED,
                infer_params={
                    **common,
                    "saas.base_url": flaky.url,
                    "saas.retry_count": 0,
                    "saas.fallbacks": BACKUP,
                    "saas.cooldown_after": 2,
                    "saas.cooldown_s": 600,
                },
            )
            yield Deployed(llm, flaky, backup, direct)
        finally:
            for name in (DIRECT, ROUTED, BACKUP):
                llm.undeploy(name)


@pytest.fixture
def servers(deployed: Deployed) -> Deployed:
    deployed.flaky.reset()
    deployed.backup.reset()
    return deployed


def test_the_api_key_reaches_the_workers_and_is_shown_nowhere(servers: Deployed) -> None:
    llm = servers.llm
    assert llm.chat_oai("ping", model=DIRECT)[0].output == "fine"
    [sent] = servers.flaky.received
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "fault"  # saas.model, not the deployment's name
    meta = llm.get_meta(model=DIRECT)
    assert meta["pretrained_model_type"] == "saas/openai" and meta["max_concurrency"] == 1
    for shown in (repr(meta), repr(servers.direct.spec), servers.direct.spec.model_dump_json()):
        assert KEY not in shown


def test_retries_inside_a_worker_reach_the_drivers_trace(servers: Deployed, tmp_path: Path) -> None:
    servers.flaky.script(Status(500, "overloaded"), Status(429, headers={"retry-after": "0"}))
    with LLM(trace_store=tmp_path / "traces.db") as llm:
        (response,) = llm.chat_oai("ping", model=DIRECT)
        events = llm.trace_store.events(response.metadata["run_id"])  # type: ignore[union-attr]
    assert response.output == "fine" and len(servers.flaky.received) == 3
    assert [(e.model, e.status, e.step) for e in events] == [
        (DIRECT, "error", 1),
        (DIRECT, "error", 1),
        (DIRECT, "ok", 1),
    ]
    assert "HTTP 500" in (events[0].error or "") and "overloaded" in (events[0].error or "")
    assert KEY not in (tmp_path / "traces.db").read_bytes().decode("utf-8", "replace")


def test_errors_cross_from_the_worker_typed(servers: Deployed) -> None:
    servers.flaky.script(Status(400, "bad request"))
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ModelCallError) as refused:
        servers.direct.chat(request)
    assert type(refused.value) is ModelCallError and refused.value.status_code == 400
    assert str(refused.value).startswith("model 'fault' failed (HTTP 400)")
    servers.flaky.script(*[Status(429, "quota", headers={"retry-after": "0"})] * 3)
    with pytest.raises(ModelRateLimitError) as limited:
        servers.llm.chat_oai("hi", model=DIRECT)
    assert len(limited.value.call_attempts) == 3


def test_a_failing_deployment_falls_back_and_cools_down(servers: Deployed, tmp_path: Path) -> None:
    servers.backup.script(Answer("from backup"), Answer("again"), Answer("and again"))
    servers.flaky.script(Status(500), Status(503))
    # A fresh LLM finds ROUTED by name and reads its fallbacks from the deployment itself.
    with LLM(trace_store=tmp_path / "traces.db") as llm:
        (response,) = llm.chat_oai("ping", model=ROUTED)
        events = llm.trace_store.events(response.metadata["run_id"])  # type: ignore[union-attr]
        assert llm.chat_oai("ping", model=ROUTED)[0].output == "again"
        # Two failures in a row: ROUTED cools down, and the next call goes straight to BACKUP.
        assert llm.chat_oai("ping", model=ROUTED)[0].output == "and again"
    assert response.output == "from backup"
    assert [(e.model, e.status) for e in events] == [(ROUTED, "error"), (BACKUP, "ok")]
    assert len(servers.flaky.received) == 2 and len(servers.backup.received) == 3
    assert servers.backup.received[0].body["model"] == "fault"


def test_num_workers_bound_the_requests_in_flight(servers: Deployed) -> None:
    servers.flaky.script(*[Slow(0.4, "slow")] * 6)
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}])
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: servers.direct.chat(request), range(6)))
    assert [a.choices[0].message.content for a in answers] == ["slow"] * 6
    assert servers.flaky.max_in_flight == 2  # two workers, one request each


def test_streams_are_retried_before_their_first_chunk_and_break_typed_after(
    servers: Deployed,
) -> None:
    servers.flaky.script(CutOff(after_chunks=0), Answer("streamed through ray"))
    assert "".join(servers.llm.stream_chat_oai("hi", model=DIRECT)) == "streamed through ray "
    servers.flaky.script(CutOff(after_chunks=2, text="one two three"))
    pieces: list[str] = []
    with pytest.raises(ModelStreamBrokenError) as broken:
        for piece in servers.llm.stream_chat_oai("hi", model=DIRECT):
            pieces.append(piece)
    assert "".join(pieces) == broken.value.partial == "one two "
    assert len(servers.flaky.received) == 3
