"""``InferBackend``: which engine runs a deployed model (Byzer-LLM's names and values)."""

from __future__ import annotations

import enum

from byzer_agents.exceptions import ConfigurationError

__all__ = ["InferBackend"]


class InferBackend(str, enum.Enum):
    """The engines a local deployment may run on (Byzer-LLM's ``InferBackend``)."""

    Transformers = "transformers"
    VLLM = "ray/vllm"
    DeepSpeed = "ray/deepspeed"
    LlamaCpp = "llama_cpp"
    # An alias of Transformers (same value): Byzer-LLM's quick start spells it in lower case.
    transformers = "transformers"

    @classmethod
    def parse(cls, value: str | InferBackend) -> InferBackend:
        """The engine a value names; an error lists the allowed values."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in cls)
            raise ConfigurationError(
                f"unknown infer backend {value!r}; allowed: {allowed}"
            ) from None
