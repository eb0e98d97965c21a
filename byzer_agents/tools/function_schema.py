"""Turn a Python function into the pydantic model that validates its arguments and the JSON Schema
a model sees.

Descriptions come from three places, strongest first: a pydantic ``Field(description=...)``, a
string in ``Annotated[...]`` metadata (Byzer-LLM's convention), then the docstring's parameter
section. A dict in ``Annotated`` metadata (``{"enum": [...]}``) is merged into the parameter's
schema and, since a schema the function does not enforce would be a lie, checked at validation.

Fragile parts: parameter names may collide with ``BaseModel`` attributes (``json``, ``schema``,
``model_config``), so fields are stored under private names with the parameter name as alias;
``Optional[...]`` fragments go inside the union, next to the non-null type they describe.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union

import jsonschema
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, to_jsonable_python

from byzer_agents.exceptions import ConfigurationError, ToolDefinitionError, UnsupportedSchemaError
from byzer_agents.tools.context import is_run_context
from byzer_agents.tools.docstrings import parse_docstring
from byzer_agents.tools.schema_bounds import check_depth
from byzer_agents.tools.schema_generator import PromptSchemaGenerator

__all__ = ["FunctionSchema", "function_schema"]

_BOUND_FIRST_PARAMETERS = ("self", "cls")


@dataclass(frozen=True, kw_only=True)
class FunctionSchema:
    """What a function offers as a tool: its name, description, arguments schema and the model
    that validates a call's arguments."""

    name: str
    description: str
    """The docstring's summary and body, without its parameter sections."""
    parameters: dict[str, Any]
    """JSON Schema of the arguments object."""
    arguments_model: type[BaseModel]
    """Validates and coerces a call's arguments; its fields are aliased by parameter name."""
    field_names: dict[str, str]
    """Parameter name -> the model's field name holding it."""
    positional_only: tuple[str, ...]
    """Parameters that must be passed by position."""
    takes_bound_first: bool
    """True for a method's ``self``/``cls``, which the schema leaves out and binding supplies."""
    context_parameter: str | None = None
    """The parameter annotated ``RunContext[...]``: left out of the schema and the validation,
    filled in with the run's context when the tool runs."""


def function_schema(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> FunctionSchema:
    """Build the schema of ``fn``; a parameter that cannot be one raises ToolDefinitionError."""
    fn_name: str = name or getattr(fn, "__name__", None) or type(fn).__name__
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"cannot read the signature of {fn_name!r}: {exc}; types named in annotations must "
            "be importable where the function is defined"
        ) from exc

    docstring = parse_docstring(inspect.getdoc(fn))
    parameters = list(signature.parameters.values())
    takes_bound_first = (
        not inspect.ismethod(fn)
        and bool(parameters)
        and parameters[0].name in _BOUND_FIRST_PARAMETERS
        and parameters[0].kind is not inspect.Parameter.KEYWORD_ONLY
    )
    if takes_bound_first:
        parameters = parameters[1:]

    fields: dict[str, Any] = {}
    field_names: dict[str, str] = {}
    positional_only: list[str] = []
    context_parameter = _context_parameter(fn_name, parameters)
    for index, parameter in enumerate(parameters):
        _refuse_variadic(fn_name, parameter)
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only.append(parameter.name)
        if parameter.name == context_parameter:
            continue
        field_name = f"arg_{index}"
        field_names[parameter.name] = field_name
        fields[field_name] = _field(fn_name, parameter, docstring.params.get(parameter.name))

    model_name = (
        "".join(part.capitalize() for part in fn_name.replace(".", "_").split("_")) or "Tool"
    )
    try:
        model = create_model(
            f"{model_name}Arguments",
            __config__=ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False),
            **fields,
        )
        json_schema = model.model_json_schema(schema_generator=PromptSchemaGenerator)
    except Exception as exc:
        raise _explain_unsupported_type(fn_name, parameters, exc) from exc

    json_schema.pop("title", None)
    json_schema.pop("description", None)
    json_schema.setdefault("properties", {})
    return FunctionSchema(
        name=fn_name,
        description=docstring.description if description is None else description,
        parameters=json_schema,
        arguments_model=model,
        field_names=field_names,
        positional_only=tuple(positional_only),
        takes_bound_first=takes_bound_first,
        context_parameter=context_parameter,
    )


def _context_parameter(fn_name: str, parameters: list[inspect.Parameter]) -> str | None:
    """The one parameter annotated ``RunContext[...]``, if any."""
    found = [p.name for p in parameters if is_run_context(p.annotation)]
    if len(found) > 1:
        raise ToolDefinitionError(
            f"tool {fn_name!r}: parameters {found} all ask for the RunContext; keep one"
        )
    return found[0] if found else None


def _refuse_variadic(fn_name: str, parameter: inspect.Parameter) -> None:
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        raise ToolDefinitionError(
            f"tool {fn_name!r}: parameter '*{parameter.name}' takes any number of positional "
            "values, which a JSON arguments object cannot express; use a list parameter instead"
        )
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        raise ToolDefinitionError(
            f"tool {fn_name!r}: parameter '**{parameter.name}' takes arbitrary keywords, which "
            "a schema cannot describe; name each parameter, or take a dict parameter"
        )


def _field(fn_name: str, parameter: inspect.Parameter, doc_description: str | None) -> Any:
    annotation = Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
    annotation, description = _split_annotated(annotation)
    has_field_description = _has_field_description(annotation)
    if parameter.default is inspect.Parameter.empty:
        default: Any = ...
    else:
        default = parameter.default
        try:
            to_jsonable_python(default)
        except PydanticSerializationError as exc:
            raise ToolDefinitionError(
                f"tool {fn_name!r}: the default of parameter {parameter.name!r} "
                f"({default!r}) cannot be written as JSON; use None or a JSON value instead"
            ) from exc
    description = None if has_field_description else (description or doc_description)
    if not description:
        # Passing description=None would override a Field(description=...) in the annotation.
        return annotation, Field(default, alias=parameter.name)
    return annotation, Field(default, alias=parameter.name, description=description)


def _split_annotated(annotation: Any) -> tuple[Any, str | None]:
    """Take Byzer-LLM's ``Annotated[T, "description", {schema}]`` metadata apart.

    Returns the annotation with its dicts turned into enforced schema fragments, and the
    description string, if any.
    """
    if typing.get_origin(annotation) is not Annotated:
        return annotation, None
    base, *metadata = typing.get_args(annotation)
    description = next((item for item in metadata if isinstance(item, str)), None)
    kept = [item for item in metadata if not isinstance(item, (str, dict))]
    for fragment in (item for item in metadata if isinstance(item, dict)):
        base = _with_fragment(base, SchemaFragment(fragment))
    return (Annotated[(base, *kept)] if kept else base), description


def _with_fragment(base: Any, fragment: SchemaFragment) -> Any:
    """Attach the fragment to the non-null members of an Optional, so None stays allowed."""
    origin = typing.get_origin(base)
    if origin in (Union, types.UnionType):
        members = typing.get_args(base)
        if type(None) in members:
            return Union[  # noqa: UP007 - built from a runtime tuple
                tuple(m if m is type(None) else Annotated[m, fragment] for m in members)
            ]
    return Annotated[base, fragment]


def _has_field_description(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not Annotated:
        return False
    return any(
        isinstance(item, FieldInfo) and item.description for item in typing.get_args(annotation)[1:]
    )


class SchemaFragment:
    """``Annotated`` metadata: a JSON Schema dict merged into its type's schema and enforced on
    every validated value."""

    def __init__(self, fragment: dict[str, Any]) -> None:
        try:
            check_depth(fragment, what=f"schema metadata {fragment!r:.60}")
        except UnsupportedSchemaError as exc:
            raise ToolDefinitionError(str(exc)) from exc
        try:
            validator_class = jsonschema.validators.validator_for(fragment)
            validator_class.check_schema(fragment)
        except jsonschema.SchemaError as exc:
            raise ToolDefinitionError(
                f"schema metadata {fragment!r} is not valid JSON Schema: {exc.message}"
            ) from exc
        self.fragment = fragment
        self._validator = validator_class(fragment, format_checker=jsonschema.FormatChecker())

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        json_schema = dict(handler(schema))
        json_schema.update(self.fragment)
        return json_schema

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return handler(Annotated[source, AfterValidator(self._check)])

    def _check(self, value: Any) -> Any:
        error = jsonschema.exceptions.best_match(
            self._validator.iter_errors(to_jsonable_python(value))
        )
        if error is not None:
            raise ConfigurationError(error.message)
        return value

    def __repr__(self) -> str:
        return f"SchemaFragment({self.fragment!r})"


def _explain_unsupported_type(
    fn_name: str, parameters: list[inspect.Parameter], exc: Exception
) -> ToolDefinitionError:
    """Find which parameter's type pydantic could not handle, to name it in the error."""
    for parameter in parameters:
        if parameter.annotation is inspect.Parameter.empty or is_run_context(parameter.annotation):
            continue
        try:
            TypeAdapter(_split_annotated(parameter.annotation)[0]).json_schema()
        except Exception as parameter_exc:
            return ToolDefinitionError(
                f"tool {fn_name!r}: parameter {parameter.name!r} has type "
                f"{parameter.annotation!r}, which has no JSON Schema: {parameter_exc}. "
                "Use JSON-shaped types: str, int, float, bool, None, list, dict, Literal, Enum, "
                "datetime types, pydantic models, dataclasses or TypedDicts"
            )
    return ToolDefinitionError(f"tool {fn_name!r}: cannot build its argument schema: {exc}")
