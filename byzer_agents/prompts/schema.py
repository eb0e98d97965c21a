"""``json_schema(cls)``: the JSON Schema of a typed answer (pydantic model, dataclass, TypedDict, or
any type pydantic knows, such as ``list[Story]``), with docstrings carried into descriptions."""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError

from byzer_agents.exceptions import ToolDefinitionError
from byzer_agents.tools.schema_generator import PromptSchemaGenerator

__all__ = ["json_schema", "type_adapter"]


@functools.lru_cache(maxsize=256)
def type_adapter(cls: Any) -> TypeAdapter[Any]:
    """The cached pydantic adapter that validates answers of type ``cls``."""
    try:
        return TypeAdapter(cls)
    except PydanticUserError as exc:
        raise ToolDefinitionError(f"{cls!r} cannot be a typed answer: {exc.message}") from exc
    except Exception as exc:
        raise ToolDefinitionError(
            f"{cls!r} cannot be a typed answer: {exc}. Use a pydantic model, a dataclass, a "
            "TypedDict (typing_extensions.TypedDict before Python 3.12), or a JSON-shaped type"
        ) from exc


def json_schema(cls: Any) -> dict[str, Any]:
    """The JSON Schema a model is asked to fill for ``cls``; a fresh dict each call."""
    return copy.deepcopy(_cached_json_schema(cls))


@functools.lru_cache(maxsize=256)
def _cached_json_schema(cls: Any) -> dict[str, Any]:
    # Building a schema costs ~0.3 ms; a typed answer asks for it on every call.
    return type_adapter(cls).json_schema(schema_generator=PromptSchemaGenerator)
