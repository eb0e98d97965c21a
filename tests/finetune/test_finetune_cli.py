"""``byzer-agents finetune sft|status|logs`` through typer's runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from byzer_agents.cli import app
from byzer_agents.finetune.jobs import wait_for_job
from byzer_agents.llm_runtime import cluster
from tests.finetune.tiny_data import write_tiny_jsonl

runner = CliRunner()


@pytest.mark.parametrize("command", ["sft", "status", "logs"])
def test_each_command_explains_itself_with_an_example(command: str) -> None:
    result = runner.invoke(app, ["finetune", command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output
    assert f"byzer-agents finetune {command}" in result.output


def test_sft_detach_then_status_and_logs(ray_cluster: cluster.ClusterInfo, tmp_path: Path) -> None:
    data = write_tiny_jsonl(tmp_path / "train.jsonl")
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[finetune]\nbatch_size = 2\nlogging_steps = 1\neval_fraction = 0.0\n"
        "cpus_per_worker = 0.5\nmax_length = 256\n"
    )
    started = runner.invoke(
        app,
        ["finetune", "sft", "--data", str(data), "--output-dir", str(tmp_path / "run"),
         "--max-steps", "1", "--lora-r", "4", "--config", str(config), "--detach"],
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    job_id = re.search(r"job (sft-[\w-]+)", started.output).group(1)  # type: ignore[union-attr]
    wait_for_job(job_id, show_progress=False, timeout_s=600)
    status = runner.invoke(app, ["finetune", "status", job_id])
    assert status.exit_code == 0 and "succeeded, step 1/1" in status.output
    logs = runner.invoke(app, ["finetune", "logs", job_id, "--tail", "5"])
    assert logs.exit_code == 0 and f"fine-tune job {job_id} succeeded" in logs.output


def test_bad_values_are_one_line_exit_1_naming_them(tmp_path: Path) -> None:
    data = write_tiny_jsonl(tmp_path / "train.jsonl")
    bad = runner.invoke(
        app, ["finetune", "sft", "--data", str(data), "--output-dir", str(tmp_path), "--method",
              "dora"],
    )  # fmt: skip
    assert bad.exit_code == 1 and "'dora'" in bad.output
    unknown = runner.invoke(app, ["finetune", "status", "sft-unknown"])
    assert unknown.exit_code == 1 and "no fine-tune job 'sft-unknown'" in unknown.output
    for result in (bad, unknown):
        assert result.output.count("\n") == 1 and result.output.startswith("error: ")
