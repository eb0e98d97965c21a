"""A SaaS deployment's ``saas.*`` infer_params as typed settings, checked against its provider
before any worker starts (the worker builds the backend from them: ``worker.build_backend``).

The keys are Byzer-LLM's (``saas.api_key``, ``saas.model``, ``saas.base_url`` / ``saas.api_base``,
Azure's ``saas.api_type``, ``saas.api_version``, ``saas.deployment_id``, and
``saas.retry_count``, ``saas.request_timeout``), plus the retry and routing settings this
project adds (``saas.retry_backoff_s``, ``saas.max_retry_wait_s``, ``saas.fallbacks``,
``saas.cooldown_s``, ``saas.cooldown_after``). The API key stays a ``SecretStr`` everywhere except
in the JSON handed to the worker process (``reveal_secrets`` in the serialization context).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
)

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.saas.providers import SaasProvider

__all__ = [
    "REVEAL_SECRETS",
    "SAAS_KEY_ALIASES",
    "SaasParams",
    "parse_saas_params",
]

REVEAL_SECRETS = "reveal_secrets"
"""Serialization context key: ``model_dump_json(context={REVEAL_SECRETS: True})`` writes the API
key itself (for the worker process only); without it the key is masked."""

SAAS_KEY_ALIASES = {
    "api_base": "base_url",  # Byzer-LLM's spelling, for Azure and OpenAI alike
    "azure_endpoint": "base_url",
    "azure_deployment": "deployment_id",
    "timeout": "request_timeout",
}
"""Other spellings of the ``saas.*`` keys, without the ``saas.`` prefix."""


class SaasParams(BaseModel):
    """The ``saas.*`` infer_params, without their prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr | None = None
    """None: the worker's ``OPENAI_API_KEY``."""
    model: str | None = None
    """The provider's model name; default: the deployment's udf_name."""
    base_url: str | None = None
    """Overrides the provider's default URL; Azure: the resource's endpoint."""
    api_type: Literal["openai", "azure"] | None = None
    """Byzer-LLM's switch: ``"azure"`` makes ``saas/openai`` speak Azure's API."""
    api_version: str | None = None
    """Azure: the API version (``2024-10-21``); required there."""
    deployment_id: str | None = None
    """Azure: the model deployment's name; default: ``model``."""
    retry_count: int = Field(default=2, ge=0)
    """Retries after the first request, for 429, 5xx and connection errors (never other 4xx)."""
    request_timeout: float = Field(default=60.0, gt=0)
    """Seconds one request may take."""
    retry_backoff_s: float = Field(default=0.5, ge=0)
    """The first backoff; it doubles each retry, with as much again of random jitter."""
    max_retry_wait_s: float = Field(default=30.0, ge=0)
    """The longest pause between attempts. A server asking (Retry-After) for longer ends the
    retries at once, so a fallback can answer instead."""
    fallbacks: tuple[str, ...] = ()
    """Deployments (udf names) asked in turn when this one fails after its retries."""
    cooldown_s: float = Field(default=60.0, ge=0)
    """How long a deployment that keeps failing is skipped by its router (0: never)."""
    cooldown_after: int = Field(default=3, ge=1)
    """Consecutive failed calls (each after its retries) that start a cooldown."""

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return tuple(str(name).strip() for name in value if str(name).strip())
        return value

    @field_serializer("api_key", when_used="json")
    def _masked_key(self, key: SecretStr | None, info: SerializationInfo) -> str | None:
        if key is None:
            return None
        context = info.context if isinstance(info.context, Mapping) else {}
        return key.get_secret_value() if context.get(REVEAL_SECRETS) else str(key)

    def is_azure(self, provider: SaasProvider) -> bool:
        """Whether these settings speak Azure OpenAI's API to ``provider``."""
        return provider.api == "azure" or self.api_type == "azure"

    def check(self, provider: SaasProvider, udf_name: str) -> None:
        """Refuse settings that cannot work with ``provider``, naming the key and the remedy."""
        if provider.api == "azure" and self.api_type == "openai":
            raise ConfigurationError(
                "saas.api_type='openai' contradicts pretrained_model_type 'saas/azure_openai'; "
                "drop saas.api_type, or use 'saas/openai'"
            )
        if self.is_azure(provider):
            needed = {"saas.api_base": self.base_url, "saas.api_version": self.api_version}
            missing = [key for key, value in needed.items() if not value]
            if missing:
                raise ConfigurationError(
                    f"an Azure OpenAI deployment needs {' and '.join(missing)}: the resource's "
                    "endpoint (https://<resource>.openai.azure.com) and the API version "
                    "(e.g. '2024-10-21')"
                )
        elif self.api_version or self.deployment_id:
            raise ConfigurationError(
                "saas.api_version and saas.deployment_id apply to Azure OpenAI only; use "
                "'saas/azure_openai' (or saas.api_type='azure')"
            )
        if udf_name in self.fallbacks:
            raise ConfigurationError(f"saas.fallbacks names the deployment itself ({udf_name!r})")


def parse_saas_params(params: Mapping[str, Any]) -> SaasParams:
    """``saas.*`` keys (prefix already removed) as SaasParams; an error names a bad key."""
    data: dict[str, Any] = {}
    for key, value in params.items():
        name = SAAS_KEY_ALIASES.get(key, key)
        if name not in SaasParams.model_fields:
            accepted = sorted(f"saas.{n}" for n in (*SaasParams.model_fields, *SAAS_KEY_ALIASES))
            raise ConfigurationError(
                f"unknown infer_params key 'saas.{key}'; the saas keys are: {', '.join(accepted)}"
            )
        data[name] = value
    return SaasParams(**data)
