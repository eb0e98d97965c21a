"""The Ray actor that holds one loaded model and answers the one protocol for it.

Requests and answers cross the process boundary as plain dicts (``model_dump``), so the actor's
interface does not depend on pickling pydantic or SDK classes across versions. The spec arrives as
``DeploymentSpec.worker_json()``: the one place an API key travels in clear.
"""

from __future__ import annotations

import inspect
import math
import os
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from byzer_agents.core.protocol import ChatBackend
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.saas.settings import SaasParams
from byzer_agents.types import ChatRequest

__all__ = ["ModelWorker", "build_backend"]

_CANCEL_POLL_S = 0.05
"""How often a stream's task looks for its caller's cancellation while no chunk comes."""
_STOP_TIMEOUT_S = 60.0
"""How long a stopped stream's task waits for the backend to stop (a backend without
``cancelled`` stops at its next chunk)."""
_END = object()


def _task_cancelled() -> bool:
    """Whether the Ray task running on this thread was cancelled (False outside a Ray task)."""
    if "ray" not in sys.modules:
        return False
    import ray

    try:
        return bool(ray.get_runtime_context().is_canceled())
    except RuntimeError:  # not a Ray worker: the class used in-process
        return False


def build_backend(spec: DeploymentSpec) -> ChatBackend:
    """Load the model a spec names, in this process."""
    params = spec.infer_params
    kind = spec.model_type.kind
    if kind == "saas":
        provider = spec.model_type.name.removeprefix("saas/")
        return _saas_backend(spec.udf_name, provider, params.saas or SaasParams())
    if spec.infer_backend is InferBackend.LlamaCpp:
        return _llamacpp_backend(spec)
    if kind == "embedding":
        from byzer_agents.llm_runtime.backends.embeddings import EmbeddingBackend

        return EmbeddingBackend(spec.model_path, model_name=spec.udf_name)
    from byzer_agents.prompts import Templates

    template = Templates.get(spec.model_type.template) if spec.model_type.template else None
    if spec.infer_backend is InferBackend.VLLM:
        from byzer_agents.llm_runtime.backends.vllm_backend import VLLMBackend
        from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint

        return VLLMBackend(
            resolve_checkpoint(spec.model_path, params.gguf_file),
            model_name=spec.udf_name,
            dtype=params.dtype,
            chat_template=template,
            max_model_len=params.max_model_len,
            gpu_memory_utilization=params.gpu_memory_utilization,
            tensor_parallel_size=max(1, math.floor(spec.gpus_per_worker)),
            max_num_seqs=params.max_num_seqs,
            enforce_eager=params.enforce_eager,
        )
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
    from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint

    options: dict[str, Any] = {
        "model_name": spec.udf_name,
        "dtype": params.dtype,
        "device": params.device,
        "chat_template": template,
        "max_model_len": params.max_model_len,
        "num_threads": params.num_threads or max(1, math.ceil(spec.cpus_per_worker)),
        "max_batch_size": params.max_batch_size,
    }
    from byzer_agents.llm_runtime.peft_adapter import is_adapter_dir

    options["adapter"] = params.adapter
    # An adapter directory is recognised by the backend, which finds the base it names.
    model: str | Path = (
        spec.model_path
        if is_adapter_dir(spec.model_path)
        else resolve_checkpoint(spec.model_path, params.gguf_file)
    )
    if spec.infer_backend is InferBackend.DeepSpeed:
        from byzer_agents.llm_runtime.backends.deepspeed_backend import DeepSpeedBackend

        return DeepSpeedBackend(model, kernel_inject=params.kernel_inject, **options)
    return TransformersBackend(model, quantization=params.quantization, **options)


def _llamacpp_backend(spec: DeploymentSpec) -> ChatBackend:
    """A GGUF chat (or embedding) model on llama.cpp, with threads from the replica's CPUs."""
    from byzer_agents.llm_runtime.backends.llamacpp_backend import LlamaCppBackend
    from byzer_agents.llm_runtime.backends.llamacpp_support import replica_threads
    from byzer_agents.prompts import Templates

    params = spec.infer_params
    template = Templates.get(spec.model_type.template) if spec.model_type.template else None
    return LlamaCppBackend(
        spec.model_path,
        model_name=spec.udf_name,
        gguf_file=params.gguf_file,
        num_threads=replica_threads(spec.cpus_per_worker, params.num_threads),
        chat_template=template,
        max_model_len=params.max_model_len,
        embedding=spec.model_type.kind == "embedding",
        adapter=params.adapter,
        reason=spec.engine_reason or "the deployment asked for infer_backend 'llama_cpp'",
    )


def _saas_backend(udf_name: str, provider_name: str, params: SaasParams) -> ChatBackend:
    """The backend a ``saas/<provider>`` deployment is served with: the provider's
    OpenAI-compatible endpoint, with the deployment's retry policy."""
    from byzer_agents.llm_runtime.backends.openai_compatible import AzureSettings, OpenAIBackend
    from byzer_agents.llm_runtime.saas.providers import saas_provider
    from byzer_agents.llm_runtime.saas.retry import RetryPolicy

    provider = saas_provider(provider_name)
    params.check(provider, udf_name)
    model = params.model or udf_name
    azure = None
    if params.is_azure(provider):
        assert params.api_version is not None  # checked above
        azure = AzureSettings(
            api_version=params.api_version, deployment=params.deployment_id or model
        )
    return OpenAIBackend(
        model=model,
        name=udf_name,
        base_url=params.base_url or provider.base_url,
        api_key=params.api_key.get_secret_value() if params.api_key is not None else None,
        timeout=params.request_timeout,
        retry=RetryPolicy(
            retries=params.retry_count,
            backoff_s=params.retry_backoff_s,
            max_wait_s=params.max_retry_wait_s,
        ),
        azure=azure,
    )


class ModelWorker:
    """Plain class; ``deployment.py`` turns it into a detached, restartable Ray actor."""

    def __init__(self, spec_json: str) -> None:
        self.spec = DeploymentSpec.model_validate_json(spec_json)
        self.backend = build_backend(self.spec)
        self.served = 0  # read by stats(); a rough count under concurrency is enough
        # A backend whose stream takes ``cancelled`` can stop while it yields nothing.
        self._stream_takes_cancelled = (
            "cancelled" in inspect.signature(self.backend.stream).parameters
        )

    def ping(self) -> int:
        """The worker's process id (it changes when Ray restarts the worker)."""
        return os.getpid()

    def stats(self) -> dict[str, int]:
        """The worker's process id and how many requests it has served."""
        return {"pid": os.getpid(), "served": self.served}

    def describe(self) -> dict[str, Any]:
        """The spec (secrets masked by pydantic's SecretStr) and the backend's capabilities."""
        return {
            "spec": self.spec.model_dump(mode="json"),
            "capabilities": asdict(self.backend.capabilities),
        }

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """One completion for a request given as a dict, returned as a dict."""
        self.served += 1
        completion = self.backend.chat(ChatRequest.model_validate(request))
        return completion.model_dump(mode="json")

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The backend's chunks. Cancelled by its caller (``ray.cancel``, which ``RayDeployment``
        sends when its reader goes away), the backend stops generating, and the task ends only
        once it has: until then the stream still holds its place among the worker's requests.

        The backend's stream is read on a thread of its own because Ray's cancellation is seen
        only from the task's thread (``is_canceled()``), which must stay free to look while the
        backend works towards its next chunk (an answer that may call tools comes whole)."""
        self.served += 1
        parsed = ChatRequest.model_validate(request)
        stopping = threading.Event()
        chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        reader = threading.Thread(
            target=self._read_stream, args=(parsed, stopping, chunks), daemon=True
        )
        reader.start()
        try:
            while True:
                try:
                    item = chunks.get(timeout=_CANCEL_POLL_S)
                except queue.Empty:
                    if _task_cancelled():
                        stopping.set()
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stopping.set()
            reader.join(timeout=_STOP_TIMEOUT_S)

    def _read_stream(
        self, request: ChatRequest, stopping: threading.Event, chunks: queue.SimpleQueue[Any]
    ) -> None:
        try:
            if self._stream_takes_cancelled:
                stream = self.backend.stream(request, cancelled=stopping)  # type: ignore[call-arg]
            else:
                stream = self.backend.stream(request)
            try:
                for chunk in stream:
                    if stopping.is_set():
                        break
                    chunks.put(chunk.model_dump(mode="json"))
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()  # a generator's own cleanup stops its generation
        except BaseException as error:
            chunks.put(error)
        else:
            chunks.put(_END)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """The backend's embeddings of ``texts``."""
        return self.backend.embed(texts)

    def meta(self) -> dict[str, Any]:
        """The backend's meta, with the engine serving the deployment and why it was chosen."""
        meta = dict(self.backend.meta())
        meta["infer_backend"] = self.spec.infer_backend.value
        meta["engine_reason"] = self.spec.engine_reason or meta.get("engine_reason")
        return meta
