"""``Tool``: a function (or a bare schema) that a model can call, and the ``@tool`` decorator.

A Tool stays callable exactly like its function; beside that it carries the API-safe ``name``, the
``description``, the JSON Schema ``parameters``, and validates a model's arguments before the
function ever sees them. A tool runs once per call unless it declares itself safe to run again
after a transient failure (``@tool(retries=n)``); one with effects a person should allow first
says so (``@tool(requires_approval=True)``), and a parameter annotated ``RunContext[...]`` is
filled in by the run, not by the model.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import types
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

import jsonschema
from pydantic import ValidationError

from byzer_agents.exceptions import (
    ArgumentError,
    ModelRetry,
    ToolArgumentsError,
    ToolDefinitionError,
    UnsupportedSchemaError,
    UsageError,
)
from byzer_agents.tools.context import RunContext
from byzer_agents.tools.dialect import api_safe_name, normalize_schema
from byzer_agents.tools.function_schema import FunctionSchema, function_schema
from byzer_agents.tools.schema_bounds import check_depth
from byzer_agents.tools.strict import to_strict_schema

__all__ = ["Tool", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

_MAX_VALUE_REPR = 80
# Backoff between a retrying tool's runs: 0.1 s, 0.2 s, 0.4 s, ... at most 2 s.
_RETRY_FIRST_WAIT_S = 0.1
_RETRY_MAX_WAIT_S = 2.0


class Tool(Generic[P, R]):
    """A callable a model can use: made by ``@tool``, ``tool(fn)`` or ``Tool.from_schema``."""

    name: str
    """API-safe name (``[A-Za-z0-9_-]{1,64}``), what the model sees and calls."""
    original_name: str
    """The name as defined (``math.factorial``), to map a call back to what the user knows."""
    description: str
    parameters: dict[str, Any]
    """JSON Schema of the arguments object."""
    strict: bool
    fn: Callable[P, R] | None
    retries: int
    """How many times the function is run again after it raises (0: it runs once)."""
    requires_approval: bool
    """Whether a call waits for an approver's yes before it runs (``Agent(approve=...)``)."""

    def __init__(
        self,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        strict: bool,
        fn: Callable[P, R] | None,
        schema: FunctionSchema | None = None,
        schema_validator: jsonschema.protocols.Validator | None = None,
        binds_class: bool = False,
        retries: int = 0,
        requires_approval: bool = False,
    ) -> None:
        self.original_name = name
        self.name = api_safe_name(name)
        self.description = description
        self.parameters = parameters
        self.strict = strict
        self.fn = fn
        self.retries = _checked_retries(name, retries)
        self.requires_approval = bool(requires_approval)
        self._schema = schema
        self._schema_validator = schema_validator
        self._binds_class = binds_class
        self._is_bound = False
        self._is_async = fn is not None and _is_async_callable(fn)
        if fn is not None:
            functools.update_wrapper(self, fn)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_function(
        cls,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        retries: int = 0,
        requires_approval: bool = False,
    ) -> Tool[P, R]:
        """A tool from a function's signature and docstring; ``retries`` and
        ``requires_approval``: see ``tool``."""
        binds_class = isinstance(fn, classmethod)
        if isinstance(fn, (staticmethod, classmethod)):
            fn = fn.__func__
        if not callable(fn):
            raise ToolDefinitionError(f"a tool needs a callable, got {fn!r}")
        schema = function_schema(fn, name=name, description=description)
        parameters = schema.parameters
        if strict:
            parameters = to_strict_schema(parameters, tool_name=schema.name)
        return cls(
            name=schema.name,
            description=schema.description,
            parameters=parameters,
            strict=strict,
            fn=fn,
            schema=schema,
            binds_class=binds_class,
            retries=retries,
            requires_approval=requires_approval,
        )

    @classmethod
    def from_schema(
        cls,
        definition: Mapping[str, Any],
        fn: Callable[..., Any] | None = None,
        *,
        strict: bool | None = None,
        retries: int = 0,
        requires_approval: bool = False,
    ) -> Tool[..., Any]:
        """A tool from an OpenAI-style definition (``{"type": "function", "function": {...}}`` or
        the bare ``{name, description, parameters}``), in standard JSON Schema or a dialect such as
        BFCL's. Arguments are checked against the schema; ``fn``, if given, is called with them."""
        function = definition.get("function", definition)
        if not isinstance(function, Mapping) or not function.get("name"):
            raise ToolDefinitionError(
                f"a tool definition needs a 'name' (and usually 'description' and 'parameters'), "
                f"got keys {sorted(definition)}"
            )
        name = function["name"]
        try:  # walked before anything recursive reads it
            check_depth(function.get("parameters"), what=f"the parameters of tool {name!r}")
        except UnsupportedSchemaError as exc:
            raise ToolDefinitionError(str(exc)) from None
        parameters = normalize_schema(function.get("parameters"))
        strict = bool(function.get("strict", False)) if strict is None else strict
        if strict:
            parameters = to_strict_schema(parameters, tool_name=name)
        validator_class = jsonschema.validators.validator_for(parameters)
        try:
            validator_class.check_schema(parameters)
        except jsonschema.SchemaError as exc:
            raise ToolDefinitionError(
                f"tool {name!r}: its parameters are not a valid JSON Schema: {exc.message} "
                f"(at {'/'.join(map(str, exc.absolute_path)) or 'the root'})"
            ) from exc
        return cls(
            name=name,
            description=function.get("description") or "",
            parameters=parameters,
            strict=strict,
            fn=fn,
            # Every known format, not only the declared draft's: a draft-04 schema saying
            # "format": "uuid" means it, though draft 4 did not define uuid.
            schema_validator=validator_class(parameters, format_checker=jsonschema.FormatChecker()),
            retries=retries,
            requires_approval=requires_approval,
        )

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function (run on the event loop, cancellable)."""
        return self._is_async

    # --- what a model sees --------------------------------------------------------------------

    def to_openai(self) -> dict[str, Any]:
        """The entry of an OpenAI chat-completions ``tools`` list."""
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    # --- validating and calling ---------------------------------------------------------------

    def validate(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """Check a call's arguments (a dict or a JSON string) and return them validated and coerced,
        keyed by parameter name. Raises ToolArgumentsError naming every bad field."""
        try:
            if self._schema is not None:
                return self._validate_with_model(self._schema, arguments)
            data = self._load(arguments)
            if self._schema_validator is not None:
                errors = sorted(
                    self._schema_validator.iter_errors(data), key=lambda e: list(map(str, e.path))
                )
                if errors:
                    raise ToolArgumentsError(
                        self.name, [_from_jsonschema(error) for error in errors]
                    )
        except RecursionError:
            # json.loads and jsonschema recurse per level: a model's 10,000-deep reply is a bad
            # call to feed back, not a crash.
            raise ToolArgumentsError(
                self.name,
                [ArgumentError("", "nested too deeply to read; send a flatter arguments object")],
            ) from None
        return data

    def invoke(self, arguments: Mapping[str, Any] | str | None) -> R:
        """Validate the arguments, then call the function with them (``call_validated``)."""
        return self.call_validated(self.validate(arguments))

    async def ainvoke(self, arguments: Mapping[str, Any] | str | None) -> R:
        """Validate, then await the function (``acall_validated``)."""
        return await self.acall_validated(self.validate(arguments))

    @property
    def context_parameter(self) -> str | None:
        """The parameter that receives the ``RunContext`` (None when the tool takes none)."""
        return self._schema.context_parameter if self._schema is not None else None

    def call_validated(
        self, arguments: dict[str, Any], context: RunContext[Any] | None = None
    ) -> R:
        """Call the function with arguments that ``validate`` returned (validated once, so never
        twice), running it again after a failure up to ``retries`` times. ``context`` reaches
        the function's ``RunContext`` parameter (one without deps when not given)."""
        arguments = self._with_context(arguments, context)
        if self._is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.acall_validated(arguments))
            raise UsageError(
                f"tool {self.name!r} is async and an event loop is already running in this "
                "thread; use `await tool.ainvoke(arguments)`"
            )
        if not self.retries:
            return self._call(arguments)
        result: R = _retrying(self.retries, asynchronous=False)(self._call, arguments)
        return result

    async def acall_validated(
        self, arguments: dict[str, Any], context: RunContext[Any] | None = None
    ) -> R:
        """``call_validated`` for asyncio: an async function is awaited, a sync one runs in a
        worker thread so it does not block the event loop (parallel tool calls rely on this)."""
        arguments = self._with_context(arguments, context)
        if not self._is_async:
            result: Any = await asyncio.to_thread(self.call_validated, arguments)
        elif not self.retries:
            result = await self._call(arguments)
        else:
            async for attempt in _retrying(self.retries, asynchronous=True):
                with attempt:
                    result = await self._call(arguments)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._require_fn()(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Tool[..., R]:
        """Bind a tool defined on a class, as functions bind to become methods."""
        if self._schema is None or not self._schema.takes_bound_first:
            return self
        target = owner if self._binds_class else instance
        if target is None:
            return self
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound.fn = types.MethodType(self._require_fn(), target)
        bound._is_bound = True
        return bound

    def __repr__(self) -> str:
        names = list(self.parameters.get("properties", {}))
        return f"Tool(name={self.name!r}, parameters={names})"

    # --- internals ----------------------------------------------------------------------------

    def _with_context(
        self, arguments: dict[str, Any], context: RunContext[Any] | None
    ) -> dict[str, Any]:
        name = self.context_parameter
        if name is None or name in arguments:
            return arguments
        return {name: context if context is not None else RunContext(deps=None), **arguments}

    def _require_fn(self) -> Callable[..., Any]:
        if self.fn is None:
            raise ToolDefinitionError(
                f"tool {self.name!r} was defined from a schema alone and has no function to run; "
                "pass fn= to Tool.from_schema to make it callable"
            )
        return self.fn

    def _call(self, validated: dict[str, Any]) -> Any:
        fn = self._require_fn()
        if self._schema is not None and self._schema.takes_bound_first and not self._is_bound:
            raise ToolDefinitionError(
                f"tool {self.name!r} is a method: invoke it through an instance "
                f"(`obj.{self.original_name}.invoke(...)`)"
            )
        validated = dict(validated)  # the caller's copy stays whole for a retry
        positional_names = self._schema.positional_only if self._schema else ()
        positional = [validated.pop(name) for name in positional_names if name in validated]
        return fn(*positional, **validated)

    def _load(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        if arguments is None:
            return {}
        if isinstance(arguments, (str, bytes)):
            text = arguments.decode() if isinstance(arguments, bytes) else arguments
            if not text.strip():
                return {}
            try:
                arguments = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ToolArgumentsError(
                    self.name,
                    [ArgumentError("", f"not valid JSON ({exc.msg} at position {exc.pos})", text)],
                ) from None
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                self.name,
                [ArgumentError("", "expected a JSON object of arguments", arguments)],
            )
        return dict(arguments)

    def _validate_with_model(
        self, schema: FunctionSchema, arguments: Mapping[str, Any] | str | None
    ) -> dict[str, Any]:
        try:
            if isinstance(arguments, (str, bytes)) and arguments.strip():
                # pydantic parses the JSON in Rust: about twice as fast as json.loads + validate.
                model = schema.arguments_model.model_validate_json(arguments)
            else:
                model = schema.arguments_model.model_validate(self._load(arguments))
        except ValidationError as exc:
            allowed = list(schema.field_names)
            raise ToolArgumentsError(
                self.name, [_from_pydantic(error, allowed) for error in exc.errors()]
            ) from None
        return {name: getattr(model, field) for name, field in schema.field_names.items()}


@overload
def tool(fn: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    retries: int = 0,
    requires_approval: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    retries: int = 0,
    requires_approval: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Make a function a Tool: ``@tool``, ``@tool(name=..., description=..., strict=...)``, or
    ``tool(fn)`` on any function or bound method.

    Args:
        retries: how many times to run the function again when it raises, with a short
            backoff (0.1 s, doubling, at most 2 s). Only for tools that are safe to repeat (a
            read that may fail transiently); a call that ran is otherwise final, because a
            tool with effects (an email sent, a row written) must not repeat them.
        requires_approval: each call waits for an approver's yes (``Agent(approve=...)``);
            a refusal goes back to the model as the call's result, and nothing runs.
    """

    def decorate(function: Callable[P, R]) -> Tool[P, R]:
        return Tool.from_function(
            function,
            name=name,
            description=description,
            strict=strict,
            retries=retries,
            requires_approval=requires_approval,
        )

    return decorate if fn is None else decorate(fn)


def _checked_retries(name: str, retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ToolDefinitionError(
            f"tool {name!r}: retries must be a whole number, 0 or more (how many times to run "
            f"the tool again after it raises), got {retries!r}"
        )
    return retries


def _retrying(retries: int, *, asynchronous: bool) -> Any:
    """tenacity's policy for a tool safe to repeat: ``retries`` more runs after the first, on
    any failure but a definition mistake, re-raising the last failure as itself."""
    import tenacity  # here, not at import: most tools never retry, and the package loads light

    policy: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(retries + 1),
        "wait": tenacity.wait_exponential(multiplier=_RETRY_FIRST_WAIT_S, max=_RETRY_MAX_WAIT_S),
        "retry": tenacity.retry_if_exception(_is_transient),
        "reraise": True,
    }
    return tenacity.AsyncRetrying(**policy) if asynchronous else tenacity.Retrying(**policy)


def _is_transient(error: BaseException) -> bool:
    # Not a definition mistake or a request to the model, and never a cancellation (a tool
    # timeout) or an interrupt.
    return isinstance(error, Exception) and not isinstance(error, ToolDefinitionError | ModelRetry)


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects define async __call__
    return inspect.iscoroutinefunction(fn) or (
        not inspect.isfunction(fn)
        and not inspect.ismethod(fn)
        and inspect.iscoroutinefunction(call)
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."


def _from_pydantic(error: Any, allowed: list[str]) -> ArgumentError:
    field = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "json_invalid":
        return ArgumentError("", f"not valid JSON ({message})", error["input"])
    if kind == "model_type" and not field:
        return ArgumentError("", "expected a JSON object of arguments", error["input"])
    if kind == "missing":
        return ArgumentError(field, "required argument is missing")
    if kind == "extra_forbidden":
        message = f"unexpected argument; the tool takes: {', '.join(allowed) or 'no arguments'}"
    shown = _short_repr(error["input"])
    if shown not in message:
        message = f"{message} (got {shown})"
    return ArgumentError(field, message, error["input"])


def _from_jsonschema(error: jsonschema.ValidationError) -> ArgumentError:
    field = ".".join(str(part) for part in error.absolute_path)
    return ArgumentError(field, error.message, error.instance)
