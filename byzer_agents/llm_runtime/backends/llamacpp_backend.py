"""``LlamaCppBackend``: a GGUF chat (or embedding) model run in-process by llama-cpp-python on the
CPU, answering the one protocol; the Ray layer wraps it in an actor.

The prompt is ours: rendered by ``chat_prompt.render_chat_prompt`` in the GGUF's own chat
template (as the transformers engine renders it), tokenized without added special tokens and
passed to ``Llama.create_completion`` as token ids, so every engine and training read one text.
The request checks, end markers and the answer's message come from ``local_chat``; typed answers
and tool calls are held to their schema by the project's xgrammar grammar through llama.cpp's
``logits_processor`` hook, or llama.cpp's own JSON-schema grammar where xgrammar cannot run (see
``llamacpp_support``), and every constrained output goes through ``OutputSpec.check``.

One ``Llama`` decodes one request at a time (it is not thread-safe): concurrent requests wait on
a lock, so a replica's throughput comes from its threads, not from batching. Every call into it
runs on one thread of its own (``DecodeThread``): from a new thread each time, as a Ray actor's
pool calls, ggml's OpenMP threads decode at half speed.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.backends.decode_thread import DecodeThread
from byzer_agents.llm_runtime.backends.llamacpp_support import (
    GrammarSampler,
    XgrammarSource,
    end_markers_of,
    gguf_file_of,
    import_llama_cpp,
    sample_with_grammar,
    template_of,
)
from byzer_agents.llm_runtime.backends.local_chat import (
    answer_chunks,
    answer_finish_reason,
    closing_chunks,
    completion_of,
    engine_meta,
    new_tokens_for,
    no_embeddings,
    sampling_of,
    single_choice,
    stop_strings,
    usage_of,
)
from byzer_agents.llm_runtime.chat_prompt import offers_tools, render_chat_prompt
from byzer_agents.llm_runtime.gguf_lora import gguf_lora_file
from byzer_agents.llm_runtime.peft_adapter import (
    AdapterSource,
    adapter_base,
    is_adapter_dir,
    read_adapter,
)
from byzer_agents.llm_runtime.structured_output import OutputSpec, output_spec, wants_constraint
from byzer_agents.prompts.chat_templates import ChatTemplate
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    FinishReason,
    make_chunk,
)

__all__ = ["LlamaCppBackend"]


def _adapter_and_base(
    model_path: str | Path, adapter: str | Path | None
) -> tuple[AdapterSource | None, str | Path]:
    """The LoRA adapter served (if any) and the model it applies to."""
    if adapter is not None:
        return read_adapter(adapter, base=str(model_path)), model_path
    if is_adapter_dir(model_path):
        source = read_adapter(model_path)
        return source, adapter_base(source)
    return None, model_path


@dataclass
class _Prepared:
    """A request turned into what llama.cpp reads."""

    prompt_ids: list[int]
    options: dict[str, Any]
    spec: OutputSpec | None
    offers_tools: bool
    grammar: str | None
    """Which grammar constrains it: "xgrammar", "llama.cpp" or None."""


class LlamaCppBackend:
    """A GGUF model loaded with llama-cpp-python (CPU).

    ``model_path``: the .gguf file (or a directory with ``gguf_file`` in it). ``num_threads``:
    decode threads (see ``llamacpp_support.replica_threads``). ``chat_template`` is used when the
    GGUF ships none (else ChatML). ``max_model_len``: the context, by default the model's own.
    ``embedding=True`` loads it for ``embed`` (an embedding GGUF, mean-pooled when it declares no
    pooling) instead of chat. ``reason`` says why this engine serves the deployment (``meta``).
    A PEFT LoRA adapter (``adapter``, or a ``model_path`` that is an adapter directory, served on
    the GGUF base its config names) is converted once to a GGUF LoRA (``gguf_lora``) and applied
    by llama.cpp over the unchanged quantized base.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_name: str,
        gguf_file: str | None = None,
        num_threads: int = 1,
        chat_template: ChatTemplate | None = None,
        max_model_len: int | None = None,
        embedding: bool = False,
        adapter: str | Path | None = None,
        reason: str = "infer_backend 'llama_cpp' was asked for",
    ) -> None:
        if not model_name:
            raise ConfigurationError("model_name must name the deployment, e.g. 'SmolLM2-135M'")
        if num_threads < 1:
            raise ConfigurationError(f"num_threads must be 1 or more; got {num_threads}")
        llama_cpp = import_llama_cpp()
        self._llama_cpp = llama_cpp
        self.model_name = model_name
        self.model_path = Path(model_path)
        self.adapter, base = _adapter_and_base(model_path, adapter)
        self.checkpoint = gguf_file_of(base, gguf_file)
        self.lora_file = (
            None if self.adapter is None else gguf_lora_file(self.adapter.path, self.checkpoint)
        )
        self.num_threads = num_threads
        self.embedding = embedding
        self.reason = reason
        options: dict[str, Any] = {}
        if embedding:
            options["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        if self.lora_file is not None:
            options["lora_path"] = str(self.lora_file)
        self._decoder = DecodeThread()
        self._llm = self._decoder.run(
            llama_cpp.Llama,
            model_path=str(self.checkpoint),
            n_ctx=max_model_len or 0,  # 0: the model's own context length
            n_threads=num_threads,
            n_threads_batch=num_threads,
            n_gpu_layers=0,
            embedding=embedding,
            verbose=False,
            **options,
        )
        self.max_model_len = int(self._llm.n_ctx())
        self.chat_template = template_of(self._llm, self.checkpoint, chat_template)
        self._ends = end_markers_of(self._llm, self.chat_template)
        self._xgrammar = XgrammarSource(self.checkpoint)
        self._lock = threading.Lock()
        self.requests_served = 0
        self._capabilities = Capabilities(
            native_tools=not embedding,
            json_schema_output=not embedding,
            constrained_decoding=not embedding,
            streaming=not embedding,
            embeddings=embedding,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Chat with tools and JSON schemas held by a grammar, streaming; or embeddings."""
        return self._capabilities

    def __repr__(self) -> str:
        return (
            f"LlamaCppBackend(model_name={self.model_name!r}, checkpoint={str(self.checkpoint)!r}, "
            f"num_threads={self.num_threads})"
        )

    def close(self) -> None:
        """Free the model."""
        with self._lock:
            close = getattr(self._llm, "close", None)
            if close is not None:
                self._decoder.run(close)
        self._decoder.close()

    # -- the one protocol -------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """``request.n`` answers (one after another, seeds ``seed``, ``seed + 1`` ...)."""
        self._refuse_when_embedding()
        choices, completion_tokens, prompt_tokens = [], 0, 0
        for index in range(request.n):
            seed = None if request.seed is None else request.seed + index
            prepared = self._prepare(request, seed=seed)
            with self._lock:
                response = self._decoder.run(
                    self._llm.create_completion, prompt=prepared.prompt_ids, **prepared.options
                )
                self.requests_served += 1
            choice = response["choices"][0]
            usage = response["usage"]
            prompt_tokens = int(usage["prompt_tokens"])
            completion_tokens += int(usage["completion_tokens"])
            completion = completion_of(
                choice["text"],
                model_name=self.model_name,
                spec=prepared.spec,
                offers_tools=prepared.offers_tools,
                reason=_finish(choice.get("finish_reason")),
                usage=usage_of(prompt_tokens, int(usage["completion_tokens"])),
            )
            choices.append(completion.choices[0].model_copy(update={"index": index}))
        return completion.model_copy(
            update={"choices": choices, "usage": usage_of(prompt_tokens, completion_tokens)}
        )

    def stream(
        self, request: ChatRequest, *, cancelled: threading.Event | None = None
    ) -> Iterator[ChatCompletionChunk]:
        """Deltas as the tokens decode, then a chunk with the finish reason, then one with the
        usage. An answer that may call tools is sent whole once it is complete. The decode stops
        at the next token when the caller closes the stream or sets ``cancelled``."""
        self._refuse_when_embedding()
        single_choice(request, "LlamaCppBackend (streaming)")
        prepared = self._prepare(request, seed=request.seed)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        closed = threading.Event()

        def stop_now(input_ids: Any, logits: Any) -> bool:
            return closed.is_set() or (cancelled is not None and cancelled.is_set())

        options = {
            **prepared.options,
            "stream": True,
            "stopping_criteria": self._llama_cpp.StoppingCriteriaList([stop_now]),
        }
        text, reason = "", "stop"
        with self._lock:
            chunks = self._decoder.iterate(
                lambda: self._llm.create_completion(prompt=prepared.prompt_ids, **options)
            )
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    piece = choice.get("text") or ""
                    text += piece
                    if choice.get("finish_reason"):
                        reason = choice["finish_reason"]
                    if piece and not prepared.offers_tools:
                        yield make_chunk(
                            model=self.model_name, completion_id=completion_id, content=piece
                        )
            finally:
                closed.set()
                chunks.close()
                self.requests_served += 1
                # The tokens decoded past the prompt; the last one sampled is not decoded when a
                # length (or a stop string: not counted here) ends the answer.
                generated = int(self._llm.n_tokens) - len(prepared.prompt_ids)
        if reason == "length":
            generated += 1
        finish: FinishReason = _finish(reason)
        if prepared.offers_tools:
            whole, called = answer_chunks(
                text,
                model_name=self.model_name,
                completion_id=completion_id,
                spec=prepared.spec,
                offers_tools=True,
            )
            yield from whole
            finish = answer_finish_reason(_finish(reason), called=called)
        yield from closing_chunks(
            model_name=self.model_name,
            completion_id=completion_id,
            finish_reason=finish,
            usage=usage_of(len(prepared.prompt_ids), generated),
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text (mean-pooled, normalized) from a backend loaded with
        ``embedding=True``; a chat model refuses."""
        if not self.embedding:
            raise no_embeddings(self.model_name, "LlamaCppBackend")
        with self._lock:
            vectors = self._decoder.run(self._llm.embed, list(texts), normalize=True)
        return [[float(value) for value in vector] for vector in vectors]

    def meta(self) -> dict[str, Any]:
        """What the model is, which engine serves it and why, and how it decodes."""
        grammar = None
        if not self.embedding:
            grammar = "xgrammar" if self._xgrammar.reason is None else "llama.cpp json-schema"
        return {
            **engine_meta(self, "llama.cpp", dtype=self._file_type(), device="cpu"),
            "engine": "llama-cpp-python " + str(getattr(self._llama_cpp, "__version__", "?")),
            "engine_reason": self.reason,
            "num_threads": self.num_threads,
            "embedding": self.embedding,
            "adapter": None if self.adapter is None else self.adapter.describe(),
            "lora_file": None if self.lora_file is None else str(self.lora_file),
            "constrained_decoding": grammar,
            "xgrammar_off_because": self._xgrammar.reason,
            "requests_served": self.requests_served,
        }

    # -- requests -----------------------------------------------------------------------------

    def render_prompt(self, request: ChatRequest) -> str:
        """The prompt text the model reads for ``request``, in the request's own chat template
        when it names one (``LLM.setup_template``)."""
        return render_chat_prompt(request.chat_template or self.chat_template, request)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is to this model (no special tokens added)."""
        return len(self._tokenize(text))

    def _tokenize(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _prepare(self, request: ChatRequest, *, seed: int | None) -> _Prepared:
        sampling, stop = sampling_of(request), stop_strings(request)
        stop_texts = self._ends.texts
        if request.chat_template is not None:  # LLM.setup_template: its own stops end answers too
            stop_texts = request.chat_template.stop
        prompt_ids = self._tokenize(self.render_prompt(request))
        max_new_tokens = new_tokens_for(
            request,
            prompt_tokens=len(prompt_ids),
            model_name=self.model_name,
            model_len=self.max_model_len,
        )
        options: dict[str, Any] = {
            "max_tokens": max_new_tokens,
            "temperature": sampling.temperature or 0.0,  # 0: greedy
            "top_p": sampling.top_p,
            "top_k": 0,  # no top-k or min-p: the same sampling as the other local engines
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "stop": list(dict.fromkeys((*stop, *stop_texts))) or None,
        }
        if seed is not None:
            options["seed"] = seed
        spec, grammar = self._constrain(request, max_new_tokens, options)
        return _Prepared(
            prompt_ids=prompt_ids,
            options=options,
            spec=spec,
            offers_tools=offers_tools(request),
            grammar=grammar,
        )

    def _constrain(
        self, request: ChatRequest, max_new_tokens: int, options: dict[str, Any]
    ) -> tuple[OutputSpec | None, str | None]:
        """The output spec the answer is held to and which grammar holds it (set in
        ``options``); (None, None) when nothing constrains it."""
        if not wants_constraint(request):
            return None, None
        spec = output_spec(request, max_new_tokens=max_new_tokens)
        if spec is None:
            return None, None
        tokenizer = self._xgrammar.tokenizer()
        if tokenizer is not None:
            from byzer_agents.llm_runtime.constrained import build_constraint

            constraint = build_constraint(
                request,
                tokenizer,
                max_new_tokens=max_new_tokens,
                vocab_size=int(self._llm.n_vocab()),
                stop_token_ids=sorted(self._ends.token_ids),
            )
            assert constraint is not None  # output_spec found something to constrain
            sample_with_grammar(self._llm, self._llama_cpp)
            processor = GrammarSampler(constraint.logits_processor, self._llm)
            options["logits_processor"] = self._llama_cpp.LogitsProcessorList([processor])
            return constraint, "xgrammar"
        schema = spec.output_schema
        if schema is None:  # free text allowed: a JSON-schema grammar cannot say "or text"
            return None, None
        options["grammar"] = self._llama_cpp.LlamaGrammar.from_json_schema(
            json.dumps(schema), verbose=False
        )
        return spec, "llama.cpp"

    def _refuse_when_embedding(self) -> None:
        if self.embedding:
            raise ConfigurationError(
                f"{self.model_name!r} was loaded for embeddings (embedding=True): it does not chat"
            )

    def _file_type(self) -> str:
        metadata = dict(getattr(self._llm, "metadata", None) or {})
        return f"gguf file_type {metadata.get('general.file_type', '?')}"


def _finish(reason: Any) -> Literal["stop", "length"]:
    return "length" if reason == "length" else "stop"
