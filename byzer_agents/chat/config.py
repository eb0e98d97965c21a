"""``GenerationConfig``: Byzer-LLM's ``llm_config`` dict, parsed once into typed sampling settings.

Values may arrive as strings (from SQL or a CLI); they are coerced here, and a bad value is an
error naming the key. Keys this layer does not know are kept in ``extra`` for the backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from byzer_agents.exceptions import ConfigurationError, ConfigurationTypeError

__all__ = ["GenerationConfig"]

# Byzer-LLM's spellings of the same settings.
_ALIASES = {
    "max_length": "max_tokens",
    "max_new_tokens": "max_tokens",
    "gen.max_length": "max_tokens",
    "gen.temperature": "temperature",
    "gen.top_p": "top_p",
    "gen.stop": "stop",
    "stop_words": "stop",
}


class GenerationConfig(BaseModel):
    """Sampling and decoding settings of one call, typed; unknown keys ride in ``extra``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    constrained_decoding: bool | None = None
    """``"true"`` / ``"false"`` from SQL or a shell are read as booleans here, once."""
    parallel_tool_calls: bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def parse(cls, llm_config: Mapping[str, Any] | None) -> GenerationConfig:
        """Read Byzer-LLM's ``llm_config`` (its spellings too); a bad value names its key."""
        if not llm_config:
            return cls()
        if not isinstance(llm_config, Mapping):
            raise ConfigurationTypeError(
                f"llm_config must be a dict, got {type(llm_config).__name__}"
            )
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in llm_config.items():
            name = _ALIASES.get(key, key)
            if name in cls.model_fields and name != "extra":
                known[name] = [value] if name == "stop" and isinstance(value, str) else value
            else:
                extra[key] = value
        try:
            return cls(**known, extra=extra)
        except ValidationError as exc:
            problems = "; ".join(
                f"{error['loc'][0]}={error['input']!r}: {error['msg']}" for error in exc.errors()
            )
            raise ConfigurationError(f"invalid llm_config: {problems}") from None

    def request_fields(self) -> dict[str, Any]:
        """The ChatRequest fields these settings fill."""
        fields = self.model_dump(exclude_none=True, exclude={"extra"})
        if self.extra:
            fields["extra"] = dict(self.extra)
        return fields
