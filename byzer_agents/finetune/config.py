"""What a fine-tune job is asked to do, typed and checked once: the method (LoRA, QLoRA, full),
the optimiser's schedule, checkpointing, and where it runs (DeepSpeed ZeRO, Ray Train workers).

Settings that arrive from a CLI flag, a recipe file or a seed-style dict are read here into
``TrainingConfig``; a wrong value is refused before any model loads, naming the key and what is
allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from byzer_agents.exceptions import FinetuneError

__all__ = ["METHODS", "Method", "Schedule", "TrainingConfig"]

Method = Literal["lora", "qlora", "full"]
METHODS: tuple[Method, ...] = ("lora", "qlora", "full")

Schedule = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
]
"""The learning-rate schedules of transformers' ``SchedulerType`` that need no extra arguments."""


class TrainingConfig(BaseModel):
    """Every knob of an SFT or pretraining job; the defaults train a LoRA adapter on a CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "lora"
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """The modules LoRA adapts: PEFT's ``"all-linear"``, or names (``["q_proj", "v_proj"]``)."""

    learning_rate: float = Field(default=2e-4, gt=0)
    num_epochs: float = Field(default=1.0, gt=0)
    max_steps: int = -1
    """Stop after this many optimiser steps (overrides ``num_epochs``); -1: run the epochs."""
    batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_length: int = Field(default=1024, ge=16)
    """Longer sequences are cut (the prompt's start is kept); see the job's report for how many."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    lr_scheduler: Schedule = "cosine"
    weight_decay: float = Field(default=0.0, ge=0)
    group_by_length: bool = True
    """Batch sequences of similar length together: less padding, a third less time on a CPU."""

    logging_steps: int = Field(default=5, ge=1)
    save_steps: int = Field(default=50, ge=1)
    """A checkpoint every this many steps; a killed run resumes from the newest."""
    save_total_limit: int = Field(default=2, ge=1)
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 0

    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """The base model's dtype while training (float32 on CPU: bf16 is barely faster there)."""
    adapter_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """The dtype the finished adapter is saved in (``bfloat16`` halves its size)."""
    deepspeed: dict[str, Any] | None = None
    """A DeepSpeed config (ZeRO stage, optimiser ...), as a dict; a path to a JSON file is read.
    On a CPU, give ``"optimizer": {"type": "AdamW", "params": {"torch_adam": true}}`` (DeepSpeed's
    own CPU Adam needs a compiler) and no offload; ``"auto"`` values are filled in from these
    settings by transformers. One process needs no launcher: the trainer sets up a group of one."""
    num_workers: int = Field(default=1, ge=1)
    """Above one: Ray Train's TorchTrainer runs that many data-parallel workers (gloo on CPU)."""
    cpus_per_worker: float = Field(default=1.0, gt=0)
    tool_choice: Literal["auto", "required"] = "auto"
    """The tool_choice the prompts are rendered with (the runtime's default is "auto")."""

    @field_validator("deepspeed", mode="before")
    @classmethod
    def _read_deepspeed(cls, value: Any) -> Any:
        if isinstance(value, str | Path):
            path = Path(value).expanduser()
            if not path.is_file():
                raise FinetuneError(f"deepspeed config file {str(path)!r} does not exist")
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise FinetuneError(
                    f"deepspeed config file {str(path)!r} is not JSON: {exc}"
                ) from None
        return value

    @classmethod
    def build(
        cls, config: TrainingConfig | dict[str, Any] | None = None, **overrides: Any
    ) -> TrainingConfig:
        """A config from a ``TrainingConfig``, a dict, or keywords (keywords win); a bad key or
        value raises ``FinetuneError`` naming it and what is allowed."""
        base = config.model_dump() if isinstance(config, TrainingConfig) else dict(config or {})
        base.update({key: value for key, value in overrides.items() if value is not None})
        try:
            return cls.model_validate(base)
        except ValidationError as exc:
            problems = "; ".join(_problem(error) for error in exc.errors())
            raise FinetuneError(f"bad fine-tune settings: {problems}") from None

    def summary(self) -> dict[str, Any]:
        """The settings as JSON-ready values (written beside every job's outputs)."""
        return self.model_dump(mode="json")


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
    if error.get("type") == "extra_forbidden":
        known = ", ".join(TrainingConfig.model_fields)
        return f"unknown setting {where!r} (known: {known})"
    return f"{where}: {error.get('msg')} (got {error.get('input')!r})"
