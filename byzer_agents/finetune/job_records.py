"""What a fine-tune job leaves on disk, so that any process can follow it: its ``JobStatus`` in
``job.json`` under its ``output_dir`` and, copied, in the registry (``jobs_dir()``), rewritten
whole (written aside, then renamed) at each step; and how a status is read, a job whose process is
gone without finishing being reported (and recorded) as failed."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from byzer_agents.exceptions import FinetuneError

__all__ = [
    "ACTOR_PREFIX",
    "JOB_KINDS",
    "JOB_RECORD",
    "JobKind",
    "JobState",
    "JobStatus",
    "jobs_dir",
    "read_checked",
    "read_record",
    "read_status",
    "write_record",
]

JOB_RECORD = "job.json"
JobState = Literal["queued", "running", "succeeded", "failed"]
JobKind = Literal["sft", "pretrain", "convert"]
JOB_KINDS: tuple[JobKind, ...] = ("sft", "pretrain", "convert")
ACTOR_PREFIX = "finetune#"
"""A job's Ray actor is named this followed by the job id."""
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
        """Whether the job has ended (succeeded or failed)."""
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
    return read_checked(path)


def read_checked(path: Path) -> JobStatus:
    """The status a ``job.json`` holds, or failed (and so recorded) when it says the job runs
    but its process is gone."""
    return _checked(read_record(path))


def read_record(path: Path) -> JobStatus:
    """The status a ``job.json`` holds, as written (see ``read_status`` for a checked one)."""
    return JobStatus.model_validate_json(path.read_text(encoding="utf-8"))


def write_record(status: JobStatus) -> None:
    """Write ``status`` to the job's ``job.json`` and to the registry, each replaced whole."""
    text = status.model_dump_json(indent=2) + "\n"
    for path in (Path(status.output_dir) / JOB_RECORD, Path(status.registry_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)


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
    write_record(failed)
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

        ray.get_actor(ACTOR_PREFIX + status.job_id, namespace=NAMESPACE)
    except ValueError:
        return False
    except Exception:  # no cluster to ask: do not call the job dead on that alone
        return True
    return True
