"""The public front of fine-tuning: ``sft`` starts a job on the local Ray and follows it (or
returns its id at once), ``status`` and ``logs`` follow a job from any process.

Everything the user gives is checked here, before a worker starts: the settings
(``TrainingConfig``), the base model (``resolve_base_model``) and the data
(``load_training_data``); a bad value raises ``FinetuneError`` naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, overload

from byzer_agents.exceptions import FinetuneError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.jobs import JobStatus, read_log, read_status, start_job, wait_for_job
from byzer_agents.finetune.trainer import RUN_RECORD, TrainingResult

__all__ = ["convert_deepspeed", "load_config_file", "logs", "pretrain", "sft", "status"]


@overload
def sft(
    data: Any,
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    method: str | None = None,
    *,
    config: TrainingConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    detached: Literal[False] = False,
    show_progress: bool = True,
    **settings: Any,
) -> TrainingResult: ...


@overload
def sft(
    data: Any,
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    method: str | None = None,
    *,
    config: TrainingConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    detached: Literal[True],
    show_progress: bool = True,
    **settings: Any,
) -> str: ...


def sft(
    data: Any,
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    method: str | None = None,
    *,
    config: TrainingConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    detached: bool = False,
    show_progress: bool = True,
    **settings: Any,
) -> TrainingResult | str:
    """Supervised fine-tuning of ``base_model`` on ``data``, run as a job on the local Ray.

    Args:
        data: what ``load_training_data`` reads: a trace store (or its ``.db``), a ``.jsonl``
            file, a BFCL directory, a Hugging Face dataset, ``ChatExample``s, a ``DatasetSplit``.
        base_model: ``"SmolLM2-135M-Instruct"`` (the shipped default), a Hugging Face
            directory or a GGUF file.
        output_dir: where the adapter (or full model), checkpoints, ``metrics.jsonl``,
            ``loss.png``, ``tensorboard/`` and the job's log go. Starting again with the same
            directory resumes from its newest checkpoint.
        method: ``"lora"``, ``"qlora"`` or ``"full"``; default: the config's, else LoRA.
        config: a ``TrainingConfig``, a dict of its settings, or a JSON / TOML file of them.
        detached: return the job's id at once (follow it with ``status`` / ``logs``), rather
            than wait with a progress bar and return the ``TrainingResult``.
        show_progress: draw the progress bar while waiting.
        **settings: ``TrainingConfig`` settings (``max_steps=100, learning_rate=1e-4`` ...),
            which win over ``config``'s.

    Raises:
        FinetuneError: a bad setting, method, base model or data (named), or the job failed
            (with the job's error); ``FinetuneDataError`` for data that cannot be used.
    """
    from byzer_agents.finetune.base_model import resolve_base_model
    from byzer_agents.finetune.data import load_training_data

    checked = _settings(config, method, settings)
    base = resolve_base_model(base_model)
    split = load_training_data(data, eval_fraction=checked.eval_fraction, seed=checked.seed)
    job = start_job(split, base.reference, Path(output_dir), checked)
    return _followed(job, detached=detached, show_progress=show_progress)


def pretrain(
    texts: Any,
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    method: str | None = None,
    *,
    config: TrainingConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    detached: bool = False,
    show_progress: bool = True,
    **settings: Any,
) -> TrainingResult | str:
    """Continued pretraining (Byzer-LLM's ``sfft``) of ``base_model`` on raw text, packed into
    ``max_length`` blocks, run as a job like ``sft`` (same outputs, resume, progress, ``status``
    and ``logs``).

    Args:
        texts: strings, ``.txt`` files, JSONL files with a ``"text"`` field, or directories of
            them (see ``pretrain.read_texts``).
        base_model, output_dir, method, config, detached, show_progress, **settings: as ``sft``.
    """
    from byzer_agents.finetune.base_model import resolve_base_model
    from byzer_agents.finetune.pretraining import read_texts

    checked = _settings(config, method, settings)
    base = resolve_base_model(base_model)
    documents = read_texts(texts)
    job = start_job(documents, base.reference, Path(output_dir), checked, kind="pretrain")
    return _followed(job, detached=detached, show_progress=show_progress)


def convert_deepspeed(
    checkpoint_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    base_model: str | os.PathLike[str] | None = None,
    detached: bool = False,
) -> Path | str:
    """Byzer-LLM's ``convert``: a DeepSpeed ZeRO checkpoint (a ``checkpoint-N`` directory, or a
    training output directory: its newest) consolidated into a safetensors Hugging Face
    directory at ``output_dir``, run as a job (``detached=True`` returns its id).
    ``convert.convert_deepspeed`` does the same in this process."""
    source = Path(checkpoint_dir).expanduser().resolve()
    if not source.is_dir():
        raise FinetuneError(f"checkpoint_dir {str(source)!r} is not a directory")
    payload = {"checkpoint_dir": str(source), "base_model": base_model}
    reference = str(base_model) if base_model is not None else str(source)
    job = start_job(payload, reference, Path(output_dir), TrainingConfig(), kind="convert")
    if detached:
        return job.job_id
    finished = wait_for_job(job.job_id, show_progress=False)
    return Path(finished.output_dir)


def status(job_id: str) -> JobStatus:
    """Where job ``job_id`` stands (queued / running / succeeded / failed, step of total, last
    loss, error, output_dir), from any process on this machine."""
    return read_status(job_id)


def logs(job_id: str) -> str:
    """Everything job ``job_id`` has printed so far: the trainer's progress, warnings, errors."""
    return read_log(job_id)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``TrainingConfig`` settings from a ``.json`` or ``.toml`` file (a ``[finetune]`` or
    ``[training]`` table, or the top level)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise FinetuneError(f"config file {str(source)!r} does not exist")
    text = source.read_text(encoding="utf-8")
    try:
        if source.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            settings: Any = tomllib.loads(text)
        elif source.suffix.lower() == ".json":
            settings = json.loads(text)
        else:
            raise FinetuneError(f"config file {str(source)!r} must end in .json or .toml")
    except (ValueError, TypeError) as exc:
        if isinstance(exc, FinetuneError):
            raise
        raise FinetuneError(f"config file {str(source)!r} cannot be read: {exc}") from None
    if isinstance(settings, dict):
        settings = settings.get("finetune") or settings.get("training") or settings
    if not isinstance(settings, dict):
        raise FinetuneError(f"config file {str(source)!r} must hold a table of settings")
    return settings


def _settings(
    config: TrainingConfig | dict[str, Any] | str | os.PathLike[str] | None,
    method: str | None,
    settings: dict[str, Any],
) -> TrainingConfig:
    if isinstance(config, str | os.PathLike):
        config = load_config_file(config)
    return TrainingConfig.build(config, method=method, **settings)


def _followed(job: JobStatus, *, detached: bool, show_progress: bool) -> TrainingResult | str:
    """The job's id at once when ``detached``, else its result once it has ended."""
    if detached:
        return job.job_id
    return _result(wait_for_job(job.job_id, show_progress=show_progress))


def _result(job: JobStatus) -> TrainingResult:
    record = Path(job.output_dir) / RUN_RECORD
    if not record.is_file():
        raise FinetuneError(
            f"job {job.job_id} succeeded but left no {RUN_RECORD} in {record.parent}"
        )
    return TrainingResult.from_json(json.loads(record.read_text(encoding="utf-8")))
