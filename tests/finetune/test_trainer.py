"""``train_sft`` in this process: LoRA, QLoRA and full fine-tuning, two steps each on tiny data.
(DeepSpeed runs in a job's own process: tests/finetune/test_distributed.py.)"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.examples import DatasetSplit
from byzer_agents.finetune.trainer import RUN_RECORD, TrainingResult, latest_checkpoint, train_sft
from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL
from tests.finetune.tiny_data import TINY_SETTINGS, tiny_split


def _train(output: Path, method: str, **extra: Any) -> TrainingResult:
    config = TrainingConfig.build(TINY_SETTINGS, method=method, save_steps=2)
    return train_sft(tiny_split(), DEFAULT_CHAT_MODEL, output, config, **extra)


def test_lora_trains_an_adapter_that_names_its_base_portably(tmp_path: Path) -> None:
    result = _train(tmp_path, "lora")
    assert result.kind == "adapter" and result.steps == 2 and result.world_size == 1
    assert result.train_loss is not None and math.isfinite(result.train_loss)
    assert (tmp_path / "adapter_model.safetensors").stat().st_size > 0
    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == DEFAULT_CHAT_MODEL
    record = json.loads((tmp_path / RUN_RECORD).read_text())
    assert TrainingResult.from_json(record).steps == 2
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"


def test_qlora_trains_an_adapter_over_a_4bit_base(tmp_path: Path) -> None:
    import bitsandbytes
    from transformers import TrainerCallback

    seen: dict[str, int] = {}

    class CountLayers(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            modules = list(kwargs["model"].modules())
            seen["4bit"] = sum(isinstance(m, bitsandbytes.nn.Linear4bit) for m in modules)

    result = _train(tmp_path, "qlora", callbacks=[CountLayers()])
    assert seen["4bit"] >= 7 * 30  # every attention and MLP projection of the 30 layers
    assert result.method == "qlora" and result.steps == 2
    assert result.train_loss is not None and math.isfinite(result.train_loss)
    assert (tmp_path / "adapter_model.safetensors").is_file()


def test_full_fine_tuning_writes_a_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = _train(tmp_path, "full")
    assert result.kind == "model"
    assert (tmp_path / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path), local_files_only=True)
    assert model.config.num_hidden_layers == 30


def test_empty_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FinetuneDataError, match="no training examples"):
        train_sft(DatasetSplit(train=()), DEFAULT_CHAT_MODEL, tmp_path, TrainingConfig())
