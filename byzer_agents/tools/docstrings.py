"""Read descriptions out of docstrings (Google, NumPy, reST, Epydoc styles; docstring-parser)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import docstring_parser

__all__ = ["DocstringInfo", "parse_docstring"]


@dataclass(frozen=True)
class DocstringInfo:
    """What a docstring says: its description, and one per parameter."""

    description: str = ""
    """Summary and body, without the Args / Parameters / Returns sections."""
    params: dict[str, str] = field(default_factory=dict)
    """Parameter (or attribute) name -> its description."""


def parse_docstring(doc: str | None) -> DocstringInfo:
    """The description and parameter descriptions of ``doc`` (empty for no docstring)."""
    if not doc or not doc.strip():
        return DocstringInfo()
    parsed = docstring_parser.parse(inspect.cleandoc(doc))
    # A summary wrapped over two lines comes back as short + long without a blank between.
    separator = "\n\n" if parsed.blank_after_short_description else " "
    parts = [part.strip() for part in (parsed.short_description, parsed.long_description) if part]
    params = {
        param.arg_name: inspect.cleandoc(param.description)
        for param in parsed.params
        if param.description
    }
    return DocstringInfo(description=separator.join(parts), params=params)
