"""Fine-tune jobs on the local Ray: detached with status and logs, the files that watch a run,
a kill -9 and the resume, failures that come back typed, bad inputs refused up front."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from byzer_agents import finetune
from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune.jobs import JOB_RECORD, wait_for_job
from byzer_agents.finetune.monitor import METRICS_FILE, read_metrics
from byzer_agents.finetune.trainer import latest_checkpoint
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL
from tests.finetune.tiny_data import TINY_SETTINGS, tiny_records


def test_detached_job_is_followed_by_status_and_logs(
    ray_cluster: cluster.ClusterInfo, tmp_path: Path
) -> None:
    job_id = finetune.sft(
        tiny_records(), DEFAULT_CHAT_MODEL, tmp_path, detached=True, **TINY_SETTINGS
    )
    assert finetune.status(job_id).state in ("queued", "running")
    done = wait_for_job(job_id, show_progress=False, timeout_s=600)
    status = finetune.status(job_id)
    assert status == done and status.state == "succeeded"
    assert status.step == status.total_steps == 2 and status.loss is not None
    assert status.output_dir == str(tmp_path.resolve())
    assert f"fine-tune job {job_id}" in finetune.logs(job_id)
    assert "2/2" in finetune.logs(job_id)  # the trainer's own progress bar
    assert json.loads((tmp_path / JOB_RECORD).read_text())["job_id"] == job_id

    assert [entry["step"] for entry in read_metrics(tmp_path) if "loss" in entry] == [1, 2]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    from PIL import Image

    with Image.open(tmp_path / "loss.png") as image:
        image.verify()
        assert image.format == "PNG"


def test_killed_job_resumes_from_its_last_checkpoint(
    ray_cluster: cluster.ClusterInfo, tmp_path: Path
) -> None:
    settings = {**TINY_SETTINGS, "max_steps": 4}
    job_id = finetune.sft(tiny_records(), DEFAULT_CHAT_MODEL, tmp_path, detached=True, **settings)
    deadline = time.monotonic() + 600
    while latest_checkpoint(tmp_path) is None:
        assert time.monotonic() < deadline and not finetune.status(job_id).finished
        time.sleep(0.1)
    pid = finetune.status(job_id).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    killed = finetune.status(job_id)
    assert killed.state == "failed" and "resume" in (killed.error or "")
    reached = int(latest_checkpoint(tmp_path).name.split("-")[1])  # type: ignore[union-attr]
    assert reached < 4

    result = finetune.sft(
        tiny_records(), DEFAULT_CHAT_MODEL, tmp_path, show_progress=False, **settings
    )
    assert result.resumed_from is not None and result.resumed_from.endswith(f"checkpoint-{reached}")
    assert result.steps == 4  # the global step went on from the checkpoint, not from 0
    logged = [int(entry["step"]) for entry in result.losses if "loss" in entry]
    assert logged[0] == 1 and logged[-1] == 4
    steps_in_file = {entry["step"] for entry in read_metrics(tmp_path) if "loss" in entry}
    assert steps_in_file == {1, 2, 3, 4}
    assert (tmp_path / METRICS_FILE).is_file() and (
        tmp_path / "adapter_model.safetensors"
    ).is_file()


def test_a_failure_inside_the_job_comes_back_as_a_typed_error(
    ray_cluster: cluster.ClusterInfo, tmp_path: Path
) -> None:
    settings = {**TINY_SETTINGS, "target_modules": ["no_such_module"]}
    with pytest.raises(FinetuneError, match="no_such_module") as raised:
        finetune.sft(tiny_records(), DEFAULT_CHAT_MODEL, tmp_path, show_progress=False, **settings)
    assert "failed" in str(raised.value)
    job_id = json.loads((tmp_path / JOB_RECORD).read_text())["job_id"]
    assert finetune.status(job_id).state == "failed"
    assert "no_such_module" in finetune.logs(job_id)


def test_bad_inputs_are_refused_before_a_job_starts(tmp_path: Path) -> None:
    records = tiny_records()
    with pytest.raises(FinetuneError, match="'sgd'"):
        finetune.sft(records, DEFAULT_CHAT_MODEL, tmp_path, method="sgd")
    with pytest.raises(FinetuneError, match="unknown setting 'learning_rat'"):
        finetune.sft(records, DEFAULT_CHAT_MODEL, tmp_path, learning_rat=1e-4)
    with pytest.raises(FinetuneError, match="no-such-model"):
        finetune.sft(records, tmp_path / "no-such-model", tmp_path)
    with pytest.raises(FinetuneDataError, match="empty"):
        finetune.sft([], DEFAULT_CHAT_MODEL, tmp_path)
    with pytest.raises(FinetuneError, match="no fine-tune job 'sft-nope'"):
        finetune.status("sft-nope")
    assert not (tmp_path / JOB_RECORD).exists()
