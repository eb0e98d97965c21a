"""``@prompt()``: a function whose docstring is a Jinja template, rendered with the call's arguments
and, when a model is bound, sent to it, the return annotation choosing what comes back.

Every ``with_*`` / ``options`` call returns a new object; nothing is shared between callers
(Byzer-LLM's shared runner and mutable default options let one caller's settings leak into
another's).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

import jinja2

from byzer_agents.exceptions import ConfigurationError, ConfigurationTypeError, PromptTemplateError
from byzer_agents.prompts.environment import compile_template, render

__all__ = ["ChatClient", "PromptFunction", "prompt"]

P = ParamSpec("P")
R = TypeVar("R")

_OPTION_KEYS = ("model", "llm_config")
_RENDERERS = ("jinja2", "simple")
_STREAM_ORIGINS = (
    collections.abc.Iterator,
    collections.abc.Generator,
    collections.abc.Iterable,
)


class ChatClient(Protocol):
    """What ``@prompt`` needs of a model client (``byzer_agents.LLM`` provides it)."""

    def chat_oai(self, conversations: list[dict[str, Any]], **kwargs: Any) -> Any:
        """Answer a conversation (``LLM.chat_oai``)."""

    def stream_chat_oai(self, conversations: list[dict[str, Any]], **kwargs: Any) -> Any:
        """Answer a conversation as text deltas (``LLM.stream_chat_oai``)."""


@dataclasses.dataclass(frozen=True)
class PromptFunction(Generic[P, R]):
    """A prompt template with its settings; immutable, so it can be shared freely."""

    fn: Callable[P, Any]
    template: jinja2.Template | str
    """A Jinja template, or (Byzer-LLM's ``render="simple"``) a ``str.format`` template."""
    llm: ChatClient | None = None
    llm_of: Callable[[Any], ChatClient] | None = None
    """Byzer-LLM's ``lambda self: self.llm``: finds the client of the instance a method-prompt is
    called through."""
    run_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    return_type: Any = None
    """Overrides the function's return annotation (``with_return_type``)."""
    extractor: Callable[[str], Any] | None = None
    bound_to: Any = None
    """The instance (or class) a method-prompt was accessed through."""

    def prompt(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Render the template with the call's arguments, merged with the dict the body returns."""
        context = self._context(args, kwargs)
        if isinstance(self.template, str):
            return _format_simple(self.template, context, self._name)
        try:
            return render(self.template, **context)
        except PromptTemplateError as exc:
            raise PromptTemplateError(f"prompt {self._name}: {exc}") from exc

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Render, ask the bound model, and return what the return annotation asks for: ``str``,
        a typed answer (pydantic class, dataclass, ...), or ``Iterator[str]`` (streamed deltas)."""
        if self.llm is None:
            raise ConfigurationError(
                f"prompt {self._name} has no model to run on: use .with_llm(llm).run(...), "
                "or @prompt(llm=llm)"
            )
        conversations = [{"role": "user", "content": self.prompt(*args, **kwargs)}]
        options = {key: value for key, value in self.run_options.items() if value is not None}
        answer_type = self._answer_type()
        if _is_stream(answer_type):
            return self.llm.stream_chat_oai(conversations, **options)
        if answer_type in (None, str, Any) or self.extractor is not None:
            output = self.llm.chat_oai(conversations, **options)[0].output
            return self.extractor(output) if self.extractor else output
        response = self.llm.chat_oai(conversations, response_class=answer_type, **options)[0]
        return response.value

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R | str:
        """Ask the model when one is bound; otherwise return the rendered prompt."""
        return self.run(*args, **kwargs) if self.llm is not None else self.prompt(*args, **kwargs)

    def with_llm(self, llm: ChatClient) -> PromptFunction[P, R]:
        """The same prompt, run on ``llm``."""
        return dataclasses.replace(self, llm=llm, llm_of=None)

    def options(self, options: Mapping[str, Any]) -> PromptFunction[P, R]:
        """Set ``model`` and ``llm_config`` for the run (merged over the current options)."""
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise ConfigurationError(
                f"unknown prompt option(s) {unknown}; allowed: {list(_OPTION_KEYS)}"
            )
        return dataclasses.replace(self, run_options={**self.run_options, **options})

    def with_return_type(self, return_type: Any) -> PromptFunction[P, Any]:
        """The same prompt, answering ``return_type`` instead of the function's annotation."""
        return dataclasses.replace(self, return_type=return_type)

    def with_extractor(self, extractor: Callable[[str], Any]) -> PromptFunction[P, Any]:
        """Turn the model's text into the result with ``extractor`` instead of the annotation."""
        return dataclasses.replace(self, extractor=extractor)

    def __get__(self, instance: Any, owner: type | None = None) -> PromptFunction[P, R]:
        if instance is None or self.bound_to is not None:
            return self
        llm = self.llm_of(instance) if self.llm_of is not None else self.llm
        return dataclasses.replace(self, bound_to=instance, llm=llm)

    @property
    def __wrapped__(self) -> Callable[P, Any]:
        return self.fn

    @property
    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def _context(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        call_args = (self.bound_to, *args) if self.bound_to is not None else args
        signature = inspect.signature(self.fn)
        try:
            bound = signature.bind(*call_args, **kwargs)
        except TypeError as exc:
            raise ConfigurationTypeError(f"prompt {self._name}{signature}: {exc}") from None
        bound.apply_defaults()
        bound_name = next(iter(signature.parameters)) if self.bound_to is not None else None
        context = {name: value for name, value in bound.arguments.items() if name != bound_name}
        extra = self.fn(*bound.args, **bound.kwargs)
        if isinstance(extra, Mapping):
            context.update(extra)
        elif extra is not None:
            raise ConfigurationTypeError(
                f"prompt {self._name} returned {type(extra).__name__}; its body may return "
                "None or a dict of extra template variables"
            )
        return context

    def _answer_type(self) -> Any:
        if self.return_type is not None:
            return self.return_type
        try:
            return typing.get_type_hints(self.fn).get("return")
        except Exception:  # an annotation that does not resolve: treat the answer as text
            return None


def _is_stream(answer_type: Any) -> bool:
    return typing.get_origin(answer_type) in _STREAM_ORIGINS or answer_type in _STREAM_ORIGINS


def _format_simple(template: str, context: Mapping[str, Any], name: str) -> str:
    try:
        return template.format(**context)
    except (KeyError, IndexError, ValueError) as exc:
        raise PromptTemplateError(
            f"prompt {name}: cannot fill its render='simple' template: {exc!r}"
        ) from None


def prompt(
    llm: ChatClient | Callable[[Any], ChatClient] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    render: str = "jinja2",
) -> Callable[[Callable[P, Any]], PromptFunction[P, Any]]:
    """Make a function's docstring its prompt template (``@prompt()`` or ``@prompt(llm=llm)``).

    As in Byzer-LLM, ``llm`` may also be a function of the instance a method-prompt is called
    through (``lambda self: self.llm``), and ``render="simple"`` reads the docstring as a
    ``str.format`` template (``{name}``) instead of Jinja (``{{ name }}``)."""
    if render not in _RENDERERS:
        raise ConfigurationError(f"render must be one of {list(_RENDERERS)}, got {render!r}")
    client: ChatClient | None = None
    llm_of: Callable[[Any], ChatClient] | None = None
    if _is_llm_getter(llm):
        llm_of = typing.cast("Callable[[Any], ChatClient]", llm)
    else:
        client = typing.cast("ChatClient | None", llm)

    def decorate(fn: Callable[P, Any]) -> PromptFunction[P, Any]:
        doc = fn.__doc__
        if not doc or not doc.strip():
            raise PromptTemplateError(
                f"@prompt needs a docstring holding the template, and {fn.__qualname__} has none"
            )
        source = inspect.cleandoc(doc)
        template: jinja2.Template | str = source
        if render == "jinja2":
            try:
                template = compile_template(source)
            except PromptTemplateError as exc:
                raise PromptTemplateError(f"prompt {fn.__qualname__}: {exc}") from exc
        function: PromptFunction[P, Any] = PromptFunction(
            fn=fn, template=template, llm=client, llm_of=llm_of
        )
        return function.options(options) if options else function

    return decorate


def _is_llm_getter(llm: Any) -> bool:
    """A function of the instance (``lambda self: self.llm``) rather than a model client."""
    return callable(llm) and not hasattr(llm, "chat_oai")
