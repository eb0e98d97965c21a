"""Functions and schemas as tools a model can call: ``@tool``, ``Tool``, ``ToolSet``, built-ins."""

from byzer_agents.tools.builtin import compute_date_range, compute_now, python_eval
from byzer_agents.tools.context import RunContext
from byzer_agents.tools.dialect import api_safe_name, normalize_schema
from byzer_agents.tools.function_schema import FunctionSchema, function_schema
from byzer_agents.tools.strict import to_strict_schema
from byzer_agents.tools.tool import Tool, tool
from byzer_agents.tools.toolset import ToolChoice, ToolLike, ToolSet, as_tool

__all__ = [
    "FunctionSchema",
    "RunContext",
    "Tool",
    "ToolChoice",
    "ToolLike",
    "ToolSet",
    "api_safe_name",
    "as_tool",
    "compute_date_range",
    "compute_now",
    "function_schema",
    "normalize_schema",
    "python_eval",
    "to_strict_schema",
    "tool",
]
