"""The models an ``LLM`` knows: names mapped to backends (registered ones, and Ray deployments
found by name on first use, behind their fallbacks), the default model, and the settings each
model's calls carry (prompt formats, chat template, context length, generation parameters)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from byzer_agents.chat.flows import PromptFormats
from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import ModelNotFoundError, NoDefaultModelError
from byzer_agents.prompts import ChatTemplate
from byzer_agents.ray_lifecycle import RayLifecycle

__all__ = ["ModelOptions", "ModelRegistry"]


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The settings every call to one model carries (Byzer-LLM's per-model ``setup_*``)."""

    formats: PromptFormats = dataclasses.field(default_factory=PromptFormats)
    """How tools and typed answers are written into prompts for models without native support."""
    chat_template: ChatTemplate | None = None
    """The template a local deployment renders this model's prompts with; None: its own."""
    max_model_len: int | None = None
    """The context length this model's calls are held to; None: the deployment's own."""
    llm_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Generation parameters every call gets, under the call's own ``llm_config``."""


class ModelRegistry:
    """Names to backends. With ``searches_ray``, a name not registered is looked up among the Ray
    deployments of ``ray`` (any process may have made it) and kept once found."""

    def __init__(
        self,
        backends: Mapping[str, ChatBackend],
        *,
        default_model: str | None,
        ray: RayLifecycle,
        searches_ray: bool,
    ) -> None:
        self._backends: dict[str, ChatBackend] = dict(backends)
        self._options: dict[str, ModelOptions] = {}
        self.default_model = default_model
        """The model a call that names none goes to (None: the only one there is)."""
        self.ray = ray
        self.searches_ray = searches_ray

    def register(self, name: str, backend: ChatBackend) -> None:
        """Make ``backend`` answer to ``name``."""
        self._backends[name] = backend

    def add_deployment(self, name: str, deployment: ChatBackend) -> None:
        """Make a Ray deployment answer to ``name``, behind the fallbacks its spec names."""
        self.searches_ray = True
        self._backends[name] = self._with_fallbacks(name, deployment)

    def forget(self, name: str) -> None:
        """Stop answering to ``name`` here (its deployment, if any, is left alone)."""
        self._backends.pop(name, None)

    def names(self) -> list[str]:
        """Every model this registry can reach: its backends and, with Ray, every deployment."""
        names = set(self._backends)
        if self.searches_ray:
            names.update(self.ray.names())
        return sorted(names)

    def has(self, name: str) -> bool:
        """Whether ``name`` is registered or, with Ray, deployed (without listing them all)."""
        if name in self._backends:
            return True
        return self.searches_ray and self.ray.find(name) is not None

    def resolve(self, model: str | None) -> tuple[str, ChatBackend]:
        """The name and backend that answer ``model`` (None: the default, else the only model).
        ModelNotFoundError names the models there are."""
        name = model or self.default_model
        if name is None:
            available = self.names()
            if len(available) != 1:
                raise NoDefaultModelError(available)
            name = available[0]
        if name not in self._backends and self.searches_ray:
            found = self.ray.find(name)
            if found is not None:
                self._backends[name] = self._with_fallbacks(name, found)
        if name not in self._backends:
            raise ModelNotFoundError(name, self.names())
        return name, self._backends[name]

    def options(self, name: str) -> ModelOptions:
        """The settings ``name``'s calls carry."""
        return self._options.get(name, ModelOptions())

    def set_options(self, name: str, **change: Any) -> None:
        """Change some of ``name``'s settings (keyword names of ModelOptions' fields)."""
        self._options[name] = dataclasses.replace(self.options(name), **change)

    def _with_fallbacks(self, name: str, deployment: ChatBackend) -> ChatBackend:
        """A deployment whose spec names fallbacks answers through a FallbackRouter
        (``llm_runtime/routing.py``), which finds them among these models."""
        from byzer_agents.llm_runtime.routing import with_fallbacks

        def find(other: str) -> ChatBackend | None:
            known = self._backends.get(other)
            if known is None and self.searches_ray:
                known = self.ray.find(other)
            return known

        return with_fallbacks(name, deployment, find=find)
