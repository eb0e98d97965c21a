"""``LLM`` (alias ``ByzerLLM``): the object a user holds. It joins the chat loop with the model
deployments behind the one protocol, keeps per-model settings, and records traces.

Byzer-LLM's surface is kept (``chat``, ``chat_oai``, ``stream_chat_oai``, ``emb``, ``get_meta``,
the ``setup_*`` methods), with typed answers (``extract``, ``stream_extract``) and async twins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byzer_agents.chat.config import GenerationConfig
from byzer_agents.chat.driver import adrive, drive
from byzer_agents.chat.flows import (
    ChatSettings,
    Flow,
    PromptFormats,
    after_chat_flow,
    plain_flow,
    tool_flow,
    typed_answer_from_text,
    typed_flow,
)
from byzer_agents.chat.requests import LLMRequest
from byzer_agents.chat.results import EmbeddingResponse, LLMResponse
from byzer_agents.chat.streaming import PartialAnswers, astream_text, stream_text
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import ModelNotFoundError, NoDefaultModelError
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.prompts import ChatTemplate, Templates
from byzer_agents.prompts.environment import render
from byzer_agents.tools import ToolChoice, ToolLike, ToolSet
from byzer_agents.types import Message

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.deployment import RayDeployment
    from byzer_agents.traces import TraceStore

__all__ = ["LLM", "ByzerLLM"]

Conversation = str | Sequence[Mapping[str, Any]]


class LLM:
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
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self._backends: dict[str, ChatBackend] = dict(backends or {})
        self._default_model = default_model
        self._formats: dict[str, PromptFormats] = {}
        self._templates: dict[str, ChatTemplate] = {}
        self._max_model_length: dict[str, int] = {}
        self._uses_ray = backends is None or address is not None
        self._ray_address = address
        self._deploy_defaults: dict[str, Any] = {
            "num_workers": 1,
            # Few CPUs per worker, so a 2-core machine holds a model, a server and a second one.
            "cpus_per_worker": 0.5,
            "gpus_per_worker": 0.0,
            "infer_backend": InferBackend.Transformers,
        }
        self.max_retries = max_retries
        self.tool_timeout_s = tool_timeout_s
        self.trace_store = _open_store(trace_store)

    # --- construction -------------------------------------------------------------------------

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
    ) -> LLM:
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
    def from_backend(cls, backend: ChatBackend, *, model: str = "default", **options: Any) -> LLM:
        """An LLM over one backend (a ScriptedBackend in tests, or any ChatBackend)."""
        return cls(backends={model: backend}, default_model=model, **options)

    def register(self, name: str, backend: ChatBackend) -> LLM:
        """Make ``backend`` answer to ``name``; chainable."""
        self._backends[name] = backend
        return self

    def list_models(self) -> list[str]:
        """Models this LLM can talk to: its own backends and, with Ray, every deployment."""
        names = set(self._backends)
        if self._uses_ray:
            names.update(self._deployments().deployment_names())
        return sorted(names)

    def backend(self, model: str | None = None) -> ChatBackend:
        """The endpoint that answers ``model``: a deployment's client, or a registered backend.
        ModelNotFoundError names the models there are."""
        return self._resolve(model)[1]

    def is_model_exist(self, udf_name: str) -> bool:
        if udf_name in self._backends:
            return True
        return self._uses_ray and self._deployments().find(udf_name) is not None

    # --- deployments on Ray (Byzer-LLM's deploy surface; each setup_* chainable) --------------

    def setup_num_workers(self, num_workers: int) -> LLM:
        return self._set_deploy_default("num_workers", num_workers)

    def setup_gpus_per_worker(self, gpus: float) -> LLM:
        return self._set_deploy_default("gpus_per_worker", gpus)

    def setup_cpus_per_worker(self, cpus: float) -> LLM:
        return self._set_deploy_default("cpus_per_worker", cpus)

    def setup_infer_backend(self, backend: InferBackend | str) -> LLM:
        return self._set_deploy_default("infer_backend", InferBackend.parse(backend))

    def _set_deploy_default(self, key: str, value: Any) -> LLM:
        self._deploy_defaults[key] = value
        return self

    def deploy(
        self,
        model_path: str | os.PathLike[str] | None = None,
        pretrained_model_type: str = "custom/auto",
        udf_name: str | None = None,
        infer_params: Mapping[str, Any] | None = None,
    ) -> RayDeployment:
        """Load a model on ``num_workers`` Ray workers; it answers to ``udf_name`` from any process
        until ``undeploy``. Bad types, paths and infer_params fail here, before a worker starts.
        ``saas/<provider>`` types need no model_path (Byzer-LLM's SaaS deployments gave none)."""
        from byzer_agents.llm_runtime.deploy_config import (
            DeploymentSpec,
            InferParams,
            parse_model_type,
        )

        model_type = parse_model_type(pretrained_model_type)
        if model_path is None and model_type.kind != "saas":
            raise ValueError(f"deploying {pretrained_model_type!r} needs a model_path")
        default_name = Path(str(model_path)).stem if model_path else model_type.name.split("/")[-1]
        name = udf_name or default_name.replace(" ", "_")
        spec = DeploymentSpec(
            udf_name=name,
            model_path=str(model_path or ""),
            model_type=model_type,
            infer_params=InferParams.parse(infer_params),
            **self._deploy_defaults,
        )
        self._uses_ray = True
        deployment = self._deployments().deploy(spec)
        self._backends[name] = self._with_fallbacks(name, deployment)
        return deployment

    def undeploy(self, udf_name: str) -> bool:
        self._backends.pop(udf_name, None)
        return self._uses_ray and self._deployments().undeploy(udf_name)

    def _deployments(self) -> Any:
        """The deployment module, with this LLM's cluster joined (started if need be)."""
        from byzer_agents.llm_runtime import cluster, deployment

        cluster.connect(self._ray_address)
        return deployment

    # --- Byzer-LLM's setup methods (each chainable) ------------------------------------------

    def setup_default_model_name(self, model: str) -> LLM:
        self._default_model = model
        return self

    def setup_template(self, model: str, template: str | ChatTemplate) -> LLM:
        """Render ``model``'s conversations with ``template`` in the calls that follow: a built-in
        name (``"qwen"``, ``"llama3"``, ``"chatml"``...) or a ChatTemplate. ``"auto"`` goes back
        to the deployment's own (its tokenizer's template, else its model type's).

        Only local deployments render prompts, so only they can use a template: an
        OpenAI-compatible or SaaS model renders its own and refuses calls that carry one (give
        it ``"auto"``, as Byzer-LLM's examples do, which changes nothing)."""
        if isinstance(template, str) and template.strip().lower() == "auto":
            self._templates.pop(model, None)
            return self
        self._templates[model] = Templates.get(template) if isinstance(template, str) else template
        return self

    def setup_max_model_length(self, model: str, max_length: int) -> LLM:
        """Hold ``model``'s calls that follow to a context of ``max_length`` tokens, as
        Byzer-LLM did: a local backend refuses a call whose prompt and ``max_tokens`` together
        exceed it with ContextLengthError naming both, before generating (without
        ``max_tokens`` the answer gets the room that is left). The deployment's own context
        length, when smaller, still holds. OpenAI-compatible and SaaS models count no tokens
        here and refuse calls that carry it."""
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive number of tokens, got {max_length!r}")
        self._max_model_length[model] = max_length
        return self

    def setup_function_calling_format_func(self, model: str, func: Callable[..., str]) -> LLM:
        return self._set_format(model, function_calling=func)

    def setup_response_class_format_func(self, model: str, func: Callable[[str, Any], str]) -> LLM:
        return self._set_format(model, response_class=func)

    def setup_response_class_format_after_chat_func(
        self, model: str, func: Callable[[Any], str]
    ) -> LLM:
        return self._set_format(model, response_class_after_chat=func)

    def _set_format(self, model: str, **change: Any) -> LLM:
        self._formats[model] = dataclasses.replace(
            self._formats.get(model, PromptFormats()), **change
        )
        return self

    def get_meta(self, model: str | None = None) -> dict[str, Any]:
        name, backend = self._resolve(model)
        meta = dict(backend.meta())
        meta.setdefault("model", name)
        if name in self._max_model_length:
            meta["max_model_len"] = self._max_model_length[name]
        if name in self._templates:
            meta["template"] = self._templates[name].name
        return meta

    # --- chat ---------------------------------------------------------------------------------

    def chat(self, model: str | None, request: LLMRequest | str) -> list[LLMResponse]:
        """Byzer-LLM's ``chat``: one answer per instruction."""
        if isinstance(request, str):
            request = LLMRequest(instruction=request)
        return [
            self.chat_oai(
                [{"role": "user", "content": text}], model=model, llm_config=request.llm_config()
            )[0]
            for text in request.instructions
        ]

    def chat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: Any = None,
        execute_tool: bool = False,
        response_class: Any = None,
        response_after_chat: bool = False,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> list[LLMResponse]:
        """Chat once; with ``tools`` parse (and with ``execute_tool`` run) the calls; with
        ``response_class`` return the typed answer in ``.value``. A list, as in Byzer-LLM."""
        flow, backend, tracer = self._prepare(
            conversations, tools, tool_choice, execute_tool, response_class,
            response_after_chat, model, llm_config, max_retries, kind="chat_oai",
        )  # fmt: skip
        with _run_status(tracer):
            return [drive(flow, backend, tracer=tracer, tool_timeout_s=self.tool_timeout_s)]

    async def achat_oai(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: Any = None,
        execute_tool: bool = False,
        response_class: Any = None,
        response_after_chat: bool = False,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
    ) -> list[LLMResponse]:
        flow, backend, tracer = self._prepare(
            conversations, tools, tool_choice, execute_tool, response_class,
            response_after_chat, model, llm_config, max_retries, kind="chat_oai",
        )  # fmt: skip
        with _run_status(tracer):
            return [await adrive(flow, backend, tracer=tracer, tool_timeout_s=self.tool_timeout_s)]

    def extract(
        self,
        cls: Any,
        text_or_messages: Conversation,
        *,
        model: str | None = None,
        max_retries: int | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Any:
        """An instance of ``cls`` (pydantic class, dataclass, TypedDict, ``list[cls]``...) from a
        text or a conversation; ExtractionError with every attempt when none validates."""
        return self.chat_oai(
            _extraction_messages(text_or_messages),
            response_class=cls,
            model=model,
            llm_config=llm_config,
            max_retries=max_retries,
        )[0].value

    async def aextract(
        self,
        cls: Any,
        text_or_messages: Conversation,
        *,
        model: str | None = None,
        max_retries: int | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Any:
        responses = await self.achat_oai(
            _extraction_messages(text_or_messages),
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
        settings, backend = self._settings(model, llm_config, None, kind="stream_chat_oai")
        request = settings.request(_messages(conversations))
        yield from self._traced_stream(settings, request, stream_text(backend, request))

    async def astream_chat_oai(
        self,
        conversations: Conversation,
        model: str | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        settings, backend = self._settings(model, llm_config, None, kind="stream_chat_oai")
        request = settings.request(_messages(conversations))
        pieces: list[str] = []
        with _run_failure(settings.tracer):
            async for piece in astream_text(backend, request):
                pieces.append(piece)
                yield piece
        _trace_streamed(settings, request, "".join(pieces))

    def stream_extract(
        self,
        cls: Any,
        text_or_messages: Conversation,
        *,
        model: str | None = None,
        max_retries: int | None = None,
        llm_config: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """Partial instances of ``cls`` while the JSON streams; the last one is the validated
        answer (after the retry loop, if the streamed answer did not validate). A long answer's
        partials come less often as it grows, so reading them stays linear in its length."""
        messages = _extraction_messages(text_or_messages)
        settings, backend = self._settings(model, llm_config, max_retries, kind="stream_extract")
        flow = typed_flow(settings, messages, cls)
        request = next(flow).request  # type: ignore[union-attr]  # built as extract() builds it
        flow.close()
        partials = PartialAnswers(cls)
        with _run_failure(settings.tracer):
            for piece in stream_text(backend, request):
                partial = partials.add(piece)
                if partial is not None:
                    yield partial
        text = partials.text
        _trace_streamed(settings, request, text)
        try:
            yield typed_answer_from_text(settings, text, cls)
            return
        except ValueError as exc:
            problem = str(exc)
        # The streamed answer did not validate: continue the conversation with the feedback.
        retry = [
            *request.messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Your answer could not be used: {problem}"},
        ]
        yield self.chat_oai(
            retry, response_class=cls, model=model, llm_config=llm_config, max_retries=max_retries
        )[0].value

    # --- embeddings ---------------------------------------------------------------------------

    def emb(
        self, model: str | None, request: LLMRequest | str | Sequence[str]
    ) -> list[EmbeddingResponse]:
        """One vector per instruction."""
        if isinstance(request, LLMRequest):
            texts = request.instructions
        elif isinstance(request, str):
            texts = [request]
        else:
            texts = list(request)
        _, backend = self._resolve(model)
        vectors = backend.embed(texts)
        return [
            EmbeddingResponse(output=vector, input=text)
            for text, vector in zip(texts, vectors, strict=True)
        ]

    def close(self) -> None:
        if self.trace_store is not None:
            self.trace_store.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LLM(models={self.list_models()}, default={self._default_model!r})"

    # --- internals ----------------------------------------------------------------------------

    def _resolve(self, model: str | None) -> tuple[str, ChatBackend]:
        name = model or self._default_model
        if name is None:
            # Nothing named and no default: the only model there is, or say how to choose.
            available = self.list_models()
            if len(available) != 1:
                raise NoDefaultModelError(available)
            name = available[0]
        if name not in self._backends and self._uses_ray:
            found = self._deployments().find(name)
            if found is not None:
                self._backends[name] = self._with_fallbacks(name, found)
        if name not in self._backends:
            raise ModelNotFoundError(name, self.list_models())
        return name, self._backends[name]

    def _with_fallbacks(self, name: str, deployment: ChatBackend) -> ChatBackend:
        """A deployment whose spec names fallbacks answers through a FallbackRouter
        (``llm_runtime/routing.py``), which finds them among this LLM's models."""
        from byzer_agents.llm_runtime.routing import with_fallbacks

        def find(other: str) -> ChatBackend | None:
            known = self._backends.get(other)
            if known is None and self._uses_ray:
                known = self._deployments().find(other)
            return known

        return with_fallbacks(name, deployment, find=find)

    def _settings(
        self,
        model: str | None,
        llm_config: Mapping[str, Any] | None,
        max_retries: int | None,
        *,
        kind: str,
    ) -> tuple[ChatSettings, ChatBackend]:
        name, backend = self._resolve(model)
        generation = GenerationConfig.parse(llm_config)
        settings = ChatSettings(
            model=name,
            capabilities=backend.capabilities,
            tracer=RunTracer(self.trace_store, kind=kind, model=name),
            generation=generation,
            formats=self._formats.get(name, PromptFormats()),
            max_retries=self.max_retries if max_retries is None else max_retries,
            chat_template=self._templates.get(name),
            max_model_len=self._max_model_length.get(name),
        )
        return settings, backend

    def _prepare(
        self,
        conversations: Conversation,
        tools: Sequence[ToolLike] | None,
        tool_choice: Any,
        execute_tool: bool,
        response_class: Any,
        response_after_chat: bool,
        model: str | None,
        llm_config: Mapping[str, Any] | None,
        max_retries: int | None,
        *,
        kind: str,
    ) -> tuple[Flow, ChatBackend, RunTracer]:
        messages = _messages(conversations)
        if tools and response_class is not None:
            raise ValueError(
                "give tools or response_class, not both: a call either calls tools or answers typed"
            )
        if not tools and (execute_tool or tool_choice not in (None, "none", "auto")):
            raise ValueError(
                f"execute_tool / tool_choice={tool_choice!r} need tools, and none were given"
            )
        if response_after_chat and response_class is None:
            raise ValueError("response_after_chat=True needs a response_class to extract")
        toolset = ToolSet(tools or ())
        choice = ToolChoice.parse(tool_choice, toolset)
        settings, backend = self._settings(model, llm_config, max_retries, kind=kind)
        flow: Flow
        if toolset and choice.mode != "none":
            flow = tool_flow(settings, messages, toolset, choice, execute=execute_tool)
        elif response_class is not None and response_after_chat:
            flow = after_chat_flow(settings, messages, response_class)
        elif response_class is not None:
            flow = typed_flow(settings, messages, response_class)
        else:
            flow = plain_flow(settings, messages)
        return flow, backend, settings.tracer

    @staticmethod
    def _traced_stream(
        settings: ChatSettings, request: Any, pieces: Iterator[str]
    ) -> Iterator[str]:
        collected: list[str] = []
        with _run_failure(settings.tracer):
            for piece in pieces:
                collected.append(piece)
                yield piece
        _trace_streamed(settings, request, "".join(collected))


ByzerLLM = LLM


@contextlib.contextmanager
def _run_status(tracer: RunTracer) -> Iterator[None]:
    """Close the traced run as ok, or as error when the call raised."""
    try:
        yield
    except BaseException:
        tracer.finish("error")
        raise
    tracer.finish("ok")


@contextlib.contextmanager
def _run_failure(tracer: RunTracer) -> Iterator[None]:
    """Close the traced run as error when a stream fails (a stream the caller stops reading is
    not a failure, and is left alone)."""
    try:
        yield
    except Exception:
        tracer.finish("error")
        raise


def _trace_streamed(settings: ChatSettings, request: Any, text: str) -> None:
    from byzer_agents.types import make_completion

    settings.tracer.model_call(
        request,
        make_completion(model=settings.model, content=text),
        latency_s=0.0,
        attempt=1,
        status="ok",
    )
    settings.tracer.finish("ok")


def _open_store(store: TraceStore | str | os.PathLike[str] | None) -> TraceStore | None:
    if store is None or not isinstance(store, (str, os.PathLike)):
        return store
    from byzer_agents.traces import TraceStore

    return TraceStore(Path(store))


def _messages(conversations: Conversation) -> list[Message]:
    if isinstance(conversations, str):
        return [{"role": "user", "content": conversations}]
    messages: list[Message] = []
    for index, message in enumerate(conversations):
        if not isinstance(message, Mapping) or "role" not in message:
            raise TypeError(
                f"conversations[{index}] must be a message dict with a 'role' "
                f"(system, user, assistant or tool), got {message!r:.200}"
            )
        messages.append(dict(message))
    if not messages:
        raise ValueError("conversations is empty: give at least one message")
    return messages


def _extraction_messages(text_or_messages: Conversation) -> list[Message]:
    if isinstance(text_or_messages, str):
        return [{"role": "user", "content": render("extract.j2", text=text_or_messages)}]
    return _messages(text_or_messages)
