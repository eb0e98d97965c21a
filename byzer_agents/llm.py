"""``LLM``: the chat loop joined with the models (``model_registry.py``, ``ray_lifecycle.py``):
``chat_oai``, ``extract``, the streams, their async twins, and the deploy surface. Typed answers
keep the user's type (``extract(Story, ...)`` is a ``Story``). Byzer-LLM's own methods (``chat``,
``emb``, ``setup_*``) live on its subclass ``ByzerLLM`` (``byzer_llm.py``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, overload

from byzer_agents import llm_calls
from byzer_agents.chat.config import GenerationConfig
from byzer_agents.chat.driver import adrive, drive
from byzer_agents.chat.flows import ChatSettings, Flow, typed_answer_from_text, typed_flow
from byzer_agents.chat.results import LLMResponse
from byzer_agents.chat.streaming import PartialAnswers, astream_text, stream_text
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.prompted_backend import with_prompted_tools
from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import ConfigurationError, ExtractionError
from byzer_agents.llm_calls import ChatOptions, Conversation, ExtractOptions, ToolChoiceLike
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.model_registry import ModelRegistry
from byzer_agents.ray_lifecycle import RayLifecycle
from byzer_agents.tools import ToolLike

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.deployment import RayDeployment
    from byzer_agents.traces import TraceStore

__all__ = ["LLM", "ChatOptions", "Conversation", "ExtractOptions", "ToolChoiceLike"]

T = TypeVar("T")


class LLM:
    """The chat loop joined with the models: ask for text, tool calls or typed answers, sync or
    async, streamed or whole; deploy models on Ray and find them by name."""

    def __init__(
        self,
        *,
        backends: Mapping[str, ChatBackend] | None = None,
        default_model: str | None = None,
        trace_store: TraceStore | str | os.PathLike[str] | None = None,
        max_retries: int = 2,
        tool_timeout_s: float | None = 60.0,
        address: str | None = None,
    ) -> None:
        """``LLM()`` with no backends works with deployments on Ray: it joins the cluster at
        ``address`` (or ``RAY_ADDRESS``, or the one running here) when first needed, and starts
        the embedded local cluster when none runs."""
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        self._models = ModelRegistry(
            backends or {},
            default_model=default_model,
            ray=RayLifecycle(address),
            searches_ray=backends is None or address is not None,
        )
        self.max_retries = max_retries
        self.tool_timeout_s = tool_timeout_s
        self.trace_store = llm_calls.open_store(trace_store)

    # --- construction and the models ----------------------------------------------------------

    @classmethod
    def from_openai(
        cls,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        trace_store: TraceStore | str | os.PathLike[str] | None = None,
        **backend_options: Any,
    ) -> Self:
        """An LLM over any OpenAI-compatible endpoint, through the official SDK, without Ray."""
        from byzer_agents.llm_runtime.backends.openai_compatible import OpenAIBackend

        # Requests name the model as this LLM knows it (``name``); the backend maps that name
        # back to the endpoint's ``model``.
        backend_options.setdefault("name", name or model)
        backend = OpenAIBackend(model=model, base_url=base_url, api_key=api_key, **backend_options)
        return cls(
            backends={name or model: backend}, default_model=name or model, trace_store=trace_store
        )

    @classmethod
    def from_backend(cls, backend: ChatBackend, *, model: str = "default", **options: Any) -> Self:
        """An LLM over one backend (a ScriptedBackend in tests, or any ChatBackend)."""
        return cls(backends={model: backend}, default_model=model, **options)

    def register(self, name: str, backend: ChatBackend) -> Self:
        """Make ``backend`` answer to ``name``; chainable."""
        self._models.register(name, backend)
        return self

    def list_models(self) -> list[str]:
        """Models this LLM can talk to: its own backends and, with Ray, every deployment."""
        return self._models.names()

    def backend(self, model: str | None = None) -> ChatBackend:
        """The endpoint that answers ``model``: a deployment's client, or a registered backend.
        ModelNotFoundError names the models there are."""
        return self._models.resolve(model)[1]

    def get_meta(self, model: str | None = None) -> dict[str, Any]:
        """What the model says of itself (model_deploy_type, backend, max_model_len,
        architectures, ...), with the name it answers to and the settings its calls carry."""
        name, backend = self._models.resolve(model)
        meta = dict(backend.meta())
        meta.setdefault("model", name)
        options = self._models.options(name)
        if options.max_model_len is not None:
            meta["max_model_len"] = options.max_model_len
        if options.chat_template is not None:
            meta["template"] = options.chat_template.name
        return meta

    # --- deployments on Ray -------------------------------------------------------------------

    def deploy(
        self,
        model_path: str | os.PathLike[str] | None = None,
        pretrained_model_type: str = "custom/auto",
        udf_name: str | None = None,
        infer_params: Mapping[str, Any] | None = None,
        *,
        num_workers: int | None = None,
        cpus_per_worker: float | None = None,
        gpus_per_worker: float | None = None,
        infer_backend: InferBackend | str | None = None,
    ) -> RayDeployment:
        """Load a model on Ray workers; it answers to ``udf_name`` from any process until
        ``undeploy``. Bad types, paths and infer_params fail here, before a worker starts.
        ``saas/<provider>`` types need no model_path. Resources not given are this LLM's
        defaults (one worker, half a CPU, no GPU, transformers)."""
        ray = self._models.ray
        resources = ray.defaults.replace(
            num_workers=num_workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            infer_backend=infer_backend,
        )
        spec = ray.spec(model_path, pretrained_model_type, udf_name, infer_params, resources)
        deployment = ray.deploy(spec)
        self._models.add_deployment(spec.udf_name, deployment)
        return deployment

    def undeploy(self, udf_name: str) -> bool:
        """Remove the deployment ``udf_name`` from the cluster; False when there was none."""
        self._models.forget(udf_name)
        return self._models.searches_ray and self._models.ray.undeploy(udf_name)

    # --- chat ---------------------------------------------------------------------------------

    @overload
    def chat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: None = None,
        **options: Unpack[ChatOptions],
    ) -> list[LLMResponse[None]]: ...
    @overload
    def chat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: type[T],
        **options: Unpack[ChatOptions],
    ) -> list[LLMResponse[T]]: ...
    @overload
    def chat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: object,
        **options: Unpack[ChatOptions],
    ) -> list[LLMResponse[Any]]: ...
    def chat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: object = None,
        response_after_chat: bool = False,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> list[LLMResponse[Any]]:
        """Chat once; with ``tools`` parse (and with ``execute_tool`` run) the calls; with
        ``response_class`` return the typed answer in ``.value``. A list, as in Byzer-LLM."""
        flow, backend, tracer = self._prepare(
            conversations, tools, tool_choice, execute_tool, response_class,
            response_after_chat, model, llm_config, max_retries,
        )  # fmt: skip
        with llm_calls.run_status(tracer):
            return [drive(flow, backend, tracer=tracer, tool_timeout_s=self.tool_timeout_s)]

    @overload
    async def achat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: None = None,
        **options: Unpack[ChatOptions],
    ) -> list[LLMResponse[None]]: ...
    @overload
    async def achat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: type[T],
        **options: Unpack[ChatOptions],
    ) -> list[LLMResponse[T]]: ...
    @overload
    async def achat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: object,
        **options: Unpack[ChatOptions],
    ) -> list[LLMResponse[Any]]: ...
    async def achat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceLike = None,
        execute_tool: bool = False,
        *,
        response_class: object = None,
        response_after_chat: bool = False,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> list[LLMResponse[Any]]:
        """``chat_oai`` for asyncio: model calls are awaited and tools run concurrently."""
        flow, backend, tracer = self._prepare(
            conversations, tools, tool_choice, execute_tool, response_class,
            response_after_chat, model, llm_config, max_retries,
        )  # fmt: skip
        with llm_calls.run_status(tracer):
            return [await adrive(flow, backend, tracer=tracer, tool_timeout_s=self.tool_timeout_s)]

    @overload
    def extract(
        self,
        cls: type[T],
        text_or_messages: Conversation,
        **options: Unpack[ExtractOptions],
    ) -> T: ...
    @overload
    def extract(
        self,
        cls: object,
        text_or_messages: Conversation,
        **options: Unpack[ExtractOptions],
    ) -> Any: ...
    def extract(
        self,
        cls: object,
        text_or_messages: Conversation,
        *,
        model: str | None = None,
        max_retries: int | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Any:
        """An instance of ``cls`` (pydantic class, dataclass, TypedDict, ``list[cls]``...) from a
        text or a conversation; ExtractionError with every attempt when none validates."""
        return self.chat_oai(
            llm_calls.extraction_messages(text_or_messages),
            response_class=cls,
            model=model,
            llm_config=llm_config,
            max_retries=max_retries,
        )[0].value

    @overload
    async def aextract(
        self,
        cls: type[T],
        text_or_messages: Conversation,
        **options: Unpack[ExtractOptions],
    ) -> T: ...
    @overload
    async def aextract(
        self,
        cls: object,
        text_or_messages: Conversation,
        **options: Unpack[ExtractOptions],
    ) -> Any: ...
    async def aextract(
        self,
        cls: object,
        text_or_messages: Conversation,
        *,
        model: str | None = None,
        max_retries: int | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Any:
        """``extract`` for asyncio."""
        responses = await self.achat_oai(
            llm_calls.extraction_messages(text_or_messages),
            response_class=cls,
            model=model,
            llm_config=llm_config,
            max_retries=max_retries,
        )
        return responses[0].value

    def stream_chat_oai(
        self,
        conversations: Conversation,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Text deltas as the model writes them."""
        settings, backend = self.call_settings(model, llm_config, None, kind="stream_chat_oai")
        request = settings.request(llm_calls.messages_of(conversations))
        yield from llm_calls.traced_stream(settings, request, stream_text(backend, request))

    async def astream_chat_oai(
        self,
        conversations: Conversation,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """``stream_chat_oai`` for asyncio; closing it early stops the model."""
        settings, backend = self.call_settings(model, llm_config, None, kind="stream_chat_oai")
        request = settings.request(llm_calls.messages_of(conversations))
        pieces: list[str] = []
        with llm_calls.run_failure(settings.tracer):
            async for piece in astream_text(backend, request):
                pieces.append(piece)
                yield piece
        llm_calls.trace_streamed(settings, request, "".join(pieces))

    @overload
    def stream_extract(
        self,
        cls: type[T],
        text_or_messages: Conversation,
        **options: Unpack[ExtractOptions],
    ) -> Iterator[T]: ...
    @overload
    def stream_extract(
        self,
        cls: object,
        text_or_messages: Conversation,
        **options: Unpack[ExtractOptions],
    ) -> Iterator[Any]: ...
    def stream_extract(
        self,
        cls: object,
        text_or_messages: Conversation,
        *,
        model: str | None = None,
        max_retries: int | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """Partial instances of ``cls`` while the JSON streams; the last one is the validated
        answer (after the retry loop, if the streamed answer did not validate). A long answer's
        partials come less often as it grows, so reading them stays linear in its length."""
        messages = llm_calls.extraction_messages(text_or_messages)
        settings, backend = self.call_settings(
            model, llm_config, max_retries, kind="stream_extract"
        )
        request = llm_calls.first_request(typed_flow(settings, messages, cls))
        partials = PartialAnswers(cls)
        with llm_calls.run_failure(settings.tracer):
            for piece in stream_text(backend, request):
                partial = partials.add(piece)
                if partial is not None:
                    yield partial
        text = partials.text
        llm_calls.trace_streamed(settings, request, text)
        try:
            yield typed_answer_from_text(settings, text, cls)
            return
        except ExtractionError as exc:
            problem = exc.attempts[-1].error
        # The streamed answer did not validate: continue the conversation with the feedback.
        retry = [
            *request.messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Your answer could not be used: {problem}"},
        ]
        yield self.chat_oai(
            retry, response_class=cls, model=model, llm_config=llm_config, max_retries=max_retries
        )[0].value

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the trace store (the models stay deployed)."""
        if self.trace_store is not None:
            self.trace_store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        default = self._models.default_model
        return f"{type(self).__name__}(models={self.list_models()}, default={default!r})"

    # --- internals ----------------------------------------------------------------------------

    def call_settings(
        self,
        model: str | None,
        llm_config: Mapping[str, Any] | None,
        max_retries: int | None,
        *,
        kind: str,
        tracer: Callable[[str], RunTracer] | None = None,
    ) -> tuple[ChatSettings, ChatBackend]:
        """How one call asks ``model`` (what the facade and flows built on the loop, such as
        ``Agent``, run under): its settings (the model's own under the call's) and
        the backend that answers. ``tracer``: the run's tracer for the model's name (an agent's
        own), instead of one in this LLM's trace store."""
        name, backend = self._models.resolve(model)
        options = self._models.options(name)
        if options.llm_config and (llm_config is None or isinstance(llm_config, Mapping)):
            llm_config = {**options.llm_config, **(llm_config or {})}
        settings = ChatSettings(
            model=name,
            capabilities=backend.capabilities,
            tracer=tracer(name) if tracer else RunTracer(self.trace_store, kind=kind, model=name),
            generation=GenerationConfig.parse(llm_config),
            formats=options.formats,
            max_retries=self.max_retries if max_retries is None else max_retries,
            chat_template=options.chat_template,
            max_model_len=options.max_model_len,
        )
        # Streams go straight to the backend, not through the driver: a model without native tools
        # reads an earlier tool exchange in the conversation as text, as the loop would write it.
        return settings, with_prompted_tools(backend, options.formats.function_calling)

    def _prepare(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None,
        tool_choice: ToolChoiceLike,
        execute_tool: bool,
        response_class: object,
        response_after_chat: bool,
        model: str | None,
        llm_config: Mapping[str, Any] | None,
        max_retries: int | None,
    ) -> tuple[Flow, ChatBackend, RunTracer]:
        """The flow a chat_oai call runs, the backend it runs against and its tracer."""
        messages = llm_calls.messages_of(conversations)
        offered = llm_calls.tools_of(
            tools=tools,
            tool_choice=tool_choice,
            execute_tool=execute_tool,
            response_class=response_class,
            response_after_chat=response_after_chat,
        )
        settings, backend = self.call_settings(model, llm_config, max_retries, kind="chat_oai")
        flow = llm_calls.choose_flow(
            settings,
            messages,
            offered,
            execute_tool=execute_tool,
            response_class=response_class,
            response_after_chat=response_after_chat,
        )
        return flow, backend, settings.tracer
