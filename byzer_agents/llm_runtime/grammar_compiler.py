"""Compiling what a request's output must be into xgrammar grammars, once per tokenizer: the
tool-call object, the answer schema and free text as alternatives, compact JSON, and a looser
grammar with a note wherever xgrammar refuses part of a schema.

- **The grammar is not the schema.** xgrammar 0.2.8 turns some allOf / not / enum schemas into
  accept-any-JSON grammars without a word, ignores parent properties beside a oneOf, and refuses to
  compile others. A schema it refuses does not fail the request: that part of the grammar falls back
  to any JSON (any object for a tool's arguments) and the note says so; ``OutputSpec.check`` still
  holds every output to the whole schema.
- **Compact JSON.** Grammars allow no free whitespace and use ``,`` / ``:`` separators. xgrammar
  0.2.8 writes its rules for free-form JSON (a value of any type, an object without declared
  properties) with ``", "`` whatever the separators say, so those two rules are rewritten to ``,``:
  no token goes to a space.
- **Key order and extra keys.** Properties come in schema order, and where a schema says nothing
  about other properties none are generated (xgrammar's strict mode): the grammar yields a subset
  of the valid instances, which is what a model should write anyway.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import xgrammar as xgr

from byzer_agents.llm_runtime.grammar_processor import rollout_tokens
from byzer_agents.llm_runtime.structured_output import (
    ANY_OBJECT,
    tool_calls_schema,
    tool_calls_schema_of,
)
from byzer_agents.tools import Tool

__all__ = ["Vocabulary", "json_schema_grammar", "vocabulary_for"]

logger = logging.getLogger(__name__)

_GRAMMAR_CACHE_SIZE = 64
_TEXT_ANSWER_REGEX = r"[^{\s][\s\S]*"
_FREE_FORM_RULE = re.compile(r"^(basic_array_items|basic_object_properties) ::= (.*)$", re.M)


class Vocabulary:
    """A tokenizer as xgrammar sees it, its compiler, the tokens rollouts use, and an LRU cache of
    the grammars compiled for it (safe to drop)."""

    def __init__(self, tokenizer: Any, vocab_size: int | None) -> None:
        self.info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.size: int = self.info.vocab_size
        self.compiler = xgr.GrammarCompiler(
            self.info, max_threads=min(8, os.cpu_count() or 1), cache_enabled=False
        )
        self.rollout_tokens = rollout_tokens(self.info.decoded_vocab)
        self._grammars: collections.OrderedDict[str, tuple[xgr.CompiledGrammar, str | None]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def grammar(
        self,
        *,
        tools: Sequence[Tool[..., Any]],
        single_call: bool,
        answer_schema: dict[str, Any] | None,
        allows_text: bool,
    ) -> tuple[xgr.CompiledGrammar, str | None]:
        """The compiled grammar for these tools, answer schema and text alternative, and a note
        where it is looser than the schema (cached)."""
        key = json.dumps(
            {
                "tools": [[tool.name, tool.parameters] for tool in tools],
                "single_call": single_call,
                "answer": answer_schema,
                "text": allows_text,
            },
            sort_keys=True,
        )
        with self._lock:
            if key in self._grammars:
                self._grammars.move_to_end(key)
                return self._grammars[key]
        alternatives = []
        notes = []
        if tools:
            calls, note = _tool_calls_grammar(tools, single_call=single_call)
            alternatives.append(calls)
            notes.extend(note)
        if answer_schema is not None:
            answer, note = _schema_grammar(answer_schema, what="the response_format schema")
            alternatives.append(answer)
            notes.extend(note)
        if allows_text:
            alternatives.append(xgr.Grammar.from_regex(_TEXT_ANSWER_REGEX))
        grammar = alternatives[0] if len(alternatives) == 1 else xgr.Grammar.union(*alternatives)
        compiled = self.compiler.compile_grammar(grammar)
        entry = (compiled, "; ".join(notes) or None)
        with self._lock:
            self._grammars[key] = entry
            while len(self._grammars) > _GRAMMAR_CACHE_SIZE:
                self._grammars.popitem(last=False)
        return entry


_VOCABULARIES: weakref.WeakKeyDictionary[Any, dict[int | None, Vocabulary]] = (
    weakref.WeakKeyDictionary()
)
_VOCABULARIES_LOCK = threading.Lock()


def vocabulary_for(tokenizer: Any, vocab_size: int | None) -> Vocabulary:
    """The xgrammar view of ``tokenizer``, built once per tokenizer and logits width."""
    # TokenizerInfo takes ~0.1 s to build from a 49k vocabulary: once per tokenizer.
    with _VOCABULARIES_LOCK:
        per_size = _VOCABULARIES.setdefault(tokenizer, {})
        if vocab_size not in per_size:
            per_size[vocab_size] = Vocabulary(tokenizer, vocab_size)
        return per_size[vocab_size]


def json_schema_grammar(schema: Mapping[str, Any], *, strict_mode: bool = True) -> xgr.Grammar:
    """The compact grammar constrained decoding uses for ``schema``; raises when xgrammar cannot
    convert it. ``strict_mode``: no properties or items the schema does not name (xgrammar's)."""
    grammar = xgr.Grammar.from_json_schema(
        json.dumps(schema), any_whitespace=False, separators=(",", ":"), strict_mode=strict_mode
    )
    return _compact_free_form(grammar)


def _compact_free_form(grammar: xgr.Grammar) -> xgr.Grammar:
    """xgrammar 0.2.8 writes ``", "`` in its free-form JSON rules whatever the separators; make
    them ``","``. The grammar is kept as it was if its text does not parse back."""
    text = str(grammar)
    patched = _FREE_FORM_RULE.sub(
        lambda m: f"{m[1]} ::= {m[2].replace(chr(34) + ', ' + chr(34), chr(34) + ',' + chr(34))}",
        text,
    )
    if patched == text:
        return grammar
    try:
        return xgr.Grammar.from_ebnf(patched)
    except Exception:  # xgrammar raises RuntimeError or its own errors; keep the original then
        logger.debug("xgrammar did not parse back its own grammar; keeping ', ' separators")
        return grammar


def _schema_grammar(schema: Mapping[str, Any], *, what: str) -> tuple[xgr.Grammar, list[str]]:
    try:
        return _strict_or_not(schema, what=what)
    except Exception as exc:  # any refusal of xgrammar's converter must not fail the request
        loose: dict[str, Any] = ANY_OBJECT if schema.get("type") == "object" else {}
        kind = "any JSON object" if loose else "any JSON value"
        note = f"xgrammar could not compile {what} ({_reason(exc)}); constrained to {kind}"
        return json_schema_grammar(loose), [note]


def _tool_calls_grammar(
    tools: Sequence[Tool[..., Any]], *, single_call: bool
) -> tuple[xgr.Grammar, list[str]]:
    what = "the tool calls schema"
    try:
        return _strict_or_not(tool_calls_schema(tools, single_call=single_call), what=what)
    except Exception as exc:
        whole = _reason(exc)
    loose = set()
    notes = []
    for tool in tools:
        try:
            json_schema_grammar(tool.parameters, strict_mode=False)
        except Exception as exc:
            loose.add(tool.name)
            notes.append(
                f"xgrammar could not compile the parameters of tool {tool.name!r} "
                f"({_reason(exc)}); its arguments are constrained to any JSON object"
            )
    try:
        schema = tool_calls_schema_of(tools, single_call=single_call, loose=frozenset(loose))
        grammar, strict_note = _strict_or_not(schema, what=what)
        return grammar, notes + strict_note
    except Exception:
        everything = frozenset(tool.name for tool in tools)
        schema = tool_calls_schema_of(tools, single_call=single_call, loose=everything)
        note = f"xgrammar could not compile the tool calls ({whole}); arguments are any JSON object"
        return json_schema_grammar(schema), [note]


def _strict_or_not(schema: Mapping[str, Any], *, what: str) -> tuple[xgr.Grammar, list[str]]:
    """Strict mode where xgrammar takes it (it refuses e.g. minProperties beyond the named
    properties), else the plain schema, with a note; raises when neither converts."""
    try:
        return json_schema_grammar(schema), []
    except Exception as exc:
        grammar = json_schema_grammar(schema, strict_mode=False)
        note = (
            f"xgrammar could not compile {what} in strict mode ({_reason(exc)}); compiled "
            "without it, so properties the schema does not name may be generated"
        )
        return grammar, [note]


def _reason(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    # xgrammar's messages start "[hh:mm:ss] /project/cpp/<file>.cc:<line>: ".
    message = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0]) if lines else ""
    return f"{type(exc).__name__}: {message[:200]}"
