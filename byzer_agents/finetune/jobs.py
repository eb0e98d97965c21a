"""Fine-tune jobs on the project's local Ray: one named, detached actor per job runs ``train_sft``
(or, for ``num_workers > 1``, drives Ray Train's ``TorchTrainer`` whose workers each run it), and
files on disk let any process follow it.

Why an actor and not Ray's job API: the local cluster has no dashboard (``llm_runtime.cluster``),
and Ray's ``JobSubmissionClient`` talks to the dashboard. A detached actor (namespace
``byzer_agents``, like the model deployments) outlives the driver that started it, so
``detached=True`` and ``byzer-agents finetune sft --detach`` can return at once. The actor starts
its job in ``__init__`` (creation of a detached actor is the GCS's to finish, not the driver's) and
ends itself when the job is over, giving its CPUs back.

What a job writes, all under its ``output_dir`` (the same directory the trainer writes):

- ``job.json``: its ``JobStatus`` (state, step/total, last loss, error), rewritten at each step;
  a copy goes to the registry, ``$BYZER_AGENTS_CACHE/jobs/<job_id>.json`` (default
  ``~/.cache/byzer_agents/jobs``), which is how ``status(job_id)`` finds it;
- ``job-<job_id>.log``: everything the job printed (the trainer's tqdm bar included);
- ``metrics.jsonl``, ``loss.png`` (``finetune.monitor``) and ``tensorboard/`` event files.

This module is the driver's side (start a job, follow it, read its log); what a job writes and
how it is read back is ``job_records.py``, what runs inside the actor ``job_runner.py``.

A job killed with its process (``kill -9``, out of memory) cannot write its end: ``status`` sees
the process gone and reports it failed. Starting ``sft`` again with the same ``output_dir``
resumes from the newest checkpoint (``train_sft`` does; a job only refuses to start while another
one is alive in that directory).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.job_records import (
    ACTOR_PREFIX,
    JOB_KINDS,
    JOB_RECORD,
    JobKind,
    JobState,
    JobStatus,
    jobs_dir,
    read_checked,
    read_status,
    write_record,
)
from byzer_agents.finetune.job_runner import JobActor

__all__ = [
    "JOB_RECORD",
    "JobState",
    "JobStatus",
    "jobs_dir",
    "read_log",
    "read_status",
    "start_job",
    "wait_for_job",
]


def read_log(job_id: str) -> str:
    """Everything job ``job_id`` has printed so far (empty before it starts)."""
    log = Path(read_status(job_id).log_path)
    return log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""


def start_job(
    data: Any,
    base_model: str,
    output_dir: Path,
    config: TrainingConfig,
    *,
    kind: JobKind = "sft",
) -> JobStatus:
    """Start a job on the local Ray and return its queued status at once. ``kind`` says what it
    runs on ``data``: ``"sft"`` (a ``DatasetSplit``), ``"pretrain"`` (``pretrain.Document``s)
    or ``"convert"`` (``{"checkpoint_dir": ...}``: a DeepSpeed checkpoint to consolidate)."""
    if kind not in JOB_KINDS:
        raise FinetuneError(f"unknown job kind {kind!r}; the kinds are {list(JOB_KINDS)}")
    if kind != "sft" and config.num_workers > 1:
        raise FinetuneError(
            f"num_workers={config.num_workers}: Ray Train workers run SFT jobs only; a {kind} "
            "job runs in one worker"
        )
    from byzer_agents.llm_runtime.cluster import NAMESPACE, connect

    output = output_dir.expanduser().resolve()
    _refuse_if_busy(output)
    connect()
    import ray

    actor_cpus = config.cpus_per_worker if config.num_workers == 1 else 0
    _check_resources(config)
    job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    now = time.time()
    output.mkdir(parents=True, exist_ok=True)
    status = JobStatus(
        job_id=job_id,
        kind=kind,
        state="queued",
        output_dir=str(output),
        base_model=base_model,
        method=config.method,
        num_workers=config.num_workers,
        log_path=str(output / f"job-{job_id}.log"),
        host=socket.gethostname(),
        created_at=now,
        updated_at=now,
        registry_path=str(jobs_dir() / f"{job_id}.json"),
    )
    write_record(status)
    payload = {"status": status.model_dump(), "data": data, "config": config.summary()}
    actor = ray.remote(JobActor).options(
        name=ACTOR_PREFIX + job_id,
        namespace=NAMESPACE,
        lifetime="detached",
        max_restarts=0,
        num_cpus=actor_cpus,
    )
    actor.remote(payload)
    return status


def wait_for_job(
    job_id: str, *, show_progress: bool = True, poll_s: float = 0.5, timeout_s: float | None = None
) -> JobStatus:
    """Follow job ``job_id`` until it ends (a rich progress bar of its steps when
    ``show_progress``) and return its final status; a failed job raises ``FinetuneError`` (or
    ``FinetuneDataError``) with the job's error."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with _progress_bar(job_id, enabled=show_progress) as update:
        while True:
            status = read_status(job_id)
            update(status)
            if status.finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise FinetuneError(
                    f"fine-tune job {job_id} did not finish within {timeout_s:g} s "
                    f"({status.describe()}); it keeps running: follow it with status({job_id!r})"
                )
            time.sleep(poll_s)
    if status.state == "failed":
        error_class = (
            FinetuneDataError if status.error_type == "FinetuneDataError" else (FinetuneError)
        )
        raise error_class(f"fine-tune job {job_id} failed: {status.error}")
    return status


def _refuse_if_busy(output: Path) -> None:
    record = output / JOB_RECORD
    if not record.is_file():
        return
    try:
        previous = read_checked(record)
    except (OSError, ValueError):
        return
    if not previous.finished:
        raise FinetuneError(
            f"fine-tune job {previous.job_id} is still {previous.state} in {str(output)!r}; wait "
            "for it (status / logs), or give another output_dir"
        )


def _check_resources(config: TrainingConfig) -> None:
    """Refuse at once what Ray would otherwise queue for ever: more CPUs than are free."""
    import ray

    needed = config.cpus_per_worker * config.num_workers
    free = ray.available_resources().get("CPU", 0.0)
    if needed > free + 1e-9:
        raise FinetuneError(
            f"the job needs {needed:g} CPU ({config.num_workers} worker(s) x "
            f"{config.cpus_per_worker:g}, cpus_per_worker), but the Ray cluster has {free:g} free; "
            "ask for less, or undeploy a model (`byzer-agents list`)"
        )


@contextlib.contextmanager
def _progress_bar(job_id: str, *, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield lambda status: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    task = progress.add_task(f"{job_id}: queued", total=None)

    def update(status: JobStatus) -> None:
        loss = f", loss {status.loss:.4g}" if status.loss is not None else ""
        progress.update(
            task,
            completed=status.step,
            total=status.total_steps or None,
            description=f"{job_id}: {status.state}{loss}",
        )

    with progress:
        yield update
