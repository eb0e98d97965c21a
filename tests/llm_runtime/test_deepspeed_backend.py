"""Byzer-LLM's DeepSpeed backend on the shipped SmolLM2: DeepSpeed-Inference wraps the model on
this CPU (without its CUDA kernels), and answers the same as the transformers backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

from byzer_agents import ByzerLLM
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec, InferParams, parse_model_type
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL, default_chat_model
from byzer_agents.types import ChatRequest

pytest.importorskip("deepspeed", reason="the DeepSpeed backend needs the deepspeed extra")

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.backends.deepspeed_backend import DeepSpeedBackend
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from tests.llm_runtime.conftest import Conversion


class City(BaseModel):
    name: str
    country: str


def ask(text: str, **fields: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 32}
        | fields
    )


@pytest.fixture(scope="module")
def deepspeed_backend(converted_chat_model: Conversion) -> Iterator[DeepSpeedBackend]:
    from byzer_agents.llm_runtime.backends.deepspeed_backend import DeepSpeedBackend

    backend = DeepSpeedBackend(converted_chat_model.checkpoint, model_name=DEFAULT_CHAT_MODEL)
    yield backend
    backend.close()


def test_the_model_runs_inside_a_deepspeed_engine(deepspeed_backend: DeepSpeedBackend) -> None:
    meta = deepspeed_backend.meta()
    assert meta["backend"] == "deepspeed"
    assert meta["kernel_inject"] is False  # no CUDA here
    assert meta["deepspeed_version"]


def test_answers_as_the_transformers_backend_does(
    deepspeed_backend: DeepSpeedBackend, chat_backend: TransformersBackend
) -> None:
    request = ask("What is the capital of France?")
    answer = deepspeed_backend.chat(request).choices[0].message.content
    assert answer == chat_backend.chat(request).choices[0].message.content
    assert "Paris" in (answer or "")


def test_typed_answers_are_constrained_as_with_transformers(
    deepspeed_backend: DeepSpeedBackend,
) -> None:
    schema = {"name": "City", "schema": City.model_json_schema()}
    completion = deepspeed_backend.chat(
        ask(
            "Which city is the capital of France?",
            response_format={"type": "json_schema", "json_schema": schema},
            max_tokens=64,
        )
    )
    assert City.model_validate_json(completion.choices[0].message.content or "").name


def test_kernel_injection_without_cuda_is_refused(converted_chat_model: Conversion) -> None:
    from byzer_agents.llm_runtime.backends.deepspeed_backend import DeepSpeedBackend

    with pytest.raises(ValueError, match="kernel_inject=True needs a CUDA device"):
        DeepSpeedBackend(converted_chat_model.checkpoint, model_name="m", kernel_inject=True)


def test_deploys_on_ray_with_the_seeds_infer_backend(ray_cluster: object) -> None:
    name = "test-smollm2-deepspeed"
    llm = ByzerLLM()
    llm.undeploy(name)
    try:
        llm.setup_infer_backend(InferBackend.DeepSpeed).setup_cpus_per_worker(0.25)
        llm.deploy(default_chat_model(), "custom/auto", name)
        meta = llm.get_meta(model=name)
        (answer,) = llm.chat_oai(
            "What is the capital of France?", model=name, llm_config={"temperature": 0}
        )
    finally:
        llm.undeploy(name)
    assert meta["backend"] == "deepspeed"
    assert "Paris" in answer.output


@pytest.mark.parametrize(
    ("backend", "params", "message"),
    [
        (
            InferBackend.Transformers,
            {"backend.gpu_memory_utilization": "0.5"},
            r"\['gpu_memory_utilization'\] apply to infer_backend 'ray/vllm' only",
        ),
        (
            InferBackend.VLLM,
            {"ds.replace_with_kernel_inject": "true"},
            r"\['kernel_inject'\] apply to infer_backend 'ray/deepspeed' only",
        ),
        (InferBackend.DeepSpeed, {"quatization": "4"}, "with infer_backend 'transformers' only"),
    ],
)
def test_engine_settings_given_to_another_engine_are_refused(
    backend: InferBackend, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DeploymentSpec(
            udf_name="m",
            model_path="unused",
            model_type=parse_model_type("custom/auto"),
            infer_backend=backend,
            infer_params=InferParams.parse(params),
        )
