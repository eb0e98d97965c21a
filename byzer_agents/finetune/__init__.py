"""Fine-tuning: turn traces, chat files, BFCL data or Hugging Face datasets into checked training
chats (``load_training_data``), and train on them as jobs on the local Ray: ``sft`` (LoRA, QLoRA,
full; DeepSpeed ZeRO; Ray Train workers), ``pretrain`` (raw text, packed), ``merge`` (an adapter
into its base), ``convert_deepspeed`` (a ZeRO checkpoint into a Hugging Face directory), with
``status`` and ``logs`` to follow a job from any process. ``train_sft`` / ``train_pretrain`` run
the same training in this process.

Importing this package is light: every name loads on first use, so ``import
byzer_agents.finetune`` pulls in none of torch, transformers, datasets or trl.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from byzer_agents.finetune.api import convert_deepspeed, logs, pretrain, sft, status
    from byzer_agents.finetune.bfcl_data import dataset_from_bfcl
    from byzer_agents.finetune.config import TrainingConfig
    from byzer_agents.finetune.data import load_training_data
    from byzer_agents.finetune.examples import ChatExample, DatasetSplit
    from byzer_agents.finetune.jobs import JobStatus
    from byzer_agents.finetune.merging import merge
    from byzer_agents.finetune.pretraining import train_pretrain
    from byzer_agents.finetune.sources import dataset_from_hf, read_jsonl_examples
    from byzer_agents.finetune.traces_data import dataset_from_traces
    from byzer_agents.finetune.trainer import TrainingResult, train_sft

# name -> the module that defines it, imported on first use.
_LAZY = {
    "ChatExample": "byzer_agents.finetune.examples",
    "DatasetSplit": "byzer_agents.finetune.examples",
    "load_training_data": "byzer_agents.finetune.data",
    "dataset_from_traces": "byzer_agents.finetune.traces_data",
    "dataset_from_bfcl": "byzer_agents.finetune.bfcl_data",
    "read_jsonl_examples": "byzer_agents.finetune.sources",
    "dataset_from_hf": "byzer_agents.finetune.sources",
    "sft": "byzer_agents.finetune.api",
    "status": "byzer_agents.finetune.api",
    "logs": "byzer_agents.finetune.api",
    "pretrain": "byzer_agents.finetune.api",
    "convert_deepspeed": "byzer_agents.finetune.api",
    "merge": "byzer_agents.finetune.merging",
    "train_sft": "byzer_agents.finetune.trainer",
    "train_pretrain": "byzer_agents.finetune.pretraining",
    "TrainingConfig": "byzer_agents.finetune.config",
    "TrainingResult": "byzer_agents.finetune.trainer",
    "JobStatus": "byzer_agents.finetune.jobs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'byzer_agents.finetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ChatExample",
    "DatasetSplit",
    "JobStatus",
    "TrainingConfig",
    "TrainingResult",
    "convert_deepspeed",
    "dataset_from_bfcl",
    "dataset_from_hf",
    "dataset_from_traces",
    "load_training_data",
    "logs",
    "merge",
    "pretrain",
    "read_jsonl_examples",
    "sft",
    "status",
    "train_pretrain",
    "train_sft",
]
