"""Continued pretraining on raw text: documents packed into ``max_length`` blocks and trained on
every token, with LoRA, QLoRA or all weights, as ``train_sft`` trains (same checkpoints, resume
and ``RUN_RECORD``).

Text comes as strings, ``.txt`` files (one document each), ``.jsonl`` files (one document per
line, in its ``"text"`` field) or directories of such files. Packing is TRL's ``"wrapped"``
strategy: documents, each ended by the end-of-sequence token, are concatenated and cut into
blocks, as pretraining cuts them; no padding, no sequence thrown away.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.base_model import load_tokenizer, resolve_base_model
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.trainer import TrainingResult, build_sft_trainer, fit_and_save

__all__ = ["TEXT_SUFFIXES", "Document", "read_texts", "train_pretrain"]

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".jsonl")
"""The files read as text: plain text (one document) and JSON lines (a ``"text"`` each)."""

TextSource = str | os.PathLike[str]


@dataclass(frozen=True)
class Document:
    """One text to train on, and where it came from (``"notes.txt"``, ``"corpus.jsonl:12"``)."""

    text: str
    source: str


def read_texts(
    texts_or_paths: TextSource | Iterable[TextSource | Document],
) -> list[Document]:
    """The documents in ``texts_or_paths``: a ``Path`` (or a string ending in ``.txt`` or
    ``.jsonl``, or naming an existing directory) is read as a file or directory; any other string
    is a document itself, and a ``Document`` (as a job receives them, read already) is kept. An
    empty document or file raises ``FinetuneDataError`` naming it."""
    items = (
        [texts_or_paths] if isinstance(texts_or_paths, str | os.PathLike) else list(texts_or_paths)
    )
    documents: list[Document] = []
    for index, item in enumerate(items, start=1):
        if isinstance(item, Document):
            documents.append(item)
            continue
        path = _as_path(item)
        if path is None:
            text = str(item)
            if not text.strip():
                raise FinetuneDataError("the text is empty", source=f"texts[{index}]")
            documents.append(Document(text, f"texts[{index}]"))
        else:
            documents.extend(_read_path(path))
    if not documents:
        raise FinetuneDataError("no text to train on: the sources are empty")
    return documents


def _as_path(item: TextSource) -> Path | None:
    if isinstance(item, os.PathLike):
        return Path(item)
    if not isinstance(item, str):
        raise FinetuneDataError(
            f"expected text or a path to a .txt/.jsonl file, got {type(item).__name__}"
        )
    looks_like_path = "\n" not in item and len(item) < 4096
    if looks_like_path and (item.endswith(TEXT_SUFFIXES) or _is_dir(item)):
        return Path(item)
    return None


def _is_dir(item: str) -> bool:
    try:
        return Path(item).is_dir()
    except OSError:  # a sentence longer than a file name may be
        return False


def _read_path(path: Path) -> list[Document]:
    source = str(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise FinetuneDataError(
                f"the directory holds no {' or '.join(TEXT_SUFFIXES)} files", source=source
            )
        return [document for file in files for document in _read_path(file)]
    if not path.is_file():
        raise FinetuneDataError("no such file", source=source)
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise FinetuneDataError("the file holds no text", source=source)
    return [Document(text, source)]


def _read_jsonl(path: Path) -> list[Document]:
    documents: list[Document] = []
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise FinetuneDataError(
                    f"not JSON: {exc}", source=str(path), line=line_number
                ) from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise FinetuneDataError(
                    'expected an object with a string "text" field',
                    source=str(path),
                    line=line_number,
                    field="text",
                )
            if text.strip():
                documents.append(Document(text, f"{path}:{line_number}"))
    if not documents:
        raise FinetuneDataError('the file holds no non-empty "text"', source=str(path))
    return documents


def train_pretrain(
    texts_or_paths: TextSource | Iterable[TextSource | Document],
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    config: TrainingConfig,
    *,
    callbacks: Sequence[Any] = (),
    report_to: Sequence[str] = (),
) -> TrainingResult:
    """Continue pretraining ``base_model`` on the documents of ``texts_or_paths`` (see
    ``read_texts``) into ``output_dir``, resuming from the newest checkpoint there. What it leaves
    there is what ``train_sft`` leaves (an adapter or a model, and ``RUN_RECORD`` with
    ``"task": "pretrain"``); ``eval_fraction`` of the documents are held out for the eval loss."""
    documents = read_texts(texts_or_paths)
    train_docs, eval_docs = _split(documents, config.eval_fraction, config.seed)
    base = resolve_base_model(base_model)
    tokenizer, _template = load_tokenizer(base.checkpoint)
    train_tokens = sum(
        len(tokenizer(doc.text, add_special_tokens=False)["input_ids"]) + 1 for doc in train_docs
    )

    return fit_and_save(
        lambda model, output: _pretrain_trainer(
            model, tokenizer, train_docs, eval_docs, output, config, callbacks, report_to
        ),
        base,
        tokenizer,
        output_dir,
        config,
        train_examples=len(train_docs),
        eval_examples=len(eval_docs),
        train_tokens=train_tokens,
        truncated=0,  # packed: every token is trained on
        record_extra=lambda trainer: {
            "task": "pretrain",
            "packing": "wrapped",
            "blocks": len(trainer.train_dataset),
        },
    )


def _split(
    documents: list[Document], fraction: float, seed: int
) -> tuple[list[Document], list[Document]]:
    held_out = round(len(documents) * fraction)
    if held_out < 1 or held_out >= len(documents):
        return documents, []
    shuffled = list(documents)
    random.Random(seed).shuffle(shuffled)
    return shuffled[held_out:], shuffled[:held_out]


def _pretrain_trainer(
    model: Any,
    tokenizer: Any,
    train_docs: Sequence[Document],
    eval_docs: Sequence[Document],
    output: Path,
    config: TrainingConfig,
    callbacks: Sequence[Any],
    report_to: Sequence[str],
) -> Any:
    return build_sft_trainer(
        model,
        tokenizer,
        [{"text": document.text} for document in train_docs],
        [{"text": document.text} for document in eval_docs],
        output,
        config,
        callbacks,
        report_to,
        dataset_text_field="text",
        packing=True,
        packing_strategy="wrapped",
        completion_only_loss=False,
    )
