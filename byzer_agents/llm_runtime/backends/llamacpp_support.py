"""What ``LlamaCppBackend`` needs around llama-cpp-python itself: the GGUF file a deployment names,
the threads a replica may use, the chat template and end tokens read from the GGUF, and the
project's xgrammar constraint run as the first sampler of llama.cpp's chain (``GrammarSampler``).

Constrained decoding goes through the same ``constrained.build_constraint`` as the transformers
engine (the same grammar, forced text and budget steering), so the xgrammar vocabulary needs the
Hugging Face tokenizer of the GGUF file: the cached converted checkpoint's when there is one,
else transformers reads it from the GGUF (a few seconds, once per backend, at the first
constrained request). Where xgrammar or that tokenizer is missing, llama.cpp's own JSON-schema
grammar (``LlamaGrammar.from_json_schema``) constrains instead: no budget steering, and no
plain-text alternative (``tool_choice="auto"`` without a response_format runs unconstrained).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from byzer_agents.exceptions import ConfigurationError, UsageError
from byzer_agents.llm_runtime.backends.local_chat import EndMarkers
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates

__all__ = [
    "GgufTokenizerView",
    "GrammarSampler",
    "XgrammarSource",
    "end_markers_of",
    "gguf_file_of",
    "import_llama_cpp",
    "replica_threads",
    "sample_with_grammar",
    "template_of",
]

logger = logging.getLogger(__name__)

_GGUF_MAGIC = b"GGUF"
_INSTALL = (
    "pip install 'byzer-agents[llamacpp]' (or `make install`, which builds it with portable "
    'CPU flags: CMAKE_ARGS="-DGGML_NATIVE=OFF ..." pip install llama-cpp-python)'
)


def import_llama_cpp() -> ModuleType:
    """The ``llama_cpp`` module; a UsageError saying how to install it when it is missing."""
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise UsageError(
            f"infer_backend 'llama_cpp' needs llama-cpp-python, which is not installed ({exc}); "
            f"install it: {_INSTALL}"
        ) from exc


def gguf_file_of(model_path: str | Path, gguf_file: str | None = None) -> Path:
    """The GGUF file a deployment names: ``model_path`` itself, or ``gguf_file`` inside it; a
    ConfigurationError naming the file when it is no GGUF."""
    source = Path(model_path).expanduser()
    path = source / gguf_file if gguf_file else source
    if source.is_dir() and not gguf_file:
        found = ", ".join(sorted(p.name for p in source.glob("*.gguf"))) or "none"
        raise ConfigurationError(
            f"infer_backend 'llama_cpp' serves GGUF files; {str(source)!r} is a directory (GGUF "
            f"files there: {found}): give the .gguf file, or infer_params gguf_file=<one of them>"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {str(path)!r}")
    with path.open("rb") as file:
        magic = file.read(len(_GGUF_MAGIC))
    if magic != _GGUF_MAGIC:
        raise ConfigurationError(
            f"infer_backend 'llama_cpp' serves GGUF files; {str(path)!r} is not one (it does not "
            f"start with {_GGUF_MAGIC!r}): use infer_backend 'transformers' for Hugging Face "
            "checkpoints"
        )
    return path


def replica_threads(cpus_per_worker: float | None, requested: int | None = None) -> int:
    """The threads one replica decodes with: ``requested`` (infer_params num_threads) or the
    replica's CPUs rounded down, at least 1, never more than the CPUs this process may run on."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    wanted = requested if requested is not None else int(cpus_per_worker or 1)
    threads = max(1, wanted)
    return min(threads, available or os.cpu_count() or 1)


@dataclass(frozen=True)
class GgufTokenizerView:
    """The few tokenizer attributes ``Templates.from_tokenizer`` reads, taken from GGUF metadata."""

    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    name_or_path: str


def template_of(llm: Any, path: Path, fallback: ChatTemplate | None) -> ChatTemplate:
    """The chat template the GGUF file ships (``tokenizer.chat_template``), as the transformers
    engine takes it from the tokenizer; else ``fallback``, else ChatML."""
    metadata = dict(getattr(llm, "metadata", None) or {})
    view = GgufTokenizerView(
        chat_template=metadata.get("tokenizer.chat_template"),
        bos_token=_token_text(llm, metadata.get("tokenizer.ggml.bos_token_id")),
        eos_token=_token_text(llm, metadata.get("tokenizer.ggml.eos_token_id")),
        name_or_path=str(path),
    )
    return Templates.from_tokenizer(view) or fallback or Templates.chatml()


def _token_text(llm: Any, token_id: Any) -> str | None:
    if token_id is None:
        return None
    text: bytes = llm.detokenize([int(token_id)], special=True)
    return text.decode("utf-8", errors="replace") or None


def end_markers_of(llm: Any, template: ChatTemplate) -> EndMarkers:
    """What ends an answer: the model's end-of-sequence token and each template stop that is one
    token; the other template stops as text. A stop that is a token is left out of llama.cpp's
    stop strings, which it would look for in the whole answer at every token."""
    ids = {int(llm.token_eos())} if llm.token_eos() >= 0 else set()
    texts = []
    for stop in template.stop:
        tokens = llm.tokenize(stop.encode(), add_bos=False, special=True)
        if len(tokens) == 1:
            ids.add(int(tokens[0]))
        else:
            texts.append(stop)
    return EndMarkers(frozenset(ids), tuple(texts))


class GrammarSampler:
    """The transformers engine's grammar processor (torch tensors, a batch of one) as the first
    sampler of llama.cpp's chain, where it masks llama.cpp's own candidate logits in place.

    llama-cpp-python's ``logits_processor`` hook builds a record array over the candidates, hands
    the processor a strided view and copies what it returns back, every token; a contiguous copy
    for the processor (xgrammar's CPU kernel writes contiguous rows) and torch wrappers round it
    off. ``sample_with_grammar`` puts ``apply`` in the chain instead: the logits are copied into
    one buffer (and its torch view) made once per request, masked, and copied back. Called as a
    ``logits_processor`` (``(input_ids, scores)``, the masked scores returned) it still works,
    where the chain could not be set up."""

    def __init__(self, processor: Any, llm: Any) -> None:
        self.processor = processor
        self._llm = llm
        self._buffer = np.empty(0, dtype=np.float32)
        self._scores: Any = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        last = int(input_ids[-1]) if len(input_ids) else None
        self._mask(scores, len(input_ids), last)
        return scores

    def apply(self, candidates: Any) -> None:
        """The chain's callback: mask the ``llama_token_data_array`` it is handed."""
        array = candidates.contents
        size = int(array.size)
        address = ctypes.cast(array.data, ctypes.c_void_p).value or 0
        # llama_token_data is {int32 id; float logit; float p}: the logits are every third float.
        memory: Any = (ctypes.c_float * (3 * size)).from_address(address)
        fields = np.frombuffer(memory, np.float32)
        ids = fields.view(np.int32)[::3]
        if ids[0] != 0 or ids[-1] != size - 1:
            raise UsageError(
                f"llama.cpp's candidates are not the vocabulary in id order (ids {ids[0]}..."
                f"{ids[-1]} for {size} candidates): the grammar sampler must come first"
            )
        length = int(self._llm.n_tokens)
        self._mask(fields[1::3], length, int(self._llm.input_ids[length - 1]))

    def _mask(self, logits: np.ndarray, length: int, last: int | None) -> None:
        if self._buffer.shape[0] != logits.shape[0]:
            import torch

            self._buffer = np.empty(logits.shape[0], dtype=np.float32)
            self._scores = torch.from_numpy(self._buffer).unsqueeze(0)
        np.copyto(self._buffer, logits)
        self.processor.step(length, last, self._scores)
        np.copyto(logits, self._buffer)


def sample_with_grammar(llm: Any, llama_cpp: ModuleType) -> None:
    """Make ``llm`` run a ``GrammarSampler``, when it is the request's only logits processor,
    as the first sampler of its chain rather than through llama-cpp-python's hook (see
    ``GrammarSampler``). Once per ``Llama``; a no-op where its sampler API is not the one known."""
    if getattr(llm, "_byzer_grammar_sampling", False):
        return
    original = getattr(llm, "_init_sampler", None)
    chain_api = ("llama_sampler_chain_n", "llama_sampler_chain_remove", "llama_sampler_chain_add")
    if original is None or not all(hasattr(llama_cpp, name) for name in chain_api):
        logger.info("llama-cpp-python's sampler API is not the known one: the hook masks instead")
        return

    def init_sampler(*args: Any, logits_processor: Any = None, **kwargs: Any) -> Any:
        hooks = list(logits_processor or ())
        if len(hooks) != 1 or not isinstance(hooks[0], GrammarSampler):
            return original(*args, logits_processor=logits_processor, **kwargs)
        sampler = original(*args, logits_processor=None, **kwargs)
        if getattr(sampler, "custom_samplers", None) != []:  # the chain is not the one known
            return original(*args, logits_processor=logits_processor, **kwargs)
        chain = sampler.sampler
        # llama.cpp's chain only appends: take its samplers out, add the grammar's, put them back.
        taken = [
            llama_cpp.llama_sampler_chain_remove(chain, 0)
            for _ in range(llama_cpp.llama_sampler_chain_n(chain))
        ]
        sampler.add_custom(hooks[0].apply)
        for each in taken:
            llama_cpp.llama_sampler_chain_add(chain, each)
        return sampler

    llm._init_sampler = init_sampler
    llm._byzer_grammar_sampling = True


class XgrammarSource:
    """The Hugging Face tokenizer of a GGUF file, loaded once at the first constrained request,
    for xgrammar's vocabulary; ``reason`` says why xgrammar is not used when it is not."""

    def __init__(self, gguf_path: Path) -> None:
        self._path = gguf_path
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self.reason: str | None = _xgrammar_missing()

    def tokenizer(self) -> Any | None:
        """The tokenizer, or None when xgrammar cannot run here (``reason`` says why)."""
        with self._lock:
            if self._tokenizer is None and self.reason is None:
                try:
                    self._tokenizer = _load_tokenizer(self._path)
                except (OSError, ValueError, ImportError) as exc:
                    self.reason = f"the GGUF's tokenizer does not load in transformers: {exc}"
                    logger.warning("xgrammar is off for %s: %s", self._path, self.reason)
            return self._tokenizer


def _xgrammar_missing() -> str | None:
    try:
        importlib.import_module("byzer_agents.llm_runtime.constrained")
    except ImportError as exc:
        return f"xgrammar (or torch/transformers) is not installed: {exc}"
    return None


def _load_tokenizer(gguf_path: Path) -> Any:
    from transformers import AutoTokenizer

    from byzer_agents.llm_runtime.checkpoints import converted_checkpoint_dir

    converted = converted_checkpoint_dir(gguf_path)
    if (converted / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(converted), local_files_only=True)
    return AutoTokenizer.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True
    )
