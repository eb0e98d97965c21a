"""``quantization="dynamic-int8"``: torch's dynamic int8 linear layers on the CPU, as an
infer_param of the transformers engine. Its words parse, it is refused where it cannot run, and
the shipped SmolLM2 serves it in process and through a real deployment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from byzer_agents import LLM
from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec, InferParams, parse_model_type
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL, default_chat_model
from byzer_agents.types import ChatRequest

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from tests.llm_runtime.conftest import Conversion

CAPITAL = ChatRequest(
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=24,
    temperature=0,
)


def spec(**fields: Any) -> DeploymentSpec:
    return DeploymentSpec(
        udf_name="m",
        model_path="unused",
        model_type=parse_model_type("custom/auto"),
        **fields,
    )


# --- parsing and refusals (no model) -----------------------------------------------------------


@pytest.mark.parametrize("word", ["dynamic-int8", "int8-dynamic", "dynamic", " Dynamic-INT8 "])
def test_the_dynamic_int8_words_parse(word: str) -> None:
    assert InferParams.parse({"quantization": word}).quantization == "dynamic-int8"
    assert InferParams.parse({"quatization": word}).quantization == "dynamic-int8"


@pytest.mark.parametrize(
    ("word", "meaning"),
    [("4", "4"), ("true", "4"), ("int4", "4"), ("8", "8"), ("int8", "8"), ("false", None)],
)
def test_the_bitsandbytes_words_keep_their_meaning(word: str, meaning: str | None) -> None:
    assert InferParams.parse({"quantization": word}).quantization == meaning


def test_an_unknown_word_is_refused_listing_the_dynamic_words() -> None:
    with pytest.raises(
        ConfigurationError, match=r"'int2'.*'dynamic-int8'/'int8-dynamic'/'dynamic'"
    ):
        InferParams.parse({"quantization": "int2"})


@pytest.mark.parametrize(
    ("gpus", "params"),
    [(1, {}), (0, {"device": "cuda:0"})],
    ids=["gpus_per_worker", "device"],
)
def test_a_deployment_on_a_gpu_is_refused_dynamic_int8(gpus: int, params: dict[str, str]) -> None:
    # Raised in a pydantic validator: it arrives as a ValidationError, a ValueError.
    infer_params = InferParams.parse({**params, "quantization": "dynamic-int8"})
    with pytest.raises(ValueError, match="'dynamic-int8' runs on the CPU only"):
        spec(infer_params=infer_params, gpus_per_worker=gpus)


def test_another_engine_is_refused_dynamic_int8() -> None:
    with pytest.raises(ValueError, match="with infer_backend 'transformers' only"):
        spec(
            infer_backend=InferBackend.LlamaCpp,
            infer_params=InferParams.parse({"quantization": "dynamic"}),
        )


def test_the_backend_refuses_dynamic_int8_off_the_cpu_or_off_float32() -> None:
    import torch

    from byzer_agents.llm_runtime.backends.transformers_loading import check_quantization_fits

    with pytest.raises(ConfigurationError, match=r"CPU only.*'cuda:0'.*device='cpu'"):
        check_quantization_fits("dynamic-int8", torch.device("cuda:0"), torch.float32)
    with pytest.raises(ConfigurationError, match=r"float32 weights; got dtype 'bfloat16'"):
        check_quantization_fits("dynamic-int8", torch.device("cpu"), torch.bfloat16)
    check_quantization_fits("dynamic-int8", torch.device("cpu"), torch.float32)
    check_quantization_fits("8", torch.device("cuda:0"), torch.bfloat16)  # bitsandbytes' own


# --- the shipped SmolLM2 in process -------------------------------------------------------------


def linear_kinds(backend: TransformersBackend) -> tuple[list[str], list[str]]:
    """(names of dynamic int8 linear layers, names of float ``nn.Linear`` layers left)."""
    import torch

    dynamic = torch.ao.nn.quantized.dynamic.Linear
    modules = list(backend._model.named_modules())
    quantized = [name for name, module in modules if isinstance(module, dynamic)]
    plain = [name for name, module in modules if type(module) is torch.nn.Linear]
    return quantized, plain


@pytest.fixture(scope="module")
def int8_backend(converted_chat_model: Conversion) -> Iterator[TransformersBackend]:
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(
        converted_chat_model.checkpoint,
        model_name=DEFAULT_CHAT_MODEL,
        device="cpu",
        quantization="dynamic-int8",
    )
    yield backend
    backend.close()


def test_every_linear_layer_is_dynamic_int8(int8_backend: TransformersBackend) -> None:
    quantized, plain = linear_kinds(int8_backend)
    assert plain == []
    assert any(name.endswith("q_proj") for name in quantized)
    assert any(name.endswith("down_proj") for name in quantized)
    assert "lm_head" in quantized


def test_the_int8_model_answers_a_greedy_chat(int8_backend: TransformersBackend) -> None:
    completion = int8_backend.chat(CAPITAL)
    assert "Paris" in (completion.choices[0].message.content or "")
    meta = int8_backend.meta()
    assert meta["quantization"] == "dynamic-int8"
    assert meta["dtype"] == "float32"
    assert meta["device"] == "cpu"


def test_an_adapter_is_merged_before_quantizing(converted_chat_model: Conversion) -> None:
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from byzer_agents.llm_runtime.models import default_tool_model

    with TransformersBackend(
        converted_chat_model.checkpoint,
        model_name="tool-int8",
        adapter=default_tool_model(),
        quantization="dynamic-int8",
    ) as backend:
        quantized, plain = linear_kinds(backend)
        meta = backend.meta()
        answer = backend.chat(CAPITAL).choices[0].message.content
    assert plain == []
    assert type(backend._model).__name__ != "PeftModelForCausalLM"
    assert not any("lora" in name for name in quantized)
    assert meta["adapter"]["merged"] is True
    assert meta["quantization"] == "dynamic-int8"
    assert answer


# --- through a real deployment ------------------------------------------------------------------


def test_a_deployment_serves_dynamic_int8(ray_cluster: object) -> None:
    name = "test-smollm2-dynamic-int8"
    llm = LLM()
    llm.undeploy(name)
    try:
        llm.deploy(
            default_chat_model(),
            "custom/auto",
            name,
            infer_backend="transformers",
            infer_params={"quantization": "int8-dynamic"},
            cpus_per_worker=0.25,
        )
        meta = llm.get_meta(model=name)
        (answer,) = llm.chat_oai(
            "What is the capital of France?", model=name, llm_config={"temperature": 0}
        )
    finally:
        llm.undeploy(name)
    assert meta["quantization"] == "dynamic-int8"
    assert meta["dtype"] == "float32"
    assert "Paris" in answer.output
