"""byzer-agents: tool-calling agents with typed outputs, and the runtime under them.

Importing this package is light on purpose: it pulls in pydantic, jinja2 and jsonschema, never
torch, ray, transformers, vllm or duckdb; those load where a backend uses them.
"""

import importlib
from typing import TYPE_CHECKING, Any

from byzer_agents.exceptions import (
    ArgumentError,
    Attempt,
    ByzerAgentsError,
    CallAttempt,
    ConfigurationError,
    ConfigurationTypeError,
    ExtractionError,
    MaxStepsExceededError,
    ModelCallError,
    ModelCoolingDownError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelRetry,
    ModelStreamBrokenError,
    ModelTimeoutError,
    PromptTemplateError,
    ToolArgumentsError,
    ToolCallError,
    ToolDefinitionError,
    ToolExecutionError,
    ToolTimeoutError,
    UsageError,
    UsageLimitExceededError,
    UserError,
)
from byzer_agents.prompts import (
    ChatTemplate,
    PromptFunction,
    Templates,
    function_calling_format,
    json_schema,
    prompt,
    response_class_format,
    response_class_format_after_chat,
)
from byzer_agents.tools import RunContext, Tool, ToolChoice, ToolSet, as_tool, tool

if TYPE_CHECKING:
    from byzer_agents.agents.agent import Agent
    from byzer_agents.agents.limits import UsageLimits
    from byzer_agents.agents.results import AgentResult
    from byzer_agents.byzer_llm import ByzerLLM
    from byzer_agents.chat.requests import LLMRequest
    from byzer_agents.chat.results import LLMResponse
    from byzer_agents.llm import LLM
    from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
    from byzer_agents.llm_runtime.cluster import connect_cluster
    from byzer_agents.llm_runtime.infer_backend import InferBackend
    from byzer_agents.traces import TraceStore

__version__ = "0.1.0"

# Loaded on first use: the client pulls in the openai SDK types, which tool-only users never need.
_LAZY = {
    "Agent": "byzer_agents.agents.agent",
    "AgentResult": "byzer_agents.agents.results",
    "UsageLimits": "byzer_agents.agents.limits",
    "LLM": "byzer_agents.llm",
    "ByzerLLM": "byzer_agents.byzer_llm",
    "LLMRequest": "byzer_agents.chat.requests",
    "LLMResponse": "byzer_agents.chat.results",
    "InferBackend": "byzer_agents.llm_runtime.infer_backend",
    "ScriptedBackend": "byzer_agents.llm_runtime.backends.scripted",
    "TraceStore": "byzer_agents.traces",
    "connect_cluster": "byzer_agents.llm_runtime.cluster",
}


def __getattr__(name: str) -> Any:
    """Import a name of ``_LAZY`` on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'byzer_agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "LLM",
    "Agent",
    "AgentResult",
    "ArgumentError",
    "Attempt",
    "ByzerAgentsError",
    "ByzerLLM",
    "CallAttempt",
    "ChatTemplate",
    "ConfigurationError",
    "ConfigurationTypeError",
    "ExtractionError",
    "InferBackend",
    "LLMRequest",
    "LLMResponse",
    "MaxStepsExceededError",
    "ModelCallError",
    "ModelCoolingDownError",
    "ModelNotFoundError",
    "ModelRateLimitError",
    "ModelRetry",
    "ModelStreamBrokenError",
    "ModelTimeoutError",
    "PromptFunction",
    "PromptTemplateError",
    "RunContext",
    "ScriptedBackend",
    "Templates",
    "Tool",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolChoice",
    "ToolDefinitionError",
    "ToolExecutionError",
    "ToolSet",
    "ToolTimeoutError",
    "TraceStore",
    "UsageError",
    "UsageLimitExceededError",
    "UsageLimits",
    "UserError",
    "__version__",
    "as_tool",
    "connect_cluster",
    "function_calling_format",
    "json_schema",
    "prompt",
    "response_class_format",
    "response_class_format_after_chat",
    "tool",
]
