"""``convert_deepspeed``: a ZeRO-2 checkpoint saved by a real DeepSpeed run (one process, on the
CPU, a tiny Llama) consolidated into a Hugging Face directory holding exactly the weights that
were trained."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from byzer_agents.exceptions import FinetuneError
from byzer_agents.finetune.convert import convert_deepspeed
from byzer_agents.finetune.examples import DatasetSplit
from tests.finetune.conftest import tiny_chats

ZERO2 = {
    "zero_optimization": {"stage": 2},
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "torch_adam": True}},
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "train_batch_size": "auto",
}


@pytest.fixture(scope="module")
def zero_run(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full fine-tune of one step under DeepSpeed ZeRO-2; its output directory."""
    from byzer_agents.finetune.config import TrainingConfig
    from byzer_agents.finetune.trainer import train_sft

    output = tmp_path_factory.mktemp("zero_run")
    config = TrainingConfig.build(
        method="full",
        max_steps=1,
        batch_size=2,
        max_length=64,
        eval_fraction=0,
        save_steps=1,
        learning_rate=1e-2,
        warmup_ratio=0,  # else the one step is the warmup's, at a learning rate of 0
        deepspeed=ZERO2,
    )
    environment = dict(os.environ)  # train_sft sets a one-process group's MASTER_ADDR ...
    try:
        train_sft(DatasetSplit(train=tiny_chats()[:2]), tiny_base, output, config)
    finally:
        # DeepSpeed and accelerate leave variables behind (ACCELERATE_USE_DEEPSPEED ...).
        os.environ.clear()
        os.environ.update(environment)
        _forget_deepspeed()
    return output


def _forget_deepspeed() -> None:
    """Accelerate keeps a DeepSpeed run's state for the process, transformers its config and
    DeepSpeed its process group: later trainings in this process would start DeepSpeed engines
    without a config."""
    import torch.distributed
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    AcceleratorState._reset_state(reset_partial_state=True)
    unset_hf_deepspeed_config()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def test_a_zero_checkpoint_converts_to_the_trained_weights(
    zero_run: Path, tiny_base: Path, tmp_path: Path
) -> None:
    import json

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert (zero_run / "checkpoint-1" / "global_step1").is_dir()

    # The run's output directory: its newest checkpoint-N is the one converted.
    output = convert_deepspeed(zero_run, tmp_path / "hf")

    converted = load_file(str(output / "model.safetensors"))
    trained = load_file(str(zero_run / "model.safetensors"))  # what the run itself saved
    assert converted.keys() <= trained.keys()
    assert all((converted[key] == trained[key]).all() for key in converted)
    initial = load_file(str(tiny_base / "model.safetensors"))
    assert any((converted[key] != initial[key]).any() for key in converted)  # it was trained
    model = AutoModelForCausalLM.from_pretrained(str(output), local_files_only=True)
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert (output / "tokenizer.json").is_file() and (output / "generation_config.json").is_file()
    record = json.loads((output / "byzer_agents_finetune.json").read_text())
    assert record["converted_from"]["tag"] == "global_step1"
    assert record["converted_from"]["checkpoint"].endswith("checkpoint-1")


def test_a_directory_without_zero_shards_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="no DeepSpeed ZeRO checkpoint"):
        convert_deepspeed(tmp_path, tmp_path / "hf")


def test_shards_without_a_config_need_the_base_model(zero_run: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shutil.copytree(zero_run / "checkpoint-1" / "global_step1", shards / "global_step1")

    with pytest.raises(FinetuneError, match="base_model="):
        convert_deepspeed(shards, tmp_path / "hf")


def test_shards_without_a_config_are_built_on_the_base_model(
    zero_run: Path, tiny_base: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    shards = tmp_path / "shards"
    shutil.copytree(zero_run / "checkpoint-1" / "global_step1", shards / "global_step1")

    output = convert_deepspeed(shards, tmp_path / "hf", base_model=tiny_base)

    converted = load_file(str(output / "model.safetensors"))
    trained = load_file(str(zero_run / "model.safetensors"))
    assert all((converted[key] == trained[key]).all() for key in converted)
    assert (output / "tokenizer.json").is_file()


def test_convert_runs_as_a_job_and_writes_the_same_directory(
    zero_run: Path, tmp_path: Path, ray_cluster: object
) -> None:
    from safetensors.torch import load_file

    from byzer_agents import finetune

    written = finetune.convert_deepspeed(zero_run, tmp_path / "by_job")
    direct = convert_deepspeed(zero_run, tmp_path / "direct")
    assert Path(written) == (tmp_path / "by_job").resolve()
    by_job = load_file(str(Path(written) / "model.safetensors"))
    in_process = load_file(str(direct / "model.safetensors"))
    assert by_job.keys() == in_process.keys()
    assert all(by_job[name].equal(in_process[name]) for name in by_job)
