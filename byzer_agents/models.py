"""The models this project ships, found on this machine (nothing is fetched from a model hub):
SmolLM2-135M-Instruct (chat), its tool-calling LoRA adapter, and all-MiniLM-L6-v2 (embeddings).

The same names as ``byzer_agents.llm_runtime.models``, at the import path users were given.
"""

from byzer_agents.llm_runtime.models import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_TOOL_MODEL,
    default_chat_model,
    default_embedding_model,
    default_tool_model,
)

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_TOOL_MODEL",
    "default_chat_model",
    "default_embedding_model",
    "default_tool_model",
]
