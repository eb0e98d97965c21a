"""Constrained decoding for local transformers models: a request's ``response_format`` or ``tools``
become an xgrammar grammar whose token mask keeps ``generate()`` inside the schema.

The transformers backend calls ``build_constraint(request, tokenizer, max_new_tokens=...)`` and gets
``None`` (nothing to constrain) or a ``Constraint``: ``logits_processor`` for one ``generate()``
call, ``to_message(text)`` to turn the output into content or tool calls, and ``check(text)``, the
validation every output goes through. The grammars are compiled in ``grammar_compiler`` (where
xgrammar falls short of a schema, and what is done about it) and enforced, with budget steering, by
``grammar_processor``. The grammar is never trusted alone: ``check()`` validates the output with
jsonschema and every known format. Benchmarked in benchmarks/bench_schema_coverage.py.

- **tool_choice "auto".** The model may call tools or answer in plain text, so the grammar is the
  union of the tool-call object and free text whose first character is neither ``{`` nor
  whitespace: the first token decides, and the rest of a tool call is held to its schema. With a
  ``response_format`` as well, the alternative to a call is the answer schema instead of free text.
  "required" and a named tool allow only calls (a named tool: only that one).

Tool calls are generated as one object, ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``,
one ``anyOf`` branch per tool. xgrammar cannot follow a ``$ref`` through that list, so parameters
that hold ``$ref``s move to a ``$defs`` entry of their own, their ``$ref``s re-rooted there.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import xgrammar as xgr

from byzer_agents.llm_runtime.grammar_compiler import (
    Vocabulary,
    json_schema_grammar,
    vocabulary_for,
)
from byzer_agents.llm_runtime.grammar_processor import (
    STEERING_SLACK,
    STEERING_TOP_K,
    GrammarLogitsProcessor,
)
from byzer_agents.llm_runtime.structured_output import OutputSpec, output_spec
from byzer_agents.types import ChatRequest

__all__ = [
    "STEERING_SLACK",
    "STEERING_TOP_K",
    "Constraint",
    "GrammarLogitsProcessor",
    "build_constraint",
    "json_schema_grammar",
]

logger = logging.getLogger(__name__)


def build_constraint(
    request: ChatRequest,
    tokenizer: Any,
    *,
    max_new_tokens: int,
    vocab_size: int | None = None,
    stop_token_ids: Sequence[int] | None = None,
    budget_steering: bool = True,
) -> Constraint | None:
    """The grammar constraint ``request`` needs, or None when it needs none (no ``response_format``
    of type json_schema / json_object, and no tools or ``tool_choice="none"``).

    ``tokenizer`` is a Hugging Face tokenizer; ``vocab_size`` the model's logits width when it is
    not ``len(tokenizer)`` (padded embeddings); ``stop_token_ids`` the ids that end generation when
    they are not just ``tokenizer.eos_token_id``. Raises ValueError for a malformed
    ``response_format`` or ``tool_choice``, ToolDefinitionError for a malformed tool.
    """
    spec = output_spec(request, max_new_tokens=max_new_tokens)
    if spec is None:
        return None
    vocabulary = vocabulary_for(tokenizer, vocab_size)
    grammar, fallback = vocabulary.grammar(
        tools=spec.tools,
        single_call=spec.single_call,
        answer_schema=spec.answer_schema,
        allows_text=spec.allows_text,
    )
    if fallback:
        logger.warning("constrained decoding falls back: %s", fallback)
    return Constraint(
        spec,
        grammar=grammar,
        vocabulary=vocabulary,
        tokenizer=tokenizer,
        budget_steering=budget_steering,
        stop_token_ids=tuple(stop_token_ids) if stop_token_ids else None,
        fallback=fallback,
    )


class Constraint(OutputSpec):
    """One request's output spec with the xgrammar grammar that holds generation to it."""

    prefix: str = ""
    """Text the backend puts after the prompt before generating (none is needed here)."""
    fallback: str | None
    """Why the grammar is looser than the schema (xgrammar could not compile part of it), or None.
    ``check()`` still holds the output to the whole schema."""
    budget_steering: bool

    def __init__(
        self,
        spec: OutputSpec,
        *,
        grammar: xgr.CompiledGrammar,
        vocabulary: Vocabulary,
        tokenizer: Any,
        budget_steering: bool,
        stop_token_ids: tuple[int, ...] | None,
        fallback: str | None,
    ) -> None:
        super().__init__(
            answer_schema=spec.answer_schema,
            tools=spec.tools,
            allows_text=spec.allows_text,
            single_call=spec.single_call,
            max_new_tokens=spec.max_new_tokens,
        )
        self.grammar = grammar
        self._vocabulary = vocabulary
        self._tokenizer = tokenizer
        self.budget_steering = budget_steering
        self._stop_token_ids = stop_token_ids
        self.fallback = fallback

    def __repr__(self) -> str:
        kind = "tools" if self.tool_calls_schema is not None else "response_format"
        return (
            f"Constraint({kind}, tools={sorted(self._tools)}, allows_text={self.allows_text}, "
            f"max_new_tokens={self.max_new_tokens}, budget_steering={self.budget_steering}, "
            f"fallback={self.fallback!r})"
        )

    @property
    def logits_processor(self) -> GrammarLogitsProcessor:
        """A fresh processor for one ``generate()`` call (it keeps the parse state of that call)."""
        return GrammarLogitsProcessor(
            self.grammar,
            self._vocabulary,
            encode=functools.partial(self._tokenizer.encode, add_special_tokens=False),
            max_new_tokens=self.max_new_tokens,
            budget_steering=self.budget_steering,
            stop_token_ids=self._stop_token_ids,
        )
