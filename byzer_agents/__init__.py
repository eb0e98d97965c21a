"""byzer-agents: tool-calling agents with typed outputs, and the runtime under them.

Importing this package is light on purpose: it pulls in pydantic, jinja2 and jsonschema, never
torch, ray, transformers, vllm or duckdb; those load where a backend uses them.
"""

from byzer_agents.exceptions import (
    ArgumentError,
    ByzerAgentsError,
    PromptTemplateError,
    ToolArgumentsError,
    ToolDefinitionError,
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
from byzer_agents.tools import Tool, ToolChoice, ToolSet, as_tool, tool

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "ByzerAgentsError",
    "ChatTemplate",
    "PromptFunction",
    "PromptTemplateError",
    "Templates",
    "Tool",
    "ToolArgumentsError",
    "ToolChoice",
    "ToolDefinitionError",
    "ToolSet",
    "__version__",
    "as_tool",
    "function_calling_format",
    "json_schema",
    "prompt",
    "response_class_format",
    "response_class_format_after_chat",
    "tool",
]
