"""``ByzerLLM``: an ``LLM`` that also speaks Byzer-LLM's client surface, so code written for
Byzer-LLM runs as written: ``chat(model, request)``, ``emb``, ``is_model_exist``, and the chainable
``setup_*`` methods (default models, chat templates, context lengths, prompt formats, generation
parameters, and the resources of the deployments that follow).

Each ``setup_*`` changes this object only; deployments and other clients are left alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Self, cast

from byzer_agents.chat.requests import LLMRequest
from byzer_agents.chat.results import EmbeddingResponse, LLMResponse
from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm import LLM
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.prompts import ChatTemplate, PromptFunction, Templates, prompt

if TYPE_CHECKING:
    from byzer_agents.prompts.decorator import ChatClient
    from byzer_agents.traces import TraceStore

__all__ = ["ByzerLLM"]

P = ParamSpec("P")


class ByzerLLM(LLM):
    """``LLM`` with Byzer-LLM's methods. Every ``LLM`` call works here too."""

    def __init__(
        self,
        *,
        backends: Mapping[str, ChatBackend] | None = None,
        default_model: str | None = None,
        trace_store: TraceStore | str | os.PathLike[str] | None = None,
        max_retries: int = 2,
        tool_timeout_s: float | None = 60.0,
        address: str | None = None,
        verbose: bool = False,
    ) -> None:
        """As ``LLM()``; ``verbose`` is Byzer-LLM's and is kept for its signature: every call
        is recorded in the trace store instead (``trace_store=``)."""
        super().__init__(
            backends=backends,
            default_model=default_model,
            trace_store=trace_store,
            max_retries=max_retries,
            tool_timeout_s=tool_timeout_s,
            address=address,
        )
        self.verbose = verbose
        self._default_emb_model: str | None = None

    # --- Byzer-LLM's calls ----------------------------------------------------------------

    def chat(self, model: str | None, request: LLMRequest | str) -> list[LLMResponse[None]]:
        """One answer per instruction of ``request`` (a string is one instruction)."""
        if isinstance(request, str):
            request = LLMRequest(instruction=request)
        return [
            self.chat_oai(
                [{"role": "user", "content": text}], model=model, llm_config=request.llm_config()
            )[0]
            for text in request.instructions
        ]

    def emb(
        self, model: str | None, request: LLMRequest | str | Sequence[str]
    ) -> list[EmbeddingResponse]:
        """One vector per instruction, from ``model`` (None: the default embedding model, set
        with ``setup_default_emb_model_name``, else the default model)."""
        if isinstance(request, LLMRequest):
            texts = request.instructions
        elif isinstance(request, str):
            texts = [request]
        else:
            texts = list(request)
        vectors = self.backend(model or self._default_emb_model).embed(texts)
        return [
            EmbeddingResponse(output=vector, input=text)
            for text, vector in zip(texts, vectors, strict=True)
        ]

    def prompt(
        self,
        model: str | None = None,
        *,
        render: str = "jinja2",
        options: Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[P, Any]], PromptFunction[P, Any]]:
        """Byzer-LLM's ``@llm.prompt()``: ``@prompt`` bound to this client, asking ``model``
        (None: the default model); ``options`` are further ``chat_oai`` keyword arguments."""
        chosen = {**(options or {}), **({"model": model} if model is not None else {})}
        # ChatClient's methods take ``**kwargs: Any``, which typed keyword arguments do not match.
        client = cast("ChatClient", self)
        return prompt(client, options=chosen, render=render)

    def is_model_exist(self, udf_name: str) -> bool:
        """Whether a model answers to ``udf_name`` here (registered, or deployed on Ray)."""
        return self._models.has(udf_name)

    # --- which model answers --------------------------------------------------------------

    def setup_default_model_name(self, model: str) -> Self:
        """Calls that name no model go to ``model``."""
        self._models.default_model = model
        return self

    def setup_default_emb_model_name(self, model: str) -> Self:
        """``emb`` calls that name no model go to ``model``."""
        self._default_emb_model = model
        return self

    # --- per-model settings, carried by every call to that model --------------------------

    def setup_template(self, model: str, template: str | ChatTemplate) -> Self:
        """Render ``model``'s conversations with ``template`` in the calls that follow: a built-in
        name (``"qwen"``, ``"llama3"``, ``"chatml"``...) or a ChatTemplate. ``"auto"`` goes back
        to the deployment's own (its tokenizer's template, else its model type's).

        Only local deployments render prompts, so only they can use a template: an
        OpenAI-compatible or SaaS model renders its own and refuses calls that carry one (give
        it ``"auto"``, as Byzer-LLM's examples do, which changes nothing)."""
        if isinstance(template, str) and template.strip().lower() == "auto":
            self._models.set_options(model, chat_template=None)
            return self
        chosen = Templates.get(template) if isinstance(template, str) else template
        self._models.set_options(model, chat_template=chosen)
        return self

    def setup_max_model_length(self, model: str, max_length: int) -> Self:
        """Hold ``model``'s calls that follow to a context of ``max_length`` tokens, as
        Byzer-LLM did: a local backend refuses a call whose prompt and ``max_tokens`` together
        exceed it with ContextLengthError naming both, before generating (without
        ``max_tokens`` the answer gets the room that is left). The deployment's own context
        length, when smaller, still holds. OpenAI-compatible and SaaS models count no tokens
        here and refuse calls that carry it."""
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigurationError(
                f"max_length must be a positive number of tokens, got {max_length!r}"
            )
        self._models.set_options(model, max_model_len=max_length)
        return self

    def setup_extra_generation_params(self, model: str, params: Mapping[str, Any]) -> Self:
        """Generation parameters (``llm_config`` keys) every call to ``model`` gets; a call's
        own ``llm_config`` wins where both set a key."""
        self._models.set_options(model, llm_config=dict(params))
        return self

    def setup_function_calling_format_func(self, model: str, func: Callable[..., str]) -> Self:
        """Write tools into ``model``'s prompts with ``func`` (``function_calling_format``'s
        signature) where the model has no native tool calling."""
        return self._set_format(model, function_calling=func)

    def setup_response_class_format_func(self, model: str, func: Callable[[str, Any], str]) -> Self:
        """Ask ``model`` for a typed answer with ``func(prompt, cls)`` where it has no native
        structured output."""
        return self._set_format(model, response_class=func)

    def setup_response_class_format_after_chat_func(
        self, model: str, func: Callable[[Any], str]
    ) -> Self:
        """Ask ``model`` to turn its free answer into the type with ``func(cls)``
        (``response_after_chat=True``)."""
        return self._set_format(model, response_class_after_chat=func)

    def _set_format(self, model: str, **change: Any) -> Self:
        formats = dataclasses.replace(self._models.options(model).formats, **change)
        self._models.set_options(model, formats=formats)
        return self

    # --- resources of the deployments that follow -----------------------------------------

    def setup_num_workers(self, num_workers: int) -> Self:
        """Deployments that follow run on ``num_workers`` workers (Byzer-LLM: the most requests
        in flight at once, for SaaS models)."""
        return self._set_resources(num_workers=num_workers)

    def setup_gpus_per_worker(self, gpus: float) -> Self:
        """Each worker of the deployments that follow holds ``gpus`` GPUs (0 for SaaS models)."""
        return self._set_resources(gpus_per_worker=gpus)

    def setup_cpus_per_worker(self, cpus: float) -> Self:
        """Each worker of the deployments that follow holds ``cpus`` CPUs."""
        return self._set_resources(cpus_per_worker=cpus)

    def setup_infer_backend(self, backend: InferBackend | str) -> Self:
        """The engine of the deployments that follow (transformers, vLLM, DeepSpeed)."""
        return self._set_resources(infer_backend=backend)

    def _set_resources(self, **change: Any) -> Self:
        ray = self._models.ray
        ray.defaults = ray.defaults.replace(**change)
        return self
