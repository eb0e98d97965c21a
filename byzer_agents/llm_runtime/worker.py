"""The Ray actor that holds one loaded model and answers the one protocol for it.

Requests and answers cross the process boundary as plain dicts (``model_dump``), so the actor's
interface does not depend on pickling pydantic or SDK classes across versions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from byzer_agents.chat.protocol import ChatBackend
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.types import ChatRequest

__all__ = ["ModelWorker", "build_backend"]


def build_backend(spec: DeploymentSpec) -> ChatBackend:
    """Load the model a spec names, in this process."""
    params = spec.infer_params
    kind = spec.model_type.kind
    if kind == "saas":
        from byzer_agents.llm_runtime.backends.openai_compatible import OpenAIBackend

        return OpenAIBackend(
            model=params.saas_model or spec.udf_name,
            base_url=params.saas_base_url,
            api_key=params.saas_api_key.get_secret_value() if params.saas_api_key else None,
        )
    if kind == "embedding":
        from byzer_agents.llm_runtime.backends.embeddings import EmbeddingBackend

        return EmbeddingBackend(spec.model_path, model_name=spec.udf_name)
    if spec.infer_backend is not InferBackend.Transformers:
        raise ValueError(
            f"infer backend {spec.infer_backend.value!r} needs a CUDA GPU and its own install "
            "(vllm / deepspeed extras); this worker has none. Use InferBackend.Transformers."
        )
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
    from byzer_agents.prompts import Templates

    checkpoint = resolve_checkpoint(spec.model_path, params.gguf_file)
    template = spec.model_type.template
    return TransformersBackend(
        checkpoint,
        model_name=spec.udf_name,
        dtype=params.dtype,
        device=params.device,
        chat_template=Templates.get(template) if template else None,
        max_model_len=params.max_model_len,
        num_threads=params.num_threads or max(1, math.ceil(spec.cpus_per_worker)),
        quantization=params.quantization,
        max_batch_size=params.max_batch_size,
    )


class ModelWorker:
    """Plain class; ``deployment.py`` turns it into a detached, restartable Ray actor."""

    def __init__(self, spec_json: str) -> None:
        self.spec = DeploymentSpec.model_validate_json(spec_json)
        self.backend = build_backend(self.spec)
        self.served = 0  # read by stats(); a rough count under concurrency is enough

    def ping(self) -> int:
        """The worker's process id (it changes when Ray restarts the worker)."""
        return os.getpid()

    def stats(self) -> dict[str, int]:
        return {"pid": os.getpid(), "served": self.served}

    def describe(self) -> dict[str, Any]:
        """The spec (secrets masked by pydantic's SecretStr) and the backend's capabilities."""
        return {
            "spec": self.spec.model_dump(mode="json"),
            "capabilities": asdict(self.backend.capabilities),
        }

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        self.served += 1
        completion = self.backend.chat(ChatRequest.model_validate(request))
        return completion.model_dump(mode="json")

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self.served += 1
        for chunk in self.backend.stream(ChatRequest.model_validate(request)):
            yield chunk.model_dump(mode="json")

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.backend.embed(texts)

    def meta(self) -> dict[str, Any]:
        return dict(self.backend.meta())
