"""``TransformersBackend``: a local chat model run in-process by Hugging Face transformers, on CPU
or GPU, answering the one protocol; the Ray layer wraps it in an actor.

Requests from several threads are batched (``batching``): one worker thread owns the model,
gathers the requests that arrive within ``batch_wait_ms`` (up to ``max_batch_size``) and runs
each group with the same sampling settings as one ``generate`` (``transformers_generation``).
Streams, constrained requests and seeded sampling run alone. Loading is
``transformers_loading``'s; the request checks and the answer's message are ``local_chat``'s,
shared with the vLLM backend.

What is fragile:

- A chat template that takes no ``tools`` (SmolLM2's own) would hide the tools from the model, so
  for such templates the tools are offered in the last user message in the prompt format of
  ``byzer_agents.prompts`` and earlier tool calls and results are written as text; an answer that
  calls tools is read back by the tolerant parser unless a grammar constrained it.
- Constrained decoding comes from ``byzer_agents.llm_runtime.constrained`` (xgrammar), imported
  lazily; without it, requests are generated unconstrained.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import uuid
import weakref
from collections.abc import Generator, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.backends.batching import DynamicBatcher
from byzer_agents.llm_runtime.backends.local_chat import (
    DEFAULT_MAX_TOKENS,
    EndMarkers,
    Sampling,
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
from byzer_agents.llm_runtime.backends.transformers_generation import (
    Generated,
    GenerationJob,
    TransformersGenerator,
)
from byzer_agents.llm_runtime.backends.transformers_loading import (
    DYNAMIC_INT8,
    Quantization,
    adapter_and_base,
    check_positive,
    check_quantization,
    check_quantization_fits,
    context_length,
    load_causal_lm,
    load_tokenizer,
    model_eos_ids,
    pick_device,
    pick_dtype,
)
from byzer_agents.llm_runtime.chat_prompt import offers_tools, render_chat_prompt
from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
from byzer_agents.llm_runtime.structured_output import wants_constraint
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CompletionUsage,
    FinishReason,
    make_chunk,
)

if TYPE_CHECKING:  # constrained.py needs xgrammar, which is optional: imported where it is used
    from byzer_agents.llm_runtime.constrained import Constraint

__all__ = ["DEFAULT_MAX_TOKENS", "TransformersBackend"]

logger = logging.getLogger(__name__)

_DECODE_STOP_TIMEOUT_S = 30.0
"""How long closing a stream waits for its decode to stop (one token's time, on any sane
machine)."""


@dataclass
class _Prepared:
    """A request turned into what the model reads, before it is queued."""

    prompt_ids: list[int]
    max_new_tokens: int
    stop: tuple[str, ...]
    sampling: Sampling
    seed: int | None
    constraint: Constraint | None
    offers_tools: bool
    end_ids: frozenset[int] = frozenset()

    def job(self, *, streamed: bool = False) -> GenerationJob:
        constraint = self.constraint
        return GenerationJob(
            prompt_ids=self.prompt_ids,
            max_new_tokens=self.max_new_tokens,
            stop=self.stop,
            sampling=self.sampling,
            seed=self.seed,
            end_ids=self.end_ids,
            logits_processor=None if constraint is None else constraint.logits_processor,
            tokens=queue.Queue() if streamed else None,
        )

    def usage(self, generated: Generated) -> CompletionUsage:
        return usage_of(len(self.prompt_ids), len(generated.token_ids))

    def text(self, generated: Generated) -> str:
        """The whole output: a grammar's prefix, then what the model wrote."""
        prefix = self.constraint.prefix if self.constraint is not None else ""
        return prefix + generated.text


class TransformersBackend:
    """A causal language model loaded with transformers, from a Hugging Face directory or a GGUF
    file (converted once into a cached safetensors directory, see ``resolve_checkpoint``).

    ``dtype``: ``"auto"``/None, ``"float32"``, ``"bfloat16"`` or ``"float16"``. ``device``:
    ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when present. ``chat_template`` is used
    when the tokenizer ships none (else ChatML). ``quantization``: ``"4"`` or ``"8"`` bits through
    bitsandbytes, or ``"dynamic-int8"``: torch's dynamic int8 linear layers, on the CPU, applied
    to the float32 model once loaded (an adapter merged first). ``num_threads`` sets torch's CPU
    threads for the whole process.

    ``adapter``: a PEFT (LoRA) adapter directory applied to the model ``model_path`` names. A
    ``model_path`` that is itself an adapter directory is served on the base its
    ``adapter_config.json`` names (see ``peft_adapter``).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_name: str,
        dtype: str | None = None,
        device: str | None = None,
        chat_template: ChatTemplate | None = None,
        max_model_len: int | None = None,
        num_threads: int | None = None,
        quantization: Quantization | None = None,
        max_batch_size: int = 8,
        batch_wait_ms: float = 5.0,
        adapter: str | Path | None = None,
    ) -> None:
        if not model_name:
            raise ConfigurationError(
                "model_name must name the deployment, e.g. 'SmolLM2-135M-Instruct'"
            )
        check_positive("max_model_len", max_model_len, allow_none=True)
        check_positive("num_threads", num_threads, allow_none=True)
        check_positive("max_batch_size", max_batch_size)
        if batch_wait_ms < 0:
            raise ConfigurationError(f"batch_wait_ms must be 0 or more; got {batch_wait_ms}")
        self.quantization = check_quantization(quantization)
        self.model_name = model_name
        self.model_path = Path(model_path)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        check_quantization_fits(self.quantization, self.device, self.dtype)
        self.max_batch_size = max_batch_size
        self.batch_wait_ms = batch_wait_ms
        if num_threads is not None:
            torch.set_num_threads(num_threads)

        self.adapter, base = adapter_and_base(model_path, adapter)
        self.checkpoint = resolve_checkpoint(base)
        self._tokenizer = load_tokenizer(self.checkpoint)
        self._model = self._load_model()
        config = self._model.config
        self.architectures: list[str] = list(getattr(config, "architectures", None) or [])
        self.max_model_len = max_model_len or context_length(config, self._tokenizer)
        self.chat_template = (
            Templates.from_tokenizer(self._tokenizer) or chat_template or Templates.chatml()
        )
        self._ends = self._end_markers(self.chat_template)
        self._generator = TransformersGenerator(
            self._model, self._tokenizer, device=self.device, eos_ids=self._ends.token_ids
        )
        self._capabilities = Capabilities(
            native_tools=True,
            json_schema_output=True,
            constrained_decoding=_grammars_available(),
            streaming=True,
            embeddings=False,
        )
        self._batcher = DynamicBatcher[GenerationJob](
            weakref.WeakMethod(self._generator.run),
            max_batch_size=max_batch_size,
            wait_s=batch_wait_ms / 1000,
            name=f"transformers-{model_name}",
            owner="TransformersBackend",
        )
        # Dropped without close(): stop the worker. Not at exit, where it would wait on a
        # generation in flight; the daemon thread just ends with the process.
        weakref.finalize(self, self._batcher.close).atexit = False

    def _load_model(self) -> Any:
        """The model, loaded (DeepSpeedBackend wraps what this returns)."""
        return load_causal_lm(
            self.checkpoint,
            dtype=self.dtype,
            device=self.device,
            quantization=self.quantization,
            adapter=self.adapter,
        )

    def _end_markers(self, template: ChatTemplate) -> EndMarkers:
        return end_markers(
            self._tokenizer,
            template,
            model_name=self.model_name,
            eos_ids=model_eos_ids(self._model),
        )

    @property
    def capabilities(self) -> Capabilities:
        """Chat with native tools and JSON schemas, streaming; grammars where xgrammar is."""
        return self._capabilities

    def __repr__(self) -> str:
        return (
            f"TransformersBackend(model_name={self.model_name!r}, "
            f"checkpoint={str(self.checkpoint)!r}, device={str(self.device)!r})"
        )

    def close(self) -> None:
        """Stop the worker thread; requests after this are refused."""
        self._batcher.close()

    def __enter__(self) -> TransformersBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the one protocol -------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """One answer to ``request``, batched with the requests that come with it."""
        prepared = self._prepare(request)
        job = prepared.job()
        self._batcher.submit(job)
        generated = job.future.result()
        return completion_of(
            prepared.text(generated),
            model_name=self.model_name,
            spec=prepared.constraint,
            offers_tools=prepared.offers_tools,
            reason=generated.finish_reason,
            usage=prepared.usage(generated),
        )

    def stream(
        self, request: ChatRequest, *, cancelled: threading.Event | None = None
    ) -> Iterator[ChatCompletionChunk]:
        """Deltas as the tokens decode, then a chunk with the finish reason, then one with the
        usage. An answer that may call tools is sent whole once it is complete.

        The decode stops at the next token when the caller closes the stream, or when another
        thread sets ``cancelled`` (how the Ray worker stops an answer that may call tools, which
        yields nothing until it is complete); closing returns once the decode has stopped."""
        prepared = self._prepare(request)
        job = prepared.job(streamed=True)
        job.stop_requested = cancelled
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self._batcher.submit(job)
        finish: FinishReason
        try:
            if prepared.offers_tools:
                generated = job.future.result()
                chunks, called = answer_chunks(
                    prepared.text(generated),
                    model_name=self.model_name,
                    completion_id=completion_id,
                    spec=prepared.constraint,
                    offers_tools=True,
                )
                yield from chunks
                finish = answer_finish_reason(generated.finish_reason, called=called)
            else:
                generated = yield from self._stream_text(prepared, job, completion_id)
                finish = generated.finish_reason
        finally:
            job.cancelled.set()  # a caller that stops reading stops the generation
            if not job.future.cancel():  # running: it ends at its next token; wait for that
                futures.wait([job.future], timeout=_DECODE_STOP_TIMEOUT_S)
        yield from closing_chunks(
            model_name=self.model_name,
            completion_id=completion_id,
            finish_reason=finish,
            usage=prepared.usage(generated),
        )

    def _stream_text(
        self, prepared: _Prepared, job: GenerationJob, completion_id: str
    ) -> Generator[ChatCompletionChunk, None, Generated]:
        """Content deltas as the tokens decode; returns what was generated."""

        def delta(content: str) -> ChatCompletionChunk:
            return make_chunk(model=self.model_name, completion_id=completion_id, content=content)

        prefix = prepared.constraint.prefix if prepared.constraint is not None else ""
        if prefix:
            yield delta(prefix)
        emitted = ""
        for text in self._generator.partial_texts(job):
            if len(text) > len(emitted) and text.startswith(emitted):
                yield delta(text[len(emitted) :])
                emitted = text
        generated: Generated = job.future.result()
        if generated.text.startswith(emitted) and len(generated.text) > len(emitted):
            yield delta(generated.text[len(emitted) :])
        return generated

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Refused: a chat model makes no embeddings."""
        raise no_embeddings(self.model_name, "TransformersBackend")

    def meta(self) -> dict[str, Any]:
        """What the model is, how it runs, and how its requests were batched so far."""
        return {
            **engine_meta(self, "transformers", dtype=str(self.dtype), device=str(self.device)),
            "architectures": list(self.architectures),
            "quantization": self.quantization,
            "adapter": (
                {**self.adapter.describe(), "merged": self.quantization in (None, DYNAMIC_INT8)}
                if self.adapter is not None
                else None
            ),
            "num_threads": torch.get_num_threads(),
            "max_batch_size": self.max_batch_size,
            "batch_wait_ms": self.batch_wait_ms,
            "constrained_decoding": self._capabilities.constrained_decoding,
            "requests_served": self._generator.requests_served,
            "batches_run": self._generator.batches_run,
            "largest_batch": self._generator.largest_batch,
        }

    # -- requests -----------------------------------------------------------------------------

    def render_prompt(self, request: ChatRequest) -> str:
        """The prompt text the model reads for ``request`` (without a grammar's prefix), in the
        request's own chat template when it names one (``LLM.setup_template``)."""
        return render_chat_prompt(request.chat_template or self.chat_template, request)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is to this model (no special tokens added)."""
        return len(self._generator.encode(text))

    def _prepare(self, request: ChatRequest) -> _Prepared:
        sampling, stop = sampling_of(request), stop_strings(request)
        single_choice(request, "TransformersBackend")
        prompt = self.render_prompt(request)
        end_ids, template_stops = frozenset[int](), self._ends.texts
        if request.chat_template is not None:
            # A template the caller set (LLM.setup_template) ends answers with its own stops too.
            ends = self._end_markers(request.chat_template)
            end_ids, template_stops = ends.token_ids - self._ends.token_ids, ends.texts
        prompt_ids = self._generator.encode(prompt)
        max_new_tokens = self._max_new_tokens(request, len(prompt_ids))
        constraint = self._constraint(request, max_new_tokens)
        prefix = constraint.prefix if constraint is not None else ""
        if prefix:
            prompt_ids = self._generator.encode(prompt + prefix)
            max_new_tokens = self._max_new_tokens(request, len(prompt_ids))
        return _Prepared(
            prompt_ids=prompt_ids,
            max_new_tokens=max_new_tokens,
            stop=tuple(dict.fromkeys((*stop, *template_stops))),
            sampling=sampling,
            seed=request.seed,
            constraint=constraint,
            offers_tools=offers_tools(request),
            end_ids=end_ids,
        )

    def _max_new_tokens(self, request: ChatRequest, prompt_tokens: int) -> int:
        return new_tokens_for(
            request,
            prompt_tokens=prompt_tokens,
            model_name=self.model_name,
            model_len=self.max_model_len,
        )

    def _constraint(self, request: ChatRequest, max_new_tokens: int) -> Constraint | None:
        """The grammar for ``request``; None without one, or when the request turns it off with
        ``llm_config={"constrained_decoding": False}`` (the model then writes freely)."""
        if not self._capabilities.constrained_decoding or not wants_constraint(request):
            return None
        from byzer_agents.llm_runtime.constrained import build_constraint

        return build_constraint(
            request,
            self._tokenizer,
            max_new_tokens=max_new_tokens,
            vocab_size=int(self._model.config.vocab_size),  # the logits' width (padded embeddings)
            stop_token_ids=sorted(self._ends.token_ids),
        )


def _grammars_available() -> bool:
    """Whether constrained decoding can run here (xgrammar is optional: the Makefile installs it,
    the package's extras do not)."""
    try:
        importlib.import_module("byzer_agents.llm_runtime.constrained")
    except ImportError as exc:
        logger.warning("constrained decoding is off: %s", exc)
        return False
    return True
