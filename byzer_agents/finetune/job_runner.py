"""Inside a fine-tune job: the detached Ray actor that runs it (``JobActor``), what it runs
(``run_job``: the trainer for ``sft`` and ``pretrain``, the consolidation for ``convert``, or Ray
Train's ``TorchTrainer`` for ``num_workers > 1``), its output sent to the job's log, and its status
written as it goes (``job_records``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.examples import DatasetSplit
from byzer_agents.finetune.job_records import JobStatus, read_record, write_record

__all__ = ["TENSORBOARD_DIR", "JobActor", "run_job"]

TENSORBOARD_DIR = "tensorboard"


class JobActor:
    """The Ray actor of one job: runs it on a thread started at creation, then ends itself."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self._thread = threading.Thread(target=self._run, args=(payload,), daemon=True)
        self._thread.start()

    def _run(self, payload: dict[str, Any]) -> None:
        try:
            run_job(payload)
        finally:
            import ray

            with contextlib.suppress(Exception):
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def ping(self) -> bool:
        """Whether the job is still running."""
        return self._thread.is_alive()


def run_job(payload: dict[str, Any]) -> JobStatus:
    """Run one job here (the actor's process), writing its status as it goes; never raises for
    a failure of the training: that is recorded in the status."""
    status = JobStatus.model_validate(payload["status"])
    config = TrainingConfig.model_validate(payload["config"])
    data: Any = payload["data"]
    _redirect_output(Path(status.log_path))
    _say(f"=== fine-tune job {status.job_id}: {status.method} of {status.base_model} ===")
    status = status.model_copy(
        update={"state": "running", "pid": os.getpid(), "updated_at": time.time()}
    )
    write_record(status)
    lock = threading.Lock()

    def progress(step: int, total: int, loss: float | None) -> None:
        nonlocal status
        with lock:
            status = status.model_copy(
                update={"step": step, "total_steps": total, "loss": loss, "updated_at": time.time()}
            )
            write_record(status)

    try:
        if config.num_workers > 1:
            steps = _train_on_ray_train(payload, status, config, data)
        else:
            steps = _train_here(status, config, data, progress).steps
        status = status.model_copy(update={"state": "succeeded", "step": steps})
    except BaseException as exc:
        traceback.print_exc()
        error_type = type(exc).__name__ if isinstance(exc, FinetuneError) else "FinetuneError"
        status = status.model_copy(
            update={"state": "failed", "error": _describe(exc), "error_type": error_type}
        )
    finally:
        with lock:
            # Ray Train's rank 0 wrote the progress of a distributed run: keep its step and loss.
            with contextlib.suppress(OSError, ValueError):
                latest = read_record(Path(status.registry_path))
                status = status.model_copy(
                    update={"total_steps": latest.total_steps, "loss": latest.loss}
                )
            status = status.model_copy(
                update={"finished_at": time.time(), "updated_at": time.time()}
            )
            write_record(status)
        _say(f"=== fine-tune job {status.job_id} {status.describe()} ===")
    return status


def _train_here(status: JobStatus, config: TrainingConfig, data: Any, progress: Any) -> Any:
    """Run the job's task in this process: the trainer for ``sft`` and ``pretrain`` (with the
    monitor's progress, metrics.jsonl, loss.png and TensorBoard), the consolidation for
    ``convert``."""
    from byzer_agents.finetune.monitor import TrainingMonitor

    if status.kind == "convert":
        from byzer_agents.finetune.convert import convert_deepspeed

        convert_deepspeed(
            data["checkpoint_dir"], status.output_dir, base_model=data.get("base_model")
        )
        return _Converted()
    from byzer_agents.finetune.pretraining import train_pretrain
    from byzer_agents.finetune.trainer import train_sft

    train: Callable[..., Any] = train_pretrain if status.kind == "pretrain" else train_sft

    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(status.output_dir) / TENSORBOARD_DIR)
    return train(
        data,
        status.base_model,
        status.output_dir,
        config,
        callbacks=[TrainingMonitor(status.output_dir, progress)],
        report_to=["tensorboard"],
    )


class _Converted:
    """What a convert job reports in place of a training result."""

    steps = 0


def _train_on_ray_train(
    payload: dict[str, Any], status: JobStatus, config: TrainingConfig, data: DatasetSplit
) -> int:
    """Ray Train's TorchTrainer (gloo on CPU): each worker runs ``train_sft`` in a process group
    Ray set up (transformers joins it: ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` are set);
    rank 0 saves and writes the run record, read back here."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from byzer_agents.finetune.trainer import RUN_RECORD

    output = Path(status.output_dir)
    (output / RUN_RECORD).unlink(missing_ok=True)
    trainer = TorchTrainer(
        _ray_train_worker,
        train_loop_config={
            "status": status.model_dump(),
            "config": payload["config"],
            "data": data,
        },
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=False,
            resources_per_worker={"CPU": config.cpus_per_worker},
        ),
        run_config=RunConfig(name=status.job_id, storage_path=str(output / "ray_train")),
    )
    trainer.fit()
    record = output / RUN_RECORD
    if not record.is_file():
        raise FinetuneError(f"Ray Train finished but rank 0 wrote no {RUN_RECORD} in {output}")
    return int(json.loads(record.read_text(encoding="utf-8"))["steps"])


def _ray_train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: ``train_sft`` on its share of the batches."""
    import ray.train

    status = JobStatus.model_validate(loop_config["status"])
    config = TrainingConfig.model_validate(loop_config["config"])
    _redirect_output(Path(status.log_path))
    context = ray.train.get_context()
    _say(f"--- Ray Train worker {context.get_world_rank()} of {context.get_world_size()} ---")
    lock = threading.Lock()

    def progress(step: int, total: int, loss: float | None) -> None:
        nonlocal status
        with lock:
            latest = read_record(Path(status.registry_path))
            status = latest.model_copy(
                update={"step": step, "total_steps": total, "loss": loss, "updated_at": time.time()}
            )
            write_record(status)

    _train_here(status, config, loop_config["data"], progress)


def _redirect_output(log: Path) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2: the trainer's tqdm,
    warnings, tracebacks) to the job's log, appended."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    logging.getLogger("byzer_agents").setLevel(logging.INFO)
    if not any(
        isinstance(h, logging.StreamHandler) for h in logging.getLogger("byzer_agents").handlers
    ):
        logging.getLogger("byzer_agents").addHandler(logging.StreamHandler(sys.stderr))


def _say(line: str) -> None:
    """A line into the job's log (file descriptor 1, not ``print``: Ray Train reroutes print)."""
    sys.stdout.flush()
    os.write(1, (line + "\n").encode())


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = f"{type(cause).__name__}: {cause}".strip()
    return text if len(text) <= 4000 else text[:1000] + " ... " + text[-3000:]
