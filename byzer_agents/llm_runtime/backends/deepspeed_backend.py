"""DeepSpeed-Inference under the transformers backend (Byzer-LLM's ``InferBackend.DeepSpeed``).

The model is loaded as ``TransformersBackend`` loads it, then wrapped by
``deepspeed.init_inference``; everything else (chat templates, batching, streaming, constrained
decoding) is the transformers backend's, so the two answer alike. On CUDA, DeepSpeed's fused
kernels are injected into the architectures it supports (``kernel_inject``); on a CPU, DeepSpeed
runs the model as it is (its CPU accelerator has no such kernels), which still exercises the same
path end to end.

Tensor parallelism across GPUs needs one process per GPU joined in a torch.distributed group;
one worker here is one process, so a deployment spans GPUs by ``num_workers`` (data parallel)
instead.
"""

from __future__ import annotations

from typing import Any

import torch

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

__all__ = ["DeepSpeedBackend"]


class DeepSpeedBackend(TransformersBackend):
    """``TransformersBackend`` whose model runs inside a DeepSpeed-Inference engine.

    ``kernel_inject``: inject DeepSpeed's fused CUDA kernels (None: on CUDA only). Quantization
    is refused: DeepSpeed-Inference does not take bitsandbytes layers.
    """

    def __init__(self, *args: Any, kernel_inject: bool | None = None, **kwargs: Any) -> None:
        if kwargs.get("quantization") is not None:
            raise ConfigurationError(
                f"quantization={kwargs['quantization']!r} is not available with the DeepSpeed "
                "backend; use InferBackend.Transformers for bitsandbytes 4/8-bit models"
            )
        self._kernel_inject_asked = kernel_inject
        self.kernel_inject = False
        super().__init__(*args, **kwargs)

    def _load_model(self) -> Any:
        import deepspeed

        model = super()._load_model()
        on_cuda = self.device.type == "cuda"
        inject = on_cuda if self._kernel_inject_asked is None else self._kernel_inject_asked
        if inject and not on_cuda:
            raise ConfigurationError(
                f"kernel_inject=True needs a CUDA device; this model runs on {self.device}"
            )
        engine = deepspeed.init_inference(
            model,
            dtype=self.dtype,
            replace_with_kernel_inject=inject,
        )
        self.kernel_inject = inject
        self.deepspeed_version = deepspeed.__version__
        wrapped: torch.nn.Module = engine.module
        return wrapped

    def meta(self) -> dict[str, Any]:
        """The transformers backend's meta, naming DeepSpeed and its kernel injection."""
        return {
            **super().meta(),
            "backend": "deepspeed",
            "deepspeed_version": self.deepspeed_version,
            "kernel_inject": self.kernel_inject,
        }
