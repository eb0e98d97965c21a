"""Fixtures for the training-output tests, once per session: a small LoRA adapter trained on the
shipped SmolLM2 (two optimiser steps on eight chats), that adapter merged, and a tiny random
Llama for the tests that only need something to train."""

from __future__ import annotations

from pathlib import Path

import pytest

from byzer_agents.finetune.examples import ChatExample, DatasetSplit

BASE = "SmolLM2-135M-Instruct"


def tiny_chats() -> tuple[ChatExample, ...]:
    """Eight short chats that all answer in one fixed word, so a few steps move the model."""
    return tuple(
        ChatExample.from_openai(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"Banana. {2 * i}."},
                ]
            },
            source=f"tiny:{i}",
        )
        for i in range(8)
    )


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for SmolLM2 (two steps at a high learning rate: its answers differ from
    the base's)."""
    from byzer_agents.finetune.config import TrainingConfig
    from byzer_agents.finetune.trainer import train_sft

    output = tmp_path_factory.mktemp("tiny_adapter")
    config = TrainingConfig.build(
        max_steps=2,
        warmup_ratio=0,  # else the first step is the warmup's, at a learning rate of 0
        batch_size=4,
        max_length=256,
        eval_fraction=0,
        learning_rate=5e-3,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        save_steps=100,
        logging_steps=1,
    )
    train_sft(DatasetSplit(train=tiny_chats()), BASE, output, config)
    return output


@pytest.fixture(scope="session")
def merged_model(tiny_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from byzer_agents.finetune.merging import merge

    return merge(tiny_adapter, tmp_path_factory.mktemp("merged") / "model")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Llama with SmolLM2's tokenizer and random weights: DeepSpeed trains and saves
    it in seconds (the 135M model's optimiser state alone is 1.6 GB to write)."""
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from byzer_agents.finetune.base_model import resolve_base_model

    smollm2 = resolve_base_model(BASE).checkpoint
    reference = AutoConfig.from_pretrained(str(smollm2), local_files_only=True)
    config = LlamaConfig(
        vocab_size=reference.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        bos_token_id=reference.bos_token_id,
        eos_token_id=reference.eos_token_id,
        pad_token_id=reference.pad_token_id,
    )
    directory = tmp_path_factory.mktemp("tiny_base")
    LlamaForCausalLM(config).save_pretrained(str(directory))
    AutoTokenizer.from_pretrained(str(smollm2), local_files_only=True).save_pretrained(
        str(directory)
    )
    return directory
