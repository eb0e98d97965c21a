"""Pretraining runs through the same job machinery as SFT (status, logs, run record), and a run
in a process that ran DeepSpeed before is not taken over by DeepSpeed's leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from byzer_agents.cli import app
from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.trainer import prepare_process
from tests.finetune.tiny_data import TINY_SETTINGS

TEXTS = [
    "The tide comes in twice a day along this coast, and the fishing boats follow it out.",
    "Lighthouses were once kept by families who lived at their base for years at a time.",
    "A harbour master records every ship that enters, its cargo and the hour it docked.",
] * 4


def test_pretrain_runs_as_a_job_with_status_and_logs(tmp_path: Path, ray_cluster: object) -> None:
    from byzer_agents import finetune

    settings = {**TINY_SETTINGS, "max_length": 64}
    job_id = finetune.pretrain(
        TEXTS, "SmolLM2-135M-Instruct", tmp_path / "run", detached=True, **settings
    )
    assert isinstance(job_id, str) and job_id.startswith("pretrain-")
    from byzer_agents.finetune.jobs import wait_for_job

    finished = wait_for_job(job_id, show_progress=False, timeout_s=600)
    assert finished.state == "succeeded", finished.error
    assert finished.kind == "pretrain" and finished.step == 2
    assert "fine-tune job" in finetune.logs(job_id)
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
    assert finetune.status(job_id).state == "succeeded"


def test_pretrain_refuses_empty_text_before_a_job_starts(tmp_path: Path) -> None:
    from byzer_agents import finetune

    with pytest.raises(FinetuneDataError):
        finetune.pretrain([""], "SmolLM2-135M-Instruct", tmp_path / "run", max_steps=1)
    assert not (tmp_path / "run").exists()


def test_pretrain_refuses_ray_train_workers(tmp_path: Path) -> None:
    from byzer_agents.finetune.jobs import start_job

    config = TrainingConfig.build(num_workers=2)
    with pytest.raises(FinetuneError, match="Ray Train workers run SFT jobs only"):
        start_job([], "SmolLM2-135M-Instruct", tmp_path, config, kind="pretrain")


def test_a_run_without_deepspeed_drops_what_an_earlier_deepspeed_run_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    prepare_process(TrainingConfig())
    assert "ACCELERATE_USE_DEEPSPEED" not in os.environ


@pytest.mark.parametrize("command", ["sft", "pretrain", "merge", "convert", "status", "logs"])
def test_every_finetune_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, ["finetune", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output and f"byzer-agents finetune {command}" in result.output


def test_merge_command_names_a_directory_that_is_no_adapter(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["finetune", "merge", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "adapter_config.json" in result.output
