"""The SaaS providers a ``saas/<provider>`` deployment may name, each with the base URL of its
OpenAI-compatible API, so a deployment needs only a key and a model.

Every provider here is reached through the official ``openai`` SDK: OpenAI itself, Azure OpenAI
(its own client, ``openai.AzureOpenAI``), and the providers that offer an OpenAI-compatible
endpoint. Any other compatible endpoint is ``saas/openai`` with ``saas.base_url``. The URLs are
the providers' documented ones at the time of writing; ``saas.base_url`` overrides any of them
(an international region, a proxy, a newer API version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from byzer_agents.exceptions import ConfigurationError

__all__ = ["SAAS_PROVIDERS", "SaasProvider", "saas_provider", "saas_provider_names"]


@dataclass(frozen=True, kw_only=True)
class SaasProvider:
    """A SaaS provider a ``saas/<provider>`` deployment may name: its endpoint and which API it
    speaks."""

    name: str
    base_url: str | None
    """The OpenAI-compatible API's root; ``None``: the SDK's default (OpenAI), or none at all
    (Azure, whose endpoint is the user's own resource)."""
    api: Literal["openai", "azure"] = "openai"
    """Which SDK client speaks to it."""
    aliases: tuple[str, ...] = ()
    """Other names Byzer-LLM's users know it by (``saas/qianwen``)."""


_PROVIDERS = (
    SaasProvider(name="openai", base_url=None),
    SaasProvider(name="azure_openai", base_url=None, api="azure", aliases=("azure",)),
    SaasProvider(name="deepseek", base_url="https://api.deepseek.com"),
    SaasProvider(name="moonshot", base_url="https://api.moonshot.cn/v1", aliases=("kimi",)),
    SaasProvider(
        name="dashscope",
        base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
        aliases=("qwen", "qianwen"),
    ),
    SaasProvider(name="zhipu", base_url="https://open.bigmodel.cn/api/paas/v4"),
    SaasProvider(name="qianfan", base_url="https://qianfan.baidubce.com/v2"),
    SaasProvider(name="baichuan", base_url="https://api.baichuan-ai.com/v1"),
    # China's endpoint; https://api.minimax.io/v1 serves the rest of the world.
    SaasProvider(name="minimax", base_url="https://api.minimaxi.com/v1"),
    SaasProvider(name="sparkdesk", base_url="https://spark-api-open.xf-yun.com/v1"),
)

SAAS_PROVIDERS: Mapping[str, SaasProvider] = {
    name: provider for provider in _PROVIDERS for name in (provider.name, *provider.aliases)
}
"""Every provider by its name and by each alias."""


def saas_provider_names() -> list[str]:
    """The accepted provider names, aliases included, sorted."""
    return sorted(SAAS_PROVIDERS)


def saas_provider(name: str) -> SaasProvider:
    """The provider called ``name``; an error naming the accepted ones otherwise."""
    found = SAAS_PROVIDERS.get(name.strip().lower())
    if found is None:
        raise ConfigurationError(
            f"unknown SaaS provider {name!r}; accepted: {', '.join(saas_provider_names())}. "
            "Any other OpenAI-compatible endpoint: 'saas/openai' with infer_params "
            "saas.base_url=<its URL>"
        )
    return found
