"""``merge``: a LoRA adapter folded into its base, saved as a plain Hugging Face directory that
computes what base + adapter compute; directories that are no adapter, or whose base is gone,
are refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from byzer_agents.exceptions import FinetuneError
from byzer_agents.finetune.merging import merge
from byzer_agents.finetune.trainer import RUN_RECORD


def test_merged_directory_holds_weights_config_tokenizer_and_record(
    merged_model: Path, tiny_adapter: Path
) -> None:
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json"):
        assert (merged_model / name).is_file(), name
    assert not (merged_model / "adapter_config.json").exists()
    record = json.loads((merged_model / RUN_RECORD).read_text())
    assert record["kind"] == "model"
    assert record["merged_from"] == {
        "adapter": str(tiny_adapter.resolve()),
        "base_model": "SmolLM2-135M-Instruct",
    }
    assert record["adapter_record"]["method"] == "lora"


def test_merged_model_computes_the_logits_of_base_plus_adapter(
    merged_model: Path, tiny_adapter: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from byzer_agents.finetune.base_model import resolve_base_model

    base_dir = resolve_base_model("SmolLM2-135M-Instruct").checkpoint
    ids = torch.tensor([[1, 504, 3458, 314, 1345, 47, 2]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(str(merged_model)).eval()
        merged_logits = merged(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(base_dir)).eval()
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, str(tiny_adapter)).eval()
        adapted_logits = adapted(ids).logits

    assert torch.allclose(merged_logits, adapted_logits, atol=1e-3)
    assert (merged_logits - base_logits).abs().max() > 1e-2


def test_a_directory_without_adapter_config_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match=r"no adapter_config\.json"):
        merge(tmp_path, tmp_path / "out")


def test_an_adapter_without_weights_is_refused(tmp_path: Path, tiny_adapter: Path) -> None:
    shutil.copy(tiny_adapter / "adapter_config.json", tmp_path)

    with pytest.raises(FinetuneError, match="has no weights"):
        merge(tmp_path, tmp_path / "out")


def test_an_adapter_whose_base_is_gone_is_refused_naming_it(
    tmp_path: Path, tiny_adapter: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "/nowhere/base-model"
    (adapter / "adapter_config.json").write_text(json.dumps(config))

    with pytest.raises(FinetuneError, match="/nowhere/base-model"):
        merge(adapter, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unknown_dtype_is_refused_with_the_choices(tiny_adapter: Path, tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="bfloat16"):
        merge(tiny_adapter, tmp_path / "out", dtype="int4")
