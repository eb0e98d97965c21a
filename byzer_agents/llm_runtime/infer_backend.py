"""``InferBackend``: which engine runs a deployed model (Byzer-LLM's names and values)."""

from __future__ import annotations

import enum

__all__ = ["InferBackend"]


class InferBackend(str, enum.Enum):
    Transformers = "transformers"
    VLLM = "ray/vllm"
    DeepSpeed = "ray/deepspeed"
    LlamaCpp = "llama_cpp"

    @classmethod
    def parse(cls, value: str | InferBackend) -> InferBackend:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in cls)
            raise ValueError(f"unknown infer backend {value!r}; allowed: {allowed}") from None
