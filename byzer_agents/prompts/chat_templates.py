"""Model chat templates: turn an OpenAI-shaped conversation, tool calls and results included, into
the prompt string a local model was trained on, and say which strings end its turn.

Each template is Jinja source in the Hugging Face chat-template convention (``messages``,
``tools``, ``add_generation_prompt``, ``bos_token``, ``eos_token``), rendered in the same sandbox
Hugging Face uses, so a tokenizer's own template renders here unchanged; where a tokenizer ships
one, ``Templates.from_tokenizer`` builds it and it should win over the built-in ones. The built-in
ones are ``templates/chat/<name>.j2``, each whole in one file, as a tokenizer would ship it.

What is fragile: Llama 2 and Zephyr were never trained on tools, so their tool markers follow the
nearest real convention (Mistral's ``[TOOL_CALLS]`` / ``[TOOL_RESULTS]`` on Llama 2's ``[INST]``
layout, Hermes' ``<tool_call>`` / ``<tool_response>`` tags on Zephyr's) rather than anything the
model has seen. Tool-call arguments arrive as JSON strings and are parsed before rendering, because
the templates (ours and Hugging Face's) write them back with ``tojson``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from byzer_agents.exceptions import ConfigurationError, PromptTemplateError

__all__ = ["ChatTemplate", "Templates"]


@dataclass(frozen=True)
class ChatTemplate:
    """One model family's chat template, ready to render; compiled (and checked) when made."""

    name: str
    """What the template is called in errors: ``"qwen"``, or ``"tokenizer:<model>"``."""
    source: str = field(repr=False)
    """The Jinja source, in the Hugging Face chat-template convention."""
    stop: tuple[str, ...]
    """Strings that end the model's turn; pass them as ``stop`` when generating."""
    bos_token: str = ""
    """The value of ``bos_token`` in the template (some templates write it, some leave it out)."""
    eos_token: str = ""
    """The value of ``eos_token`` in the template."""

    def __post_init__(self) -> None:
        try:
            _compile(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptTemplateError(
                f"chat template {self.name!r} does not compile: {exc.message} (line {exc.lineno})"
            ) from exc

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        **variables: Any,
    ) -> str:
        """The prompt for ``messages`` (OpenAI chat-completions dicts) and ``tools`` (entries of an
        OpenAI ``tools`` list); ``add_generation_prompt`` ends it with the assistant's header.

        ``variables`` go to the template as they are, for tokenizer templates that read more
        (``enable_thinking``, ``date_string``).
        """
        context = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **variables,
            "messages": _normalize_messages(self.name, messages),
            "tools": [dict(tool) for tool in tools] if tools else None,
            "add_generation_prompt": add_generation_prompt,
        }
        try:
            return _compile(self.source).render(**context)
        except (jinja2.TemplateError, TypeError) as exc:
            raise PromptTemplateError(
                f"chat template {self.name!r} cannot render these messages: {exc}"
            ) from exc


class Templates:
    """The built-in chat templates, one per model family, and the one a tokenizer ships."""

    @staticmethod
    def qwen() -> ChatTemplate:
        """Qwen 2.5 (ChatML with Hermes-style tools; tool results go back in a user turn)."""
        return _built_in("qwen", stop=("<|im_end|>", "<|endoftext|>"), eos_token="<|im_end|>")

    @staticmethod
    def chatml() -> ChatTemplate:
        """ChatML (SmolLM2, Hermes, Yi and others), with a ``tool`` role for tool results."""
        return _built_in("chatml", stop=("<|im_end|>",), eos_token="<|im_end|>")

    @staticmethod
    def llama3() -> ChatTemplate:
        """Llama 3.x: JSON tool calls, tool results in ``ipython`` turns."""
        return _built_in(
            "llama3",
            stop=("<|eot_id|>", "<|end_of_text|>"),
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
        )

    @staticmethod
    def llama2() -> ChatTemplate:
        """Llama 2 chat: ``[INST] <<SYS>> ... <</SYS>> ... [/INST]``."""
        return _built_in("llama2", stop=("</s>",), bos_token="<s>", eos_token="</s>")

    @staticmethod
    def zephyr() -> ChatTemplate:
        """Zephyr: ``<|system|>``, ``<|user|>``, ``<|assistant|>`` turns, each ended by ``</s>``."""
        return _built_in("zephyr", stop=("</s>",), bos_token="<s>", eos_token="</s>")

    @staticmethod
    def default() -> ChatTemplate:
        """A plain ``System:`` / ``User:`` / ``Assistant:`` / ``Tool:`` transcript (base models)."""
        return _built_in("default", stop=("\nUser:", "\nTool:"))

    @staticmethod
    def get(name: str) -> ChatTemplate:
        """The built-in template called ``name`` (``"qwen"``, ``"llama3"`` ...)."""
        factory = _BUILT_IN.get(name.strip().lower()) if isinstance(name, str) else None
        if factory is None:
            raise ConfigurationError(
                f"no chat template is called {name!r}; the built-in ones are {', '.join(_BUILT_IN)}"
            )
        return factory()

    @staticmethod
    def from_tokenizer(tokenizer: Any, *, template_name: str = "default") -> ChatTemplate | None:
        """The template a tokenizer ships (``tokenizer.chat_template``), stopping at its
        ``eos_token``; None when it ships none.

        A tokenizer with several named templates gives the one called ``template_name``.
        """
        source = _pick_tokenizer_source(getattr(tokenizer, "chat_template", None), template_name)
        if source is None:
            return None
        eos_token = _token_text(getattr(tokenizer, "eos_token", None))
        label = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
        return ChatTemplate(
            name=f"tokenizer:{label}",
            source=source,
            stop=(eos_token,) if eos_token else (),
            bos_token=_token_text(getattr(tokenizer, "bos_token", None)),
            eos_token=eos_token,
        )


# --- the built-in templates --------------------------------------------------------------------

_BUILT_IN: dict[str, Callable[[], ChatTemplate]] = {
    "qwen": Templates.qwen,
    "llama2": Templates.llama2,
    "llama3": Templates.llama3,
    "chatml": Templates.chatml,
    "zephyr": Templates.zephyr,
    "default": Templates.default,
}


def _built_in(
    name: str, stop: tuple[str, ...], bos_token: str = "", eos_token: str = ""
) -> ChatTemplate:
    source = _built_in_source(name)
    return ChatTemplate(
        name=name, source=source, stop=stop, bos_token=bos_token, eos_token=eos_token
    )


@functools.cache
def _built_in_source(name: str) -> str:
    path = importlib.resources.files("byzer_agents.prompts") / "templates" / "chat" / f"{name}.j2"
    return path.read_text(encoding="utf-8")


# --- compiling ---------------------------------------------------------------------------------


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson HTML-escapes '<' and '&', which a model would then read literally.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _GenerationTag(jinja2.ext.Extension):
    """Hugging Face's ``{% generation %}`` marks the assistant's tokens for training masks; a
    template may use it, and here it only renders its body."""

    tags = {"generation"}  # noqa: RUF012 (jinja2.ext.Extension declares it a plain set)

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


@functools.lru_cache(maxsize=64)
def _compile(source: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    return environment.from_string(source)


# --- messages as the templates expect them ------------------------------------------------------

_ROLES_THAT_NEED_CONTENT = frozenset({"system", "user", "tool"})


def _normalize_messages(
    template: str, messages: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Copies of ``messages`` with text content and parsed tool-call arguments; a message that
    no template could render is refused here, naming it."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise PromptTemplateError(
            f"chat template {template!r} takes a list of message dicts, "
            f"got {type(messages).__name__}"
        )
    return [_normalize_message(template, index, message) for index, message in enumerate(messages)]


def _normalize_message(template: str, index: int, message: Any) -> dict[str, Any]:
    where = f"chat template {template!r}: message {index}"
    if not isinstance(message, Mapping):
        raise PromptTemplateError(f"{where} must be a dict, got {type(message).__name__}")
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise PromptTemplateError(f"{where} needs a 'role' string, got {role!r}")
    normalized = dict(message)
    where = f"{where} ({role})"
    if "content" in message:
        normalized["content"] = _text_content(where, message["content"])
    if message.get("tool_calls") is None:
        normalized.pop("tool_calls", None)
    else:
        normalized["tool_calls"] = _normalize_tool_calls(where, message["tool_calls"])
    if role in _ROLES_THAT_NEED_CONTENT and normalized.get("content") is None:
        raise PromptTemplateError(f"{where} needs 'content'")
    if role == "assistant" and normalized.get("content") is None and not message.get("tool_calls"):
        raise PromptTemplateError(f"{where} has neither 'content' nor 'tool_calls'")
    return normalized


def _text_content(where: str, content: Any) -> str | None:
    """A string, or None; a list of parts becomes its text parts joined by newlines."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise PromptTemplateError(
            f"{where}: 'content' must be a string, a list of text parts or None, "
            f"got {type(content).__name__}"
        )
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise PromptTemplateError(
                f"{where}: a chat template renders only text parts, got a {kind!r} part"
            )
    return "\n".join(texts)


def _normalize_tool_calls(where: str, tool_calls: Any) -> list[dict[str, Any]]:
    if not isinstance(tool_calls, list):
        raise PromptTemplateError(
            f"{where}: 'tool_calls' must be a list, got {type(tool_calls).__name__}"
        )
    normalized = []
    for index, call in enumerate(tool_calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise PromptTemplateError(
                f"{where}: tool call {index} needs a 'function' with a 'name', got {call!r:.200}"
            )
        arguments = function.get("arguments")
        normalized.append(
            {
                **call,
                "type": call.get("type", "function"),
                "function": {**function, "arguments": _parse_arguments(arguments)},
            }
        )
    return normalized


def _parse_arguments(arguments: Any) -> Any:
    """The arguments as an object; a string that is not JSON is kept, so the template shows
    what the model really wrote."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


# --- tokenizers ---------------------------------------------------------------------------------


def _pick_tokenizer_source(chat_template: Any, template_name: str) -> str | None:
    if chat_template is None or chat_template == "":
        return None
    if isinstance(chat_template, str):
        return chat_template
    if isinstance(chat_template, Mapping):
        named = dict(chat_template)
    elif isinstance(chat_template, list):
        # tokenizer_config.json stores several templates as [{"name": ..., "template": ...}].
        named = {
            entry.get("name"): entry.get("template")
            for entry in chat_template
            if isinstance(entry, Mapping)
        }
    else:
        raise PromptTemplateError(
            "tokenizer.chat_template must be a string, a dict of named templates or a list of "
            f"{{'name', 'template'}} dicts, got {type(chat_template).__name__}"
        )
    source = named.get(template_name)
    if not isinstance(source, str) or not source:
        raise PromptTemplateError(
            f"the tokenizer has no chat template called {template_name!r}; "
            f"it has {', '.join(map(str, named))}"
        )
    return source


def _token_text(token: Any) -> str:
    # A tokenizer's special tokens are strings or AddedToken objects whose str() is the text.
    return "" if token is None else str(token)
