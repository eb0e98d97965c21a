"""Supervised fine-tuning in this process: chat examples rendered by the runtime's renderer, TRL's
``SFTTrainer`` with PEFT (LoRA, QLoRA) or all weights, loss on the completions only, checkpoints
every ``save_steps`` and a resume from the newest one when a run starts again in the same
``output_dir``.

Jobs (``finetune.jobs``) run this function inside a Ray worker; Ray Train runs it on each of its
workers when ``num_workers > 1``. What a finished run leaves in ``output_dir``:

- LoRA / QLoRA: ``adapter_model.safetensors`` and ``adapter_config.json`` (PEFT's), whose
  ``base_model_name_or_path`` is the base's portable reference (``resolve_base_model``);
- full: a Hugging Face directory (``model.safetensors``, config, tokenizer) the runtime deploys;
- ``byzer_agents_finetune.json``: what was trained, on what, with which settings, and the
  figures (steps, tokens, seconds, losses), read by ``merge``, the runtime and the model card.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune.base_model import (
    BaseCheckpoint,
    load_base_model,
    load_tokenizer,
    resolve_base_model,
)
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.examples import DatasetSplit
from byzer_agents.finetune.rendering import TrainingText, render_examples

__all__ = [
    "RUN_RECORD",
    "TrainingResult",
    "build_sft_trainer",
    "ensure_distributed_env",
    "fit_and_save",
    "latest_checkpoint",
    "prepare_process",
    "train_sft",
]

logger = logging.getLogger(__name__)

RUN_RECORD = "byzer_agents_finetune.json"
"""Written into every finished output directory: the job's settings, data and figures."""

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainingResult:
    """What a finished run reports (also written to ``RUN_RECORD``)."""

    output_dir: str
    kind: str
    """``"adapter"`` (LoRA / QLoRA) or ``"model"`` (full weights)."""
    base_model: str
    method: str
    train_examples: int
    eval_examples: int
    train_tokens: int
    truncated: int
    """Training sequences longer than ``max_length`` (cut, the prompt's start kept)."""
    steps: int
    seconds: float
    resumed_from: str | None
    train_loss: float | None
    eval_loss: float | None
    config: dict[str, Any] = field(default_factory=dict)
    losses: list[dict[str, float]] = field(default_factory=list)
    world_size: int = 1
    """How many processes trained together (Ray Train workers, DeepSpeed ranks)."""

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TrainingResult:
        """A result read back from ``RUN_RECORD`` (derived figures dropped)."""
        known = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        return cls(**known)

    @property
    def steps_per_second(self) -> float:
        """Training steps per second of wall-clock time (0 when no time was measured)."""
        return self.steps / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready values, ``steps_per_second`` included."""
        return {**asdict(self), "steps_per_second": self.steps_per_second}


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The newest ``checkpoint-N`` directory the trainer saved in ``output_dir``, if any."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    numbered = [
        (int(match.group(1)), entry)
        for entry in root.iterdir()
        if entry.is_dir() and (match := _CHECKPOINT.match(entry.name))
    ]
    complete = [(n, entry) for n, entry in numbered if (entry / "trainer_state.json").is_file()]
    return max(complete)[1] if complete else None


def train_sft(
    data: DatasetSplit,
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    config: TrainingConfig,
    *,
    callbacks: Sequence[Any] = (),
    report_to: Sequence[str] = (),
) -> TrainingResult:
    """Train ``base_model`` on ``data`` into ``output_dir`` (see the module's docstring), resuming
    from the newest checkpoint there. ``callbacks`` are transformers ``TrainerCallback``s;
    ``report_to`` names transformers' reporters (``"tensorboard"``)."""
    if not data.train:
        raise FinetuneDataError("no training examples: the data is empty")
    base = resolve_base_model(base_model)
    tokenizer, template = load_tokenizer(base.checkpoint)
    train_texts = render_examples(data.train, template, tool_choice=config.tool_choice)
    eval_texts = render_examples(data.eval, template, tool_choice=config.tool_choice)
    train_tokens, truncated = _token_counts(tokenizer, train_texts, config.max_length)

    return fit_and_save(
        lambda model, output: _sft_trainer(
            model, tokenizer, train_texts, eval_texts, output, config, callbacks, report_to
        ),
        base,
        tokenizer,
        output_dir,
        config,
        train_examples=len(data.train),
        eval_examples=len(data.eval),
        train_tokens=train_tokens,
        truncated=truncated,
    )


def fit_and_save(
    build_trainer: Callable[[Any, Path], Any],
    base: BaseCheckpoint,
    tokenizer: Any,
    output_dir: str | os.PathLike[str],
    config: TrainingConfig,
    *,
    train_examples: int,
    eval_examples: int,
    train_tokens: int,
    truncated: int,
    record_extra: Callable[[Any], dict[str, Any]] | None = None,
) -> TrainingResult:
    """The part every trainer shares: the model to train (``_trainable_model``), the trainer
    ``build_trainer(model, output)`` makes, a resume from the newest checkpoint in
    ``output_dir``, the eval loss, and rank 0 saving the weights and ``RUN_RECORD`` (with
    ``record_extra(trainer)`` merged in)."""
    output = Path(output_dir).resolve()
    output.mkdir(parents=True, exist_ok=True)
    prepare_process(config)
    resume = latest_checkpoint(output)
    trainer = build_trainer(_trainable_model(base.checkpoint, config), output)
    if resume is not None:
        logger.info("resuming from %s", resume)
    started = time.perf_counter()
    outcome = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started

    eval_loss = None
    if eval_examples:
        eval_loss = float(trainer.evaluate().get("eval_loss", float("nan")))
    result = TrainingResult(
        output_dir=str(output),
        kind="model" if config.method == "full" else "adapter",
        base_model=base.reference,
        method=config.method,
        train_examples=train_examples,
        eval_examples=eval_examples,
        train_tokens=train_tokens,
        truncated=truncated,
        steps=int(trainer.state.global_step),
        seconds=round(seconds, 2),
        resumed_from=str(resume) if resume else None,
        train_loss=float(outcome.training_loss) if outcome.training_loss is not None else None,
        eval_loss=eval_loss,
        config=config.summary(),
        losses=[
            {key: float(value) for key, value in entry.items() if isinstance(value, int | float)}
            for entry in trainer.state.log_history
            if "loss" in entry or "eval_loss" in entry
        ],
        world_size=int(trainer.args.world_size),
    )
    if trainer.is_world_process_zero():
        _save(trainer, tokenizer, output, base.reference, config)
        record = {**result.to_json(), **(record_extra(trainer) if record_extra else {})}
        (output / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return result


def prepare_process(config: TrainingConfig) -> None:
    """Ready this process for a run of ``config``: the one-process group DeepSpeed needs, or,
    without DeepSpeed, none of what an earlier DeepSpeed run here left behind (accelerate keeps
    ``ACCELERATE_USE_DEEPSPEED`` in the environment and its state in class attributes, and the
    next plain run would try to start a DeepSpeed engine)."""
    if config.deepspeed is not None:
        ensure_distributed_env()
    elif os.environ.pop("ACCELERATE_USE_DEEPSPEED", None) is not None:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)


def ensure_distributed_env() -> None:
    """Give a process started without a launcher (``deepspeed``, ``torchrun``, Ray Train) the
    environment of a one-process group, so DeepSpeed can start: ``MASTER_ADDR`` / ``MASTER_PORT``
    (loopback, a free port), ``RANK`` 0, ``WORLD_SIZE`` 1, ``LOCAL_RANK`` 0. Values a launcher
    set are kept."""
    if "MASTER_PORT" not in os.environ:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
    defaults = {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])


def _token_counts(tokenizer: Any, texts: Sequence[TrainingText], limit: int) -> tuple[int, int]:
    lengths = [
        len(tokenizer(text.prompt + text.completion, add_special_tokens=False)["input_ids"])
        for text in texts
    ]
    return sum(min(length, limit) for length in lengths), sum(length > limit for length in lengths)


def _trainable_model(checkpoint: Path, config: TrainingConfig) -> Any:
    model = load_base_model(checkpoint, config)
    if config.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _sft_trainer(
    model: Any,
    tokenizer: Any,
    train_texts: Sequence[TrainingText],
    eval_texts: Sequence[TrainingText],
    output: Path,
    config: TrainingConfig,
    callbacks: Sequence[Any],
    report_to: Sequence[str],
) -> Any:
    rows = [{"prompt": t.prompt, "completion": t.completion} for t in train_texts]
    eval_rows = [{"prompt": t.prompt, "completion": t.completion} for t in eval_texts]
    return build_sft_trainer(
        model,
        tokenizer,
        rows,
        eval_rows,
        output,
        config,
        callbacks,
        report_to,
        truncation_mode="keep_start",
        completion_only_loss=True,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )


def build_sft_trainer(
    model: Any,
    tokenizer: Any,
    train_rows: Sequence[dict[str, Any]],
    eval_rows: Sequence[dict[str, Any]],
    output: Path,
    config: TrainingConfig,
    callbacks: Sequence[Any],
    report_to: Sequence[str],
    **task_arguments: Any,
) -> Any:
    """TRL's ``SFTTrainer`` over dataset rows, with the arguments every job shares taken from
    ``config`` and the task's own (``packing``, ``completion_only_loss`` ...) laid over them; on
    a CPU the loss goes through the model's own forward (``_plain_loss_trainer``)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    on_gpu = torch.cuda.is_available()
    arguments = SFTConfig(
        output_dir=str(output),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="no",
        seed=config.seed,
        data_seed=config.seed,
        max_length=config.max_length,
        report_to=list(report_to) or "none",
        use_cpu=not on_gpu,
        bf16=on_gpu and config.dtype == "bfloat16",
        fp16=on_gpu and config.dtype == "float16",
        deepspeed=config.deepspeed,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=False,
        save_only_model=False,
        **task_arguments,
    )
    trainer_class = SFTTrainer if on_gpu else _plain_loss_trainer(SFTTrainer)
    return trainer_class(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_list(list(train_rows)),
        eval_dataset=Dataset.from_list(list(eval_rows)) if eval_rows else None,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def _plain_loss_trainer(sft_trainer: type) -> type:
    """``SFTTrainer`` computing the loss through the model's own forward (full logits).

    Why: TRL 1.16 patches a fused LM head into the model that scores the completion tokens in
    tiles; off the GPU its kernel falls back to a per-tile torch loop that was measured here at
    over 8 minutes for one step of 8 sequences with bfloat16 weights (the plain forward: about 10
    s). The labels TRL's collator builds already mask the prompt, so the loss is the same one;
    only TRL's entropy and token-accuracy metrics are not logged.
    """
    from transformers import Trainer

    class PlainLossSFTTrainer(sft_trainer):
        def compute_loss(
            self,
            model: Any,
            inputs: Any,
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            return Trainer.compute_loss(
                self,
                model,
                inputs,
                return_outputs=return_outputs,
                num_items_in_batch=num_items_in_batch,
            )

    return PlainLossSFTTrainer


def _save(
    trainer: Any, tokenizer: Any, output: Path, reference: str, config: TrainingConfig
) -> None:
    model = trainer.model
    if config.method == "full":
        trainer.save_model(str(output))
        tokenizer.save_pretrained(str(output))
        return
    # Saved as loaded (PEFT looks the base up by the name it holds, which must be the local
    # directory: a portable name sends it to the Hub), then the portable name written in.
    model.save_pretrained(str(output), safe_serialization=True)
    adapter_config = output / "adapter_config.json"
    settings = json.loads(adapter_config.read_text(encoding="utf-8"))
    settings["base_model_name_or_path"] = reference
    adapter_config.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    if config.adapter_dtype != "float32":
        _cast_adapter(output / "adapter_model.safetensors", config.adapter_dtype)


def _cast_adapter(path: Path, dtype_name: str) -> None:
    """Rewrite the adapter's tensors in ``dtype_name`` (halves the file for bf16/fp16)."""
    import torch
    from safetensors.torch import load_file, save_file

    if not path.is_file():
        raise FinetuneError(f"the trainer saved no adapter at {path}")
    dtype = getattr(torch, dtype_name)
    tensors = {name: tensor.to(dtype).contiguous() for name, tensor in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
