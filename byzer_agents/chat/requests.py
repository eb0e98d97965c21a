"""``LLMRequest``: Byzer-LLM's request for ``chat`` and ``emb``, one instruction or several."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LLMRequest"]


class LLMRequest(BaseModel):
    """What Byzer-LLM's ``chat`` and ``emb`` take: one instruction or several, and sampling."""

    model_config = ConfigDict(extra="forbid")

    instruction: str | list[str]
    max_length: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    temperature: float | None = Field(default=None, ge=0)
    extra_params: dict[str, Any] = Field(default_factory=dict)

    @property
    def instructions(self) -> list[str]:
        """The instructions, as a list (one for a single string)."""
        return [self.instruction] if isinstance(self.instruction, str) else list(self.instruction)

    def llm_config(self) -> dict[str, Any]:
        """The request's settings as an ``llm_config`` dict (``extra_params`` under them)."""
        config: dict[str, Any] = dict(self.extra_params)
        for key in ("max_length", "top_p", "temperature"):
            value = getattr(self, key)
            if value is not None:
                config[key] = value
        return config
