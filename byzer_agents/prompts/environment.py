"""The Jinja environments: one over the package's ``*.j2`` formats, one for user templates."""

from __future__ import annotations

import functools
import json
from typing import Any

import jinja2

from byzer_agents.exceptions import PromptTemplateError
from byzer_agents.prompts.placeholders import field_notes, shape, without_descriptions

__all__ = ["compile_template", "package_environment", "render"]


def _tojson(value: Any, indent: int | None = None) -> str:
    # Jinja's own tojson HTML-escapes '<' and '&', which a model would then read literally.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _configure(environment: jinja2.Environment) -> jinja2.Environment:
    environment.filters["tojson"] = _tojson
    environment.filters["shape"] = shape
    environment.filters["field_notes"] = field_notes
    environment.filters["without_descriptions"] = without_descriptions
    return environment


@functools.cache
def package_environment() -> jinja2.Environment:
    """The environment that loads ``byzer_agents/prompts/templates/*.j2``."""
    return _configure(
        jinja2.Environment(
            loader=jinja2.PackageLoader("byzer_agents.prompts", "templates"),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )
    )


@functools.lru_cache(maxsize=512)
def compile_template(source: str) -> jinja2.Template:
    """Compile a user's template string; a missing variable is an error, not an empty string."""
    environment = _configure(
        jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
    )
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptTemplateError(
            f"template does not compile: {exc.message} (line {exc.lineno}): {source[:200]!r}"
        ) from exc


def render(template: str | jinja2.Template, /, **context: Any) -> str:
    """Render a package template by file name (``"function_calling.j2"``), a template string, or
    a compiled template; errors name the template and the missing or bad variable."""
    name = template if isinstance(template, str) and template.endswith(".j2") else "template"
    try:
        if isinstance(template, jinja2.Template):
            compiled = template
        elif template.endswith(".j2") and "\n" not in template:
            compiled = package_environment().get_template(template)
        else:
            compiled = compile_template(template)
        return compiled.render(**context).strip()
    except jinja2.UndefinedError as exc:
        raise PromptTemplateError(
            f"{name} needs a variable that was not given: {exc.message}; given: {sorted(context)}"
        ) from exc
    except jinja2.TemplateError as exc:
        raise PromptTemplateError(f"cannot render {template!r:.200}: {exc}") from exc
