"""``EmbeddingBackend``: a sentence-transformers model (all-MiniLM-L6-v2 by default, BGE-style
models alike) answering the one protocol's ``embed``, in-process; the Ray layer wraps it in an
actor. Loaded from local files only: no model hub is asked, and ``HF_HUB_OFFLINE`` is not needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import ConfigurationError, ConfigurationTypeError
from byzer_agents.llm_runtime.models import DEFAULT_EMBEDDING_MODEL, default_embedding_model
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["EmbeddingBackend"]

_CAPABILITIES = Capabilities(
    native_tools=False,
    json_schema_output=False,
    constrained_decoding=False,
    streaming=False,
    embeddings=True,
)


class EmbeddingBackend:
    """Sentence embeddings from a sentence-transformers directory.

    ``model_path=None`` loads the shipped all-MiniLM-L6-v2 (384 dimensions). Vectors are
    normalised to unit length unless ``normalize=False``, so a dot product is their cosine.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str | None = None,
        device: str | None = None,
        normalize: bool = True,
        batch_size: int = 32,
        num_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be 1 or more; got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ConfigurationError(
                f"num_threads must be 1 or more, or None (torch's default); got {num_threads}"
            )
        path = (
            Path(model_path).expanduser() if model_path is not None else default_embedding_model()
        )
        if not path.is_dir():
            raise FileNotFoundError(
                f"no sentence-transformers model directory at {str(path)!r}; give a directory "
                "holding modules.json or config.json (hub names are not fetched)"
            )
        import torch
        from sentence_transformers import SentenceTransformer

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.model_path = path
        self.model_name = model_name or (
            DEFAULT_EMBEDDING_MODEL if model_path is None else path.name
        )
        self.normalize = normalize
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self._model.eval()
        self._dimension = int(
            self._model.get_embedding_dimension() or len(self._model.encode(["dimension"])[0])
        )
        # encode() is not documented thread-safe; the Ray actor may call from several threads.
        self._lock = threading.Lock()

    @property
    def capabilities(self) -> Capabilities:
        """Embeddings only: no chat, no tools."""
        return _CAPABILITIES

    @property
    def dimension(self) -> int:
        """How many numbers each embedding holds."""
        return self._dimension

    def __repr__(self) -> str:
        return (
            f"EmbeddingBackend(model_name={self.model_name!r}, model_path={str(self.model_path)!r})"
        )

    # -- the one protocol -------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalized vector per text, in order."""
        if isinstance(texts, str):
            raise ConfigurationTypeError(
                f"embed takes a sequence of texts; got one string: wrap it, [{texts!r:.60}]"
            )
        bad = [index for index, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            raise ConfigurationTypeError(
                f"embed takes texts (str); item {bad[0]} is a {type(texts[bad[0]]).__name__}"
            )
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=len(texts) > 4 * self.batch_size,
            )
        return [[float(value) for value in vector] for vector in vectors]

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """Refused: an embedding model does not chat."""
        self._refuse("chat")

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """Refused: an embedding model does not chat."""
        self._refuse("stream")

    def meta(self) -> dict[str, Any]:
        """What the model is and how it runs."""
        transformer = self._model[0] if len(self._model) else None
        config = getattr(getattr(transformer, "auto_model", None), "config", None)
        return {
            "model_deploy_type": "local",
            "backend": "sentence_transformers",
            "model": self.model_name,
            "model_path": str(self.model_path),
            "embedding_dim": self.dimension,
            "max_model_len": self._model.max_seq_length,
            "architectures": getattr(config, "architectures", None),
            "normalized": self.normalize,
            "device": str(self._model.device),
            "num_threads": self.num_threads,
        }

    def _refuse(self, method: str) -> NoReturn:
        raise NotImplementedError(
            f"{self.model_name!r} is an embedding model: it answers embed(), not {method}(); "
            "deploy a chat model (TransformersBackend, OpenAIBackend) for chat"
        )
