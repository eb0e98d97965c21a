"""A set of tools as one call offers them to a model: plain functions, Tools and schema definitions
accepted alike, looked up by API name or original name, and ``tool_choice`` resolved against it."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, overload

from byzer_agents.exceptions import ConfigurationError, ToolDefinitionError
from byzer_agents.tools.dialect import api_safe_name
from byzer_agents.tools.tool import Tool

__all__ = ["ToolChoice", "ToolLike", "ToolSet", "as_tool"]

ToolLike: TypeAlias = "Tool[..., Any] | Callable[..., Any] | Mapping[str, Any]"


# Plain functions passed as tools on every chat call are built once (about 1 ms each), not per call.
_FUNCTION_TOOLS: weakref.WeakKeyDictionary[Callable[..., Any], Tool[..., Any]] = (
    weakref.WeakKeyDictionary()
)


def as_tool(obj: ToolLike) -> Tool[..., Any]:
    """A Tool as is, an OpenAI-style definition through ``Tool.from_schema``, a function through
    ``tool`` (cached per function), an object that makes itself a tool (an ``Agent``) through its
    ``as_tool()``."""
    if isinstance(obj, Tool):
        return obj
    made = getattr(obj, "as_tool", None)
    if callable(made) and not isinstance(obj, type) and not inspect.isfunction(obj):
        made_tool = made()
        if isinstance(made_tool, Tool):
            return made_tool
    if isinstance(obj, Mapping):
        return Tool.from_schema(obj)
    if inspect.isfunction(obj):
        cached = _FUNCTION_TOOLS.get(obj)
        if cached is None:
            cached = _FUNCTION_TOOLS[obj] = Tool.from_function(obj)
        return cached
    if callable(obj) or isinstance(obj, (staticmethod, classmethod)):
        return Tool.from_function(obj)
    raise ToolDefinitionError(
        f"cannot use {obj!r} as a tool: give a function, a Tool, or an OpenAI-style definition"
    )


class ToolSet(Sequence[Tool[..., Any]]):
    """An ordered, name-unique set of tools."""

    def __init__(self, tools: Iterable[ToolLike] = ()) -> None:
        self._tools: list[Tool[..., Any]] = []
        self._by_name: dict[str, Tool[..., Any]] = {}
        for item in tools:
            self._add(as_tool(item))

    def _add(self, new: Tool[..., Any]) -> None:
        for key in {new.name, new.original_name}:
            existing = self._by_name.get(key)
            if existing is not None and existing is not new:
                raise ToolDefinitionError(
                    f"two tools answer to the name {key!r}: {existing.original_name!r} and "
                    f"{new.original_name!r}; give one of them another name (tool(fn, name=...))"
                )
        self._tools.append(new)
        self._by_name[new.name] = new
        self._by_name[new.original_name] = new

    def get(self, name: str) -> Tool[..., Any] | None:
        """The tool a model meant by ``name``: its API name, its original name, or the API-safe
        form of what the model wrote (``math.factorial`` for ``math_factorial``)."""
        found = self._by_name.get(name)
        if found is None and isinstance(name, str) and name.strip():
            found = self._by_name.get(api_safe_name(name))
        return found

    @property
    def names(self) -> list[str]:
        """The tools' names, in order."""
        return [t.name for t in self._tools]

    def to_openai(self) -> list[dict[str, Any]]:
        """The tools as OpenAI's ``tools`` list."""
        return [t.to_openai() for t in self._tools]

    @overload
    def __getitem__(self, index: int) -> Tool[..., Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Tool[..., Any]]: ...

    def __getitem__(self, index: int | slice) -> Tool[..., Any] | Sequence[Tool[..., Any]]:
        return self._tools[index]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool[..., Any]]:
        return iter(self._tools)

    def __repr__(self) -> str:
        return f"ToolSet({self.names})"


ToolChoiceMode = Literal["auto", "none", "required"]
_MODES: tuple[ToolChoiceMode, ...] = ("auto", "none", "required")


@dataclass(frozen=True)
class ToolChoice:
    """Whether the model may, must not, or must call a tool, and which one when forced."""

    mode: ToolChoiceMode = "auto"
    tool: str | None = None
    """The API name of the one tool the model must call (``mode`` is then ``"required"``)."""

    @classmethod
    def parse(cls, value: Any, tools: ToolSet) -> ToolChoice:
        """Accept ``None``, ``"auto"``, ``"none"``, ``"required"``, a tool's name, the tool or its
        function, or OpenAI's ``{"type": "function", "function": {"name": ...}}``."""
        if value is None:
            return cls()
        if isinstance(value, str) and value in _MODES:
            return cls(mode=value)
        name: Any = value
        if isinstance(value, Mapping):
            name = (value.get("function") or {}).get("name")
        elif isinstance(value, Tool):
            name = value.name
        elif callable(value):
            name = getattr(value, "__name__", None)
        found = tools.get(name) if isinstance(name, str) else None
        if found is None:
            raise ConfigurationError(
                f"tool_choice {value!r} is not allowed: use one of {list(_MODES)} or the name, "
                f"Tool or function of one of the offered tools {tools.names}"
            )
        return cls(mode="required", tool=found.name)

    def to_openai(self) -> str | dict[str, Any]:
        """The choice as OpenAI's ``tool_choice``: a mode, or the named function."""
        if self.tool is not None:
            return {"type": "function", "function": {"name": self.tool}}
        return self.mode
