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

A job killed with its process (``kill -9``, out of memory) cannot write its end: ``status`` sees
the process gone and reports it failed. Starting ``sft`` again with the same ``output_dir``
resumes from the newest checkpoint (``train_sft`` does; a job only refuses to start while another
one is alive in that directory).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.examples import DatasetSplit

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

JOB_RECORD = "job.json"
TENSORBOARD_DIR = "tensorboard"
JobState = Literal["queued", "running", "succeeded", "failed"]
JobKind = Literal["sft", "pretrain", "convert"]
JOB_KINDS: tuple[JobKind, ...] = ("sft", "pretrain", "convert")
_ACTOR_PREFIX = "finetune#"
_FINISHED = ("succeeded", "failed")


class JobStatus(BaseModel):
    """Where a fine-tune job stands, as its ``job.json`` says."""

    job_id: str
    kind: JobKind = "sft"
    state: JobState
    output_dir: str
    base_model: str
    method: str
    num_workers: int = 1
    step: int = 0
    total_steps: int = 0
    """0 until the trainer has worked out how many steps the run has."""
    loss: float | None = None
    """The last training loss logged."""
    error: str | None = None
    """Why a failed job failed: the exception's type and text."""
    error_type: str | None = None
    log_path: str
    pid: int | None = None
    """The process running the job (the actor's worker), once it has started."""
    host: str
    created_at: float
    updated_at: float
    finished_at: float | None = None
    registry_path: str

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED

    def describe(self) -> str:
        """One line for people: ``running, step 3/10, loss 1.234``."""
        parts: list[str] = [self.state]
        if self.total_steps:
            parts.append(f"step {self.step}/{self.total_steps}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.error:
            parts.append(f"error: {self.error}")
        return ", ".join(parts)


def jobs_dir() -> Path:
    """The job registry: ``$BYZER_AGENTS_CACHE/jobs``, by default ``~/.cache/byzer_agents/jobs``."""
    root = os.environ.get("BYZER_AGENTS_CACHE") or Path.home() / ".cache" / "byzer_agents"
    return Path(root).expanduser() / "jobs"


def read_status(job_id: str) -> JobStatus:
    """The job's status from any process; a job whose process is gone without finishing is
    reported (and recorded) as failed."""
    path = jobs_dir() / f"{job_id}.json"
    if not path.is_file():
        known = sorted(entry.stem for entry in jobs_dir().glob("*.json"))[-10:]
        raise FinetuneError(f"no fine-tune job {job_id!r} (recent jobs: {known or 'none'})")
    return _checked(_read(path))


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
    _write(status)
    payload = {"status": status.model_dump(), "data": data, "config": config.summary()}
    actor = ray.remote(_JobActor).options(
        name=_ACTOR_PREFIX + job_id,
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


# --- the driver's checks ---------------------------------------------------------------------


def _refuse_if_busy(output: Path) -> None:
    record = output / JOB_RECORD
    if not record.is_file():
        return
    try:
        previous = _checked(_read(record))
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


def _checked(status: JobStatus) -> JobStatus:
    """``status``, or failed when it says running but its process is gone."""
    if status.finished:
        return status
    gone = None
    if status.pid is not None and status.host == socket.gethostname():
        if not _pid_alive(status.pid):
            gone = f"its process (pid {status.pid}) is gone"
    elif status.pid is None and time.time() - status.created_at > 30 and not _actor_alive(status):
        gone = "its Ray actor is gone before it started"
    if gone is None:
        return status
    from byzer_agents.finetune.trainer import latest_checkpoint

    checkpoint = latest_checkpoint(status.output_dir)
    resume = (
        f"start sft again with output_dir {status.output_dir!r} to resume from {checkpoint.name}"
        if checkpoint
        else "it saved no checkpoint; start it again"
    )
    failed = status.model_copy(
        update={
            "state": "failed",
            "error": f"the job stopped without finishing: {gone} (killed, or out of memory?); "
            + resume,
            "error_type": "FinetuneError",
            "finished_at": time.time(),
        }
    )
    _write(failed)
    return failed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child stays a zombie until reaped: alive to kill(0), dead to us.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def _actor_alive(status: JobStatus) -> bool:
    try:
        from byzer_agents.llm_runtime.cluster import NAMESPACE, connect

        connect(start=False)
        import ray

        ray.get_actor(_ACTOR_PREFIX + status.job_id, namespace=NAMESPACE)
    except ValueError:
        return False
    except Exception:  # no cluster to ask: do not call the job dead on that alone
        return True
    return True


# --- files -----------------------------------------------------------------------------------


def _read(path: Path) -> JobStatus:
    return JobStatus.model_validate_json(path.read_text(encoding="utf-8"))


def _write(status: JobStatus) -> None:
    text = status.model_dump_json(indent=2) + "\n"
    for path in (Path(status.output_dir) / JOB_RECORD, Path(status.registry_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)


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


# --- inside the job --------------------------------------------------------------------------


class _JobActor:
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
    _write(status)
    lock = threading.Lock()

    def progress(step: int, total: int, loss: float | None) -> None:
        nonlocal status
        with lock:
            status = status.model_copy(
                update={"step": step, "total_steps": total, "loss": loss, "updated_at": time.time()}
            )
            _write(status)

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
                latest = _read(Path(status.registry_path))
                status = status.model_copy(
                    update={"total_steps": latest.total_steps, "loss": latest.loss}
                )
            status = status.model_copy(
                update={"finished_at": time.time(), "updated_at": time.time()}
            )
            _write(status)
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
            latest = _read(Path(status.registry_path))
            status = latest.model_copy(
                update={"step": step, "total_steps": total, "loss": loss, "updated_at": time.time()}
            )
            _write(status)

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
