"""Byzer-LLM's quantization parameters on the shipped SmolLM2: the GGUF file is dequantized into
the cached checkpoint, then loaded 4- or 8-bit through bitsandbytes, on this CPU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from byzer_agents import ByzerLLM
from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL, default_chat_model
from byzer_agents.types import ChatRequest

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from tests.llm_runtime.conftest import Conversion

pytest.importorskip("bitsandbytes", reason="quantization needs bitsandbytes (the local extra)")

CAPITAL = ChatRequest(
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=24,
    temperature=0,
)


def weight_bytes(backend: TransformersBackend) -> int:
    model = backend._model
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.fixture(scope="module", params=["8", "4"], ids=["8-bit", "4-bit"])
def quantized(
    request: pytest.FixtureRequest, converted_chat_model: Conversion
) -> Iterator[TransformersBackend]:
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(
        converted_chat_model.checkpoint,
        model_name=DEFAULT_CHAT_MODEL,
        quantization=request.param,
    )
    yield backend
    backend.close()


def test_linear_layers_are_bitsandbytes_modules(quantized: TransformersBackend) -> None:
    import bitsandbytes as bnb

    expected = bnb.nn.Linear8bitLt if quantized.quantization == "8" else bnb.nn.Linear4bit
    projections = [
        module
        for name, module in quantized._model.named_modules()
        if name.endswith(("q_proj", "down_proj"))
    ]
    assert projections
    assert all(isinstance(module, expected) for module in projections)


def test_quantized_weights_take_under_half_the_float32_bytes(
    quantized: TransformersBackend, chat_backend: TransformersBackend
) -> None:
    assert weight_bytes(quantized) < 0.5 * weight_bytes(chat_backend)


def test_quantized_model_still_answers(quantized: TransformersBackend) -> None:
    completion = quantized.chat(CAPITAL)
    assert "Paris" in (completion.choices[0].message.content or "")
    assert quantized.meta()["quantization"] == quantized.quantization


def test_seed_spelling_deploys_a_4_bit_model_on_ray(ray_cluster: object) -> None:
    name = "test-smollm2-quantized"
    llm = ByzerLLM()
    llm.undeploy(name)
    try:
        llm.setup_cpus_per_worker(0.25).deploy(
            default_chat_model(), "custom/auto", name, infer_params={"quatization": "true"}
        )
        meta = llm.get_meta(model=name)
        (answer,) = llm.chat_oai(
            "What is the capital of France?", model=name, llm_config={"temperature": 0}
        )
    finally:
        llm.undeploy(name)
    assert meta["quantization"] == "4"
    assert "Paris" in answer.output
