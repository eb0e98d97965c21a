"""``TransformersBackend``: a local chat model run in-process by Hugging Face transformers, on CPU
or GPU, answering the one protocol; the Ray layer wraps it in an actor.

Requests from several threads are batched: one worker thread owns the model, gathers the requests
that arrive within ``batch_wait_ms`` (up to ``max_batch_size``), left-pads them and runs one
``generate`` for each group with the same sampling settings; requests that arrive while a batch
runs wait for the next one (batching per request, not per step). Streams, constrained requests and
seeded sampling run alone: a shared batch would make a seeded draw depend on its neighbours.

What is fragile:

- Stop strings and per-request token limits inside one batch are enforced by ``_RowStops``, one
  stopping criterion that records where each row ended; the text after a row's end is padding.
- A chat template that takes no ``tools`` (SmolLM2's own) would hide the tools from the model, so
  for such templates the tools are offered in the last user message in the prompt format of
  ``byzer_agents.prompts`` and earlier tool calls and results are written as text; an answer that
  calls tools is read back by the tolerant parser unless a grammar constrained it.
- Constrained decoding comes from ``byzer_agents.llm_runtime.constrained`` (xgrammar), imported
  lazily; without it, requests are generated unconstrained.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import queue
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation import (
    BaseStreamer,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.chat_prompt import offers_tools, render_chat_prompt
from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
from byzer_agents.llm_runtime.context_length import new_token_budget
from byzer_agents.llm_runtime.peft_adapter import (
    AdapterSource,
    adapter_base,
    apply_adapter,
    is_adapter_dir,
    read_adapter,
)
from byzer_agents.llm_runtime.structured_output import tool_calls_in_text, wants_constraint
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CompletionUsage,
    FinishReason,
    make_chunk,
    make_completion,
    make_tool_call,
    make_tool_call_chunk,
)

if TYPE_CHECKING:  # constrained.py needs xgrammar, which is optional: imported where it is used
    from byzer_agents.llm_runtime.constrained import Constraint, GrammarLogitsProcessor

__all__ = ["DEFAULT_MAX_TOKENS", "TransformersBackend"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
"""New tokens per request when it sets no ``max_tokens`` (never beyond ``max_model_len``)."""

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_QUANTIZATIONS = ("4", "8")
_STOP_WINDOW_SLACK = 4
"""Tokens decoded beyond a stop string's length when looking for it at the end of the output."""
_DECODE_STOP_TIMEOUT_S = 30.0
"""How long closing a stream waits for its decode to stop (one token's time, on any sane
machine)."""


@dataclass(frozen=True)
class _Sampling:
    """The settings a batch must share; ``temperature=None`` is greedy decoding."""

    temperature: float | None
    top_p: float


@dataclass(frozen=True)
class _Generated:
    token_ids: list[int]
    """The new tokens, up to and including the one that ended the answer."""
    text: str
    """Their text, cut before any stop string."""
    finish_reason: Literal["stop", "length"]


@dataclass
class _Job:
    """One request on its way to the worker thread."""

    prompt_ids: list[int]
    max_new_tokens: int
    stop: tuple[str, ...]
    sampling: _Sampling
    seed: int | None = None
    end_ids: frozenset[int] = frozenset()
    """Token ids that end this answer besides the model's own (a caller's chat template's)."""
    logits_processor: GrammarLogitsProcessor | None = None
    tokens: queue.Queue[list[int] | None] | None = None
    """Set for a stream: each new token goes here as it is made, then None."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the stream's reader goes away: the decode ends at its next token."""
    stop_requested: threading.Event | None = None
    """The caller's own signal to end the decode (``stream(cancelled=...)``); never set here."""
    future: Future[_Generated] = field(default_factory=Future)

    @property
    def stopped(self) -> bool:
        return self.cancelled.is_set() or (
            self.stop_requested is not None and self.stop_requested.is_set()
        )

    @property
    def batchable(self) -> bool:
        seeded_draw = self.sampling.temperature is not None and self.seed is not None
        return self.tokens is None and self.logits_processor is None and not seeded_draw


@dataclass
class _Prepared:
    """A request turned into what the model reads, before it is queued."""

    prompt_ids: list[int]
    max_new_tokens: int
    stop: tuple[str, ...]
    sampling: _Sampling
    seed: int | None
    constraint: Constraint | None
    offers_tools: bool
    end_ids: frozenset[int] = frozenset()

    def job(self, *, streamed: bool = False) -> _Job:
        constraint = self.constraint
        return _Job(
            prompt_ids=self.prompt_ids,
            max_new_tokens=self.max_new_tokens,
            stop=self.stop,
            sampling=self.sampling,
            seed=self.seed,
            end_ids=self.end_ids,
            logits_processor=None if constraint is None else constraint.logits_processor,
            tokens=queue.Queue() if streamed else None,
        )


class TransformersBackend:
    """A causal language model loaded with transformers, from a Hugging Face directory or a GGUF
    file (converted once into a cached safetensors directory, see ``resolve_checkpoint``).

    ``dtype``: ``"auto"``/None, ``"float32"``, ``"bfloat16"`` or ``"float16"``. ``device``:
    ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when present. ``chat_template`` is used
    when the tokenizer ships none (else ChatML). ``quantization``: ``"4"`` or ``"8"`` bits through
    bitsandbytes. ``num_threads`` sets torch's CPU threads for the whole process.

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
        quantization: Literal["4", "8"] | None = None,
        max_batch_size: int = 8,
        batch_wait_ms: float = 5.0,
        adapter: str | Path | None = None,
    ) -> None:
        if not model_name:
            raise ValueError("model_name must name the deployment, e.g. 'SmolLM2-135M-Instruct'")
        _check_positive("max_model_len", max_model_len, allow_none=True)
        _check_positive("num_threads", num_threads, allow_none=True)
        _check_positive("max_batch_size", max_batch_size)
        if batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be 0 or more; got {batch_wait_ms}")
        if quantization is not None and str(quantization) not in _QUANTIZATIONS:
            raise ValueError(
                f"quantization must be one of {list(_QUANTIZATIONS)} (bits) or None; "
                f"got {quantization!r}"
            )
        if quantization is not None and importlib.util.find_spec("bitsandbytes") is None:
            raise ModuleNotFoundError(
                f"quantization={quantization!r} needs bitsandbytes, which is not installed; "
                "install it with: pip install bitsandbytes",
                name="bitsandbytes",
            )
        self.model_name = model_name
        self.model_path = Path(model_path)
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.quantization: Literal["4", "8"] | None = (
            "4" if str(quantization) == "4" else "8" if quantization is not None else None
        )
        self.max_batch_size = max_batch_size
        self.batch_wait_ms = batch_wait_ms
        if num_threads is not None:
            torch.set_num_threads(num_threads)

        self.adapter, base = _adapter_and_base(model_path, adapter)
        self.checkpoint = resolve_checkpoint(base)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint), local_files_only=True)
        self._tokenizer_lock = threading.RLock()
        self._model = self._load_model()
        config = self._model.config
        self.architectures: list[str] = list(getattr(config, "architectures", None) or [])
        self.max_model_len = max_model_len or _model_len(config, self._tokenizer)
        self.chat_template = (
            Templates.from_tokenizer(self._tokenizer) or chat_template or Templates.chatml()
        )
        self._eos_ids, self._template_stops = self._end_markers(self.chat_template)
        pad_id = self._tokenizer.pad_token_id
        self._pad_id = int(pad_id if pad_id is not None else min(self._eos_ids))
        grammars = True
        try:  # xgrammar is optional: the Makefile installs it, the package's extras do not
            importlib.import_module("byzer_agents.llm_runtime.constrained")
        except ImportError as exc:
            logger.warning("constrained decoding is off: %s", exc)
            grammars = False
        self._capabilities = Capabilities(
            native_tools=True,
            json_schema_output=True,
            constrained_decoding=grammars,
            streaming=True,
            embeddings=False,
        )
        # Written by the worker thread only: how the requests were batched (for meta()).
        self._requests_served = self._batches_run = self._largest_batch = 0
        self._batcher = _DynamicBatcher(
            weakref.WeakMethod(self._run_jobs),
            max_batch_size=max_batch_size,
            wait_s=batch_wait_ms / 1000,
            name=f"transformers-{model_name}",
        )
        # Dropped without close(): stop the worker. Not at exit, where it would wait on a
        # generation in flight; the daemon thread just ends with the process.
        weakref.finalize(self, self._batcher.close).atexit = False

    def _load_model(self) -> Any:
        options: dict[str, Any] = {"dtype": self.dtype, "local_files_only": True}
        if self.quantization is not None:
            from transformers import BitsAndBytesConfig

            options["quantization_config"] = (
                BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=self.dtype)
                if self.quantization == "4"
                else BitsAndBytesConfig(load_in_8bit=True)
            )
            options["device_map"] = {"": self.device}
            # bitsandbytes' int8 matmul works in float16 and warns on every call that it casts
            # float32 inputs; the cast is its design, not a problem to report per token.
            warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
        model: Any = AutoModelForCausalLM.from_pretrained(str(self.checkpoint), **options)
        if self.adapter is not None:
            # Merged in memory: decoding then costs what the base costs (no LoRA matmuls beside
            # every adapted layer) and the model is a plain transformers model again, which
            # DeepSpeed-Inference wraps like any other. A deployment serves one adapter, so
            # PEFT's adapter switching is not needed. Quantized bases keep the adapter unmerged:
            # merging would round its update into the 4/8-bit weights.
            model = apply_adapter(model, self.adapter.path, merge=self.quantization is None)
        if self.quantization is None:
            model = model.to(self.device)
        model.eval()
        return model

    def _end_markers(self, template: ChatTemplate) -> tuple[frozenset[int], tuple[str, ...]]:
        """The token ids that end an answer, and ``template``'s stop strings that are no
        token."""
        ids: set[int] = set()
        configured = self._model.generation_config.eos_token_id
        for value in configured if isinstance(configured, list) else [configured]:
            if value is not None:
                ids.add(int(value))
        if self._tokenizer.eos_token_id is not None:
            ids.add(int(self._tokenizer.eos_token_id))
        texts: list[str] = []
        vocabulary = self._tokenizer.get_vocab()
        for stop in template.stop:
            if stop in vocabulary:
                ids.add(int(vocabulary[stop]))
            else:
                texts.append(stop)
        if not ids:
            raise ValueError(
                f"the tokenizer of {self.model_name!r} names no end-of-sequence token and the chat "
                f"template {template.name!r} no stop token; generation could not end"
            )
        return frozenset(ids), tuple(texts)

    @property
    def capabilities(self) -> Capabilities:
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
        prepared = self._prepare(request)
        job = prepared.job()
        self._batcher.submit(job)
        generated = job.future.result()
        content, tool_calls = self._message(prepared, generated)
        finish: FinishReason = generated.finish_reason
        if tool_calls and finish == "stop":
            finish = "tool_calls"
        return make_completion(
            model=self.model_name,
            content=content,
            tool_calls=tool_calls,
            finish_reason=finish,
            usage=self._usage(prepared, generated),
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
                content, tool_calls = self._message(prepared, generated)
                if tool_calls:
                    yield self._tool_call_chunk(completion_id, tool_calls)
                elif content:
                    yield self._chunk(completion_id, content=content)
                finish = generated.finish_reason
                if tool_calls and finish == "stop":
                    finish = "tool_calls"
            else:
                prefix = prepared.constraint.prefix if prepared.constraint is not None else ""
                if prefix:
                    yield self._chunk(completion_id, content=prefix)
                emitted = ""
                for text in self._partial_texts(job):
                    if len(text) > len(emitted) and text.startswith(emitted):
                        yield self._chunk(completion_id, content=text[len(emitted) :])
                        emitted = text
                generated = job.future.result()
                if generated.text.startswith(emitted) and len(generated.text) > len(emitted):
                    yield self._chunk(completion_id, content=generated.text[len(emitted) :])
                finish = generated.finish_reason
        finally:
            job.cancelled.set()  # a caller that stops reading stops the generation
            if not job.future.cancel():  # running: it ends at its next token; wait for that
                futures.wait([job.future], timeout=_DECODE_STOP_TIMEOUT_S)
        yield self._chunk(completion_id, finish_reason=finish)
        yield self._chunk(completion_id, usage=self._usage(prepared, generated))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise NotImplementedError(
            f"{self.model_name!r} is a chat model (TransformersBackend): it makes no embeddings; "
            "deploy an embedding model (EmbeddingBackend, e.g. all-MiniLM-L6-v2) for embed()"
        )

    def meta(self) -> dict[str, Any]:
        return {
            "model_deploy_type": "local",
            "backend": "transformers",
            "model": self.model_name,
            "model_path": str(self.model_path),
            "checkpoint": str(self.checkpoint),
            "max_model_len": self.max_model_len,
            "architectures": list(self.architectures),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "quantization": self.quantization,
            "adapter": (
                {**self.adapter.describe(), "merged": self.quantization is None}
                if self.adapter is not None
                else None
            ),
            "num_threads": torch.get_num_threads(),
            "max_batch_size": self.max_batch_size,
            "batch_wait_ms": self.batch_wait_ms,
            "chat_template": self.chat_template.name,
            "constrained_decoding": self._capabilities.constrained_decoding,
            "requests_served": self._requests_served,
            "batches_run": self._batches_run,
            "largest_batch": self._largest_batch,
        }

    # -- requests -----------------------------------------------------------------------------

    def render_prompt(self, request: ChatRequest) -> str:
        """The prompt text the model reads for ``request`` (without a grammar's prefix), in the
        request's own chat template when it names one (``LLM.setup_template``)."""
        return render_chat_prompt(request.chat_template or self.chat_template, request)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is to this model (no special tokens added)."""
        return len(self._encode(text))

    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _decode(self, token_ids: Sequence[int]) -> str:
        with self._tokenizer_lock:
            return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def _ends(self, job: _Job, token_id: int) -> bool:
        return token_id in self._eos_ids or token_id in job.end_ids

    def _prepare(self, request: ChatRequest) -> _Prepared:
        sampling, stop = _sampling(request), _stops(request)
        if request.n != 1:
            raise ValueError(
                f"n={request.n}: TransformersBackend answers with one choice per request; "
                "send n=1 (several requests run batched)"
            )
        prompt = self.render_prompt(request)
        end_ids, template_stops = frozenset[int](), self._template_stops
        if request.chat_template is not None:
            all_ids, template_stops = self._end_markers(request.chat_template)
            end_ids = all_ids - self._eos_ids
        prompt_ids = self._encode(prompt)
        max_new_tokens = self._max_new_tokens(request, len(prompt_ids))
        constraint = self._constraint(request, max_new_tokens)
        prefix = constraint.prefix if constraint is not None else ""
        if prefix:
            prompt_ids = self._encode(prompt + prefix)
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
        return new_token_budget(
            request,
            prompt_tokens=prompt_tokens,
            model_name=self.model_name,
            model_len=self.max_model_len,
            default=DEFAULT_MAX_TOKENS,
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
            stop_token_ids=sorted(self._eos_ids),
        )

    def _message(self, prepared: _Prepared, generated: _Generated) -> tuple[str | None, list[Any]]:
        """The answer's content and tool calls."""
        constraint = prepared.constraint
        if constraint is not None:
            text = constraint.prefix + generated.text
            problem = constraint.check(text)
            if problem is not None:
                # Left for the chat loop to see and feed back, as an unconstrained answer would be.
                logger.warning(
                    "%s: constrained output does not validate: %s", self.model_name, problem
                )
                return text, []
            content, calls = constraint.to_message(text)
            if not calls and constraint.allows_text and (written := tool_calls_in_text(text)):
                # tool_choice "auto": a model that writes its call as the prompt format shows
                # (a fenced JSON block) takes the free-text branch; read the call from the text.
                return None, written
            return content, [make_tool_call(name, arguments) for name, arguments in calls]
        if prepared.offers_tools and (written := tool_calls_in_text(generated.text)):
            return None, written
        return generated.text, []

    def _usage(self, prepared: _Prepared, generated: _Generated) -> CompletionUsage:
        prompt, completion = len(prepared.prompt_ids), len(generated.token_ids)
        return CompletionUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def _partial_texts(self, job: _Job) -> Iterator[str]:
        """The answer's text so far, each time a token arrives, held back where it may be the
        start of a stop string or of a character whose bytes are not all there."""
        assert job.tokens is not None
        token_ids: list[int] = []
        while True:
            new = job.tokens.get()
            if new is None:
                return
            token_ids.extend(new)
            text = self._decode([t for t in token_ids if not self._ends(job, t)])
            cut = _cut_at_stop(text, job.stop)
            if cut is not None:
                yield cut
                return
            yield _without_partial_end(text, job.stop)

    # -- generation, on the worker thread -------------------------------------------------------

    def _run_jobs(self, jobs: list[_Job]) -> None:
        started = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        try:
            if started:
                self._batches_run += 1
                self._requests_served += len(started)
                self._largest_batch = max(self._largest_batch, len(started))
                results = self._generate(started)
                for job, result in zip(started, results, strict=True):
                    job.future.set_result(result)
        except BaseException as exc:
            for job in started:
                if not job.future.done():
                    job.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            for job in jobs:
                if job.tokens is not None:
                    job.tokens.put(None)

    def _generate(self, jobs: list[_Job]) -> list[_Generated]:
        width = max(len(job.prompt_ids) for job in jobs)
        input_ids = torch.tensor(
            [[self._pad_id] * (width - len(job.prompt_ids)) + job.prompt_ids for job in jobs],
            device=self.device,
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(job.prompt_ids)) + [1] * len(job.prompt_ids) for job in jobs],
            device=self.device,
        )
        row_stops = _RowStops(jobs, width, self._eos_ids, self._decode)
        options: dict[str, Any] = {
            "max_new_tokens": max(job.max_new_tokens for job in jobs),
            "pad_token_id": self._pad_id,
            "eos_token_id": sorted(self._eos_ids),
            "stopping_criteria": StoppingCriteriaList([row_stops]),
        }
        sampling = jobs[0].sampling
        if sampling.temperature is None:
            options["do_sample"] = False
        else:
            # OpenAI's sampling has no top-k: only temperature and nucleus (top_p).
            options.update(
                do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0
            )
        processors = [job.logits_processor for job in jobs if job.logits_processor is not None]
        if processors:
            options["logits_processor"] = LogitsProcessorList(processors)
        if jobs[0].tokens is not None:
            options["streamer"] = _TokenStreamer(jobs[0].tokens)
        seed = jobs[0].seed if sampling.temperature is not None else None
        with self._seeded(seed), torch.inference_mode():
            output = self._model.generate(
                input_ids=input_ids, attention_mask=attention_mask, **options
            )
        results = []
        for row, job in enumerate(jobs):
            new_tokens = output[row, width:].tolist()
            end, reason = row_stops.ended[row] or (len(new_tokens), "length")
            kept = new_tokens[:end]
            text = self._decode([t for t in kept if not self._ends(job, t)])
            cut = _cut_at_stop(text, job.stop)
            results.append(
                _Generated(
                    token_ids=kept,
                    text=text if cut is None else cut,
                    finish_reason="stop" if cut is not None else reason,
                )
            )
        return results

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """Draws from ``seed`` inside, leaving the process's random state as it was."""
        if seed is None:
            yield
            return
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    # -- chunks -------------------------------------------------------------------------------

    def _chunk(
        self,
        completion_id: str,
        *,
        content: str | None = None,
        finish_reason: FinishReason | None = None,
        usage: CompletionUsage | None = None,
    ) -> ChatCompletionChunk:
        return make_chunk(
            model=self.model_name,
            completion_id=completion_id,
            content=content,
            finish_reason=finish_reason,
            usage=usage,
        )

    def _tool_call_chunk(self, completion_id: str, tool_calls: list[Any]) -> ChatCompletionChunk:
        return make_tool_call_chunk(
            model=self.model_name, completion_id=completion_id, tool_calls=tool_calls
        )


# --- the dynamic batcher ---------------------------------------------------------------------


class _DynamicBatcher:
    """One worker thread that runs queued jobs: a batchable job waits up to ``wait_s`` for
    company, then the jobs gathered run in groups of equal sampling settings, the others alone.

    It holds its runner weakly, so a backend that is dropped without ``close()`` is still freed
    (its finalizer then closes the batcher)."""

    def __init__(
        self,
        run: weakref.WeakMethod[Callable[[list[_Job]], None]],
        *,
        max_batch_size: int,
        wait_s: float,
        name: str,
    ) -> None:
        self._run = run
        self._max_batch_size = max_batch_size
        self._wait_s = wait_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this TransformersBackend is closed; create a new one")
            self._queue.put(job)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                jobs, closing = self._gather(first)
                for group in _groups(jobs):
                    run = self._run()
                    if run is None:
                        return
                    run(group)
                    del run
                if closing:
                    return
        finally:
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """The worker is ending: no job may be left waiting for it."""
        with self._lock:
            self._closed = True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the TransformersBackend was closed"))
                if job.tokens is not None:
                    job.tokens.put(None)

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs = [first]
        if not first.batchable or self._max_batch_size == 1:
            return jobs, False
        deadline = time.monotonic() + self._wait_s
        while len(jobs) < self._max_batch_size:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False


def _groups(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """Batchable jobs grouped by sampling settings and end tokens (first-come order kept); the
    rest alone."""
    groups: dict[tuple[_Sampling, frozenset[int]], list[_Job]] = {}
    for job in jobs:
        if job.batchable:
            groups.setdefault((job.sampling, job.end_ids), []).append(job)
        else:
            yield [job]
    yield from groups.values()


class _RowStops(StoppingCriteria):
    """Ends each row of a batch at its own end token, stop string or token limit, and records
    where: ``ended[row] = (new tokens kept, reason)``."""

    def __init__(
        self,
        jobs: Sequence[_Job],
        prompt_width: int,
        eos_ids: frozenset[int],
        decode: Callable[[Sequence[int]], str],
    ) -> None:
        self._jobs = list(jobs)
        self._prompt_width = prompt_width
        self._eos_ids = eos_ids
        self._decode = decode
        self._windows = [
            max((len(stop) for stop in job.stop), default=0) + _STOP_WINDOW_SLACK for job in jobs
        ]
        self.ended: list[tuple[int, Literal["stop", "length"]] | None] = [None] * len(jobs)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        produced = input_ids.shape[1] - self._prompt_width
        for row, job in enumerate(self._jobs):
            if self.ended[row] is None:
                self.ended[row] = self._end(
                    row, job, input_ids[row, self._prompt_width :], produced
                )
        done = [end is not None for end in self.ended]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _end(
        self, row: int, job: _Job, new_tokens: torch.Tensor, produced: int
    ) -> tuple[int, Literal["stop", "length"]] | None:
        last = int(new_tokens[-1])
        if job.stopped or last in self._eos_ids or last in job.end_ids:
            return produced, "stop"
        if job.stop:
            tail = self._decode(new_tokens[-self._windows[row] :].tolist())
            if any(stop in tail for stop in job.stop):
                return produced, "stop"
        if produced >= job.max_new_tokens:
            return produced, "length"
        return None


class _TokenStreamer(BaseStreamer):
    """Hands each new token of a one-row generation to a queue (the prompt, put first, is
    skipped)."""

    def __init__(self, tokens: queue.Queue[list[int] | None]) -> None:
        self._tokens = tokens
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._tokens.put([int(token) for token in value.reshape(-1).tolist()])

    def end(self) -> None:
        self._tokens.put(None)


# --- settings and prompts ----------------------------------------------------------------------


def _adapter_and_base(
    model_path: str | Path, adapter: str | Path | None
) -> tuple[AdapterSource | None, str | Path]:
    """The adapter to apply (if any) and what the base model is loaded from."""
    if adapter is not None:
        if is_adapter_dir(model_path):
            raise ValueError(
                f"model_path {str(model_path)!r} is itself an adapter; give its base model as "
                f"model_path to apply the adapter {str(adapter)!r}, or drop adapter"
            )
        return read_adapter(adapter, base=str(model_path)), model_path
    if is_adapter_dir(model_path):
        found = read_adapter(model_path)
        return found, adapter_base(found)
    return None, model_path


def _check_positive(name: str, value: int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        allowed = "an integer of 1 or more" + (", or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}; got {value!r}")


def _pick_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        picked = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device {device!r} is not a torch device: use 'cpu', 'cuda', 'cuda:1'"
        ) from exc
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asks for CUDA, and torch sees no CUDA device here")
    return picked


def _pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # Measured on this project's CPU (2 cores of an AMD EPYC with avx512_bf16), SmolLM2-135M,
        # greedy decoding of 64 tokens, best of 5: float32 15.6 tok/s, bfloat16 16.8 tok/s (7%),
        # while bfloat16 moves the next-token logits by up to 0.7. Not worth it: float32.
        return torch.float32
    found = _DTYPES.get(dtype)
    if found is None:
        raise ValueError(
            f"dtype {dtype!r} is not supported; use 'auto', {', '.join(map(repr, _DTYPES))}"
        )
    return found


def _model_len(config: Any, tokenizer: Any) -> int:
    for value in (
        getattr(config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ):
        # Tokenizers without a limit report a huge sentinel (1e30).
        if isinstance(value, int) and 0 < value < 10_000_000:
            return value
    return 2048


def _sampling(request: ChatRequest) -> _Sampling:
    temperature, top_p = request.temperature, request.top_p
    if temperature is not None and temperature < 0:
        raise ValueError(f"temperature must be 0 (greedy) or more; got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p}")
    if not temperature:
        return _Sampling(temperature=None, top_p=1.0)
    return _Sampling(temperature=float(temperature), top_p=float(top_p or 1.0))


def _stops(request: ChatRequest) -> tuple[str, ...]:
    stops = tuple(request.stop or ())
    if any(not stop for stop in stops):
        raise ValueError(f"stop strings must not be empty; got {list(stops)!r}")
    return stops


def _cut_at_stop(text: str, stops: Sequence[str]) -> str | None:
    """``text`` before its first stop string; None when it holds none."""
    positions = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return text[: min(positions)] if positions else None


def _without_partial_end(text: str, stops: Sequence[str]) -> str:
    """``text`` less a last character still missing bytes, and less an end that may begin a
    stop string."""
    text = text.removesuffix("\ufffd")
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                text = text[: len(text) - size]
                break
    return text
