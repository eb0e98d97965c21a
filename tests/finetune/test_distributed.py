"""Training across processes: two Ray Train workers (gloo on the CPU) and DeepSpeed ZeRO-2 in one
job process without a launcher."""

from __future__ import annotations

import json
from pathlib import Path

from byzer_agents import finetune
from byzer_agents.finetune.jobs import JOB_RECORD
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL
from tests.finetune.tiny_data import TINY_SETTINGS, tiny_records

ZERO_2_ON_CPU = {
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "zero_optimization": {"stage": 2},
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "torch_adam": True}},
}


def test_two_ray_train_workers_train_one_adapter(
    ray_cluster: cluster.ClusterInfo, tmp_path: Path
) -> None:
    settings = {**TINY_SETTINGS, "num_workers": 2, "batch_size": 1, "save_steps": 2}
    result = finetune.sft(
        tiny_records(), DEFAULT_CHAT_MODEL, tmp_path, show_progress=False, **settings
    )
    assert result.world_size == 2 and result.steps == 2
    assert (tmp_path / "adapter_model.safetensors").is_file()
    job_id = json.loads((tmp_path / JOB_RECORD).read_text())["job_id"]
    log = finetune.logs(job_id)
    assert "Ray Train worker 0 of 2" in log and "Ray Train worker 1 of 2" in log


def test_deepspeed_zero2_runs_in_one_process_from_a_json_file(
    ray_cluster: cluster.ClusterInfo, tmp_path: Path
) -> None:
    config_file = tmp_path / "zero2.json"
    config_file.write_text(json.dumps(ZERO_2_ON_CPU))
    output = tmp_path / "run"
    settings = {**TINY_SETTINGS, "save_steps": 2}
    result = finetune.sft(
        tiny_records(),
        DEFAULT_CHAT_MODEL,
        output,
        show_progress=False,
        deepspeed=str(config_file),
        **settings,
    )
    assert result.steps == 2 and result.config["deepspeed"]["zero_optimization"]["stage"] == 2
    assert (output / "checkpoint-2" / "global_step2").is_dir()
    assert (output / "adapter_model.safetensors").is_file()
