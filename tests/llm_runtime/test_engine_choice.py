"""Which engine a deployment gets when the call names none (engine_choice.choose_engine), the
reason it carries to the spec, and the PEFT adapter written as a GGUF LoRA for llama.cpp."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.deploy_config import InferParams, parse_model_type
from byzer_agents.llm_runtime.engine_choice import choose_engine
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.models import default_chat_model, default_tool_model
from byzer_agents.ray_lifecycle import DeployResources, RayLifecycle

CHAT = parse_model_type("custom/auto")
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(
    not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (make install builds it)"
)


def choose(path: Path | str, params: dict[str, object] | None = None, **kwargs: object):
    options = {"gpus_per_worker": 0.0, "asked": None, **kwargs}
    return choose_engine(str(path), CHAT, InferParams.parse(params), **options)  # type: ignore[arg-type]


@needs_llama_cpp
def test_a_gguf_model_without_a_gpu_runs_on_llama_cpp() -> None:
    choice = choose(default_chat_model())
    assert choice.infer_backend is InferBackend.LlamaCpp
    assert "GGUF" in choice.reason and "without a GPU" in choice.reason


@needs_llama_cpp
def test_the_shipped_tool_adapter_runs_on_llama_cpp_over_its_gguf_base() -> None:
    assert choose(default_tool_model()).infer_backend is InferBackend.LlamaCpp


def test_a_named_engine_is_obeyed_and_said() -> None:
    choice = choose(default_chat_model(), asked=InferBackend.Transformers)
    assert choice.infer_backend is InferBackend.Transformers
    assert choice.reason == "the deployment asked for infer_backend 'transformers'"


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"quantization": "8"}, "quantization"),
        ({"dtype": "float32"}, "dtype"),
        ({"max_batch_size": "4"}, "max_batch_size"),
    ],
)
def test_a_transformers_only_setting_keeps_transformers(
    params: dict[str, object], key: str
) -> None:
    choice = choose(default_chat_model(), params)
    assert choice.infer_backend is InferBackend.Transformers
    assert key in choice.reason


def test_a_replica_with_a_gpu_runs_on_transformers() -> None:
    choice = choose(default_chat_model(), gpus_per_worker=1.0)
    assert choice.infer_backend is InferBackend.Transformers
    assert "gpus_per_worker=1" in choice.reason


def test_a_hugging_face_directory_runs_on_transformers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    choice = choose(tmp_path)
    assert choice.infer_backend is InferBackend.Transformers
    assert "Hugging Face checkpoint" in choice.reason


def test_without_llama_cpp_a_gguf_runs_on_transformers_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a),
    )
    choice = choose(default_chat_model())
    assert choice.infer_backend is InferBackend.Transformers
    assert "llama-cpp-python is not installed" in choice.reason and "make install" in choice.reason


def dora_copy(tmp_path: Path) -> Path:
    adapter = tmp_path / "dora"
    shutil.copytree(default_tool_model(), adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["use_dora"] = True
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    return adapter


@needs_llama_cpp
def test_an_adapter_llama_cpp_cannot_apply_stays_on_transformers(tmp_path: Path) -> None:
    choice = choose(dora_copy(tmp_path))
    assert choice.infer_backend is InferBackend.Transformers
    assert "DoRA" in choice.reason


def test_the_spec_carries_the_engine_and_its_reason() -> None:
    spec = RayLifecycle().spec(default_chat_model(), "custom/auto", "x", {}, DeployResources())
    expected = InferBackend.LlamaCpp if HAS_LLAMA_CPP else InferBackend.Transformers
    assert spec.infer_backend is expected
    assert spec.engine_reason
    asked = DeployResources().replace(infer_backend="transformers")
    spec = RayLifecycle().spec(default_chat_model(), "custom/auto", "x", {}, asked)
    assert spec.infer_backend is InferBackend.Transformers


# -- the adapter as a GGUF LoRA -----------------------------------------------------------------


def test_the_shipped_adapter_converts_to_a_gguf_lora_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf
    from safetensors.torch import load_file

    from byzer_agents.llm_runtime.gguf_lora import gguf_lora_file

    monkeypatch.setenv("BYZER_AGENTS_CACHE", str(tmp_path))
    lora = gguf_lora_file(default_tool_model(), default_chat_model())
    assert lora.parent == tmp_path / "loras"
    reader = gguf.GGUFReader(str(lora))
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == pytest.approx(32.0)
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    peft = {
        name: tensor.float().numpy()
        for name, tensor in load_file(
            str(default_tool_model() / "adapter_model.safetensors")
        ).items()
    }
    assert len(tensors) == len(peft)
    # rank x in, out x rank as PEFT holds them; GGUF lists the dimensions innermost first
    a = tensors["blk.0.attn_v.weight.lora_a"]
    b = tensors["blk.0.attn_v.weight.lora_b"]
    peft_a = peft["base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"]
    peft_b = peft["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]
    assert list(a.shape) == list(reversed(peft_a.shape))
    assert (a.data.reshape(peft_a.shape) == peft_a).all()
    assert (b.data.reshape(peft_b.shape) == peft_b).all()
    # q's rows are permuted as llama.cpp's converter permutes the base (same rows, new order)
    q_b = tensors["blk.0.attn_q.weight.lora_b"].data
    peft_q_b = peft["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    assert not (q_b.reshape(peft_q_b.shape) == peft_q_b).all()
    assert sorted(q_b.reshape(peft_q_b.shape).sum(axis=1)) == pytest.approx(
        sorted(peft_q_b.sum(axis=1))
    )
    written = lora.stat().st_mtime_ns
    assert gguf_lora_file(default_tool_model(), default_chat_model()) == lora
    assert lora.stat().st_mtime_ns == written


def test_an_adapter_llama_cpp_cannot_apply_is_refused_naming_why(tmp_path: Path) -> None:
    from byzer_agents.llm_runtime.gguf_lora import gguf_lora_file

    with pytest.raises(ConfigurationError, match=r"DoRA.*finetune\.merge"):
        gguf_lora_file(dora_copy(tmp_path), default_chat_model())


@needs_llama_cpp
def test_llama_cpp_with_the_converted_lora_answers_as_transformers_with_peft() -> None:
    """The shipped tool adapter on llama.cpp (GGUF LoRA over the Q4_1 base) and on transformers
    (PEFT over the dequantized base) make the same greedy tool call; the bare base does not."""
    from byzer_agents.llm_runtime.backends.llamacpp_backend import LlamaCppBackend
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from byzer_agents.types import ChatRequest
    from tests.tool_definitions import WEATHER_WITH_UNIT

    request = ChatRequest(
        model="x",
        messages=[{"role": "user", "content": "What is the weather in Paris in fahrenheit?"}],
        tools=[WEATHER_WITH_UNIT],
        temperature=0,
        max_tokens=48,
        constrained_decoding=False,
    )

    def answer(backend: object) -> tuple[str | None, list[tuple[str, str]]]:
        message = backend.chat(request).choices[0].message  # type: ignore[attr-defined]
        calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
        return message.content, calls

    on_llama_cpp = LlamaCppBackend(default_tool_model(), model_name="tools", num_threads=2)
    meta = on_llama_cpp.meta()
    assert meta["adapter"]["path"] == str(default_tool_model().resolve())
    assert meta["lora_file"].endswith(".gguf")
    on_transformers = TransformersBackend(default_tool_model(), model_name="tools", num_threads=2)
    base = LlamaCppBackend(default_chat_model(), model_name="base", num_threads=2)
    try:
        expected = answer(on_transformers)
        assert expected[1] == [("get_weather", '{"city": "Paris", "unit": "fahrenheit"}')]
        assert answer(on_llama_cpp) == expected
        assert answer(base) != expected
    finally:
        on_transformers.close()
