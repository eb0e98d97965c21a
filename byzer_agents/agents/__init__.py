"""Agents: multi-step runs on the chat loop, with tools, typed outputs, approvals and memory.
See docs/architecture.md, "Agents"."""

from byzer_agents.agents.agent import Agent
from byzer_agents.agents.limits import UsageLimits
from byzer_agents.agents.results import (
    AgentEvent,
    AgentResult,
    FinalOutput,
    PartialOutput,
    Step,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolRun,
    Usage,
)

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentResult",
    "FinalOutput",
    "PartialOutput",
    "Step",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolRun",
    "Usage",
    "UsageLimits",
]
