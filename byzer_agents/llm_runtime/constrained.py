"""Constrained decoding for local transformers models: a request's ``response_format`` or ``tools``
become an xgrammar grammar whose token mask keeps ``generate()`` inside the schema.

The transformers backend calls ``build_constraint(request, tokenizer, max_new_tokens=...)`` and gets
``None`` (nothing to constrain) or a ``Constraint``: ``logits_processor`` for one ``generate()``
call, ``to_message(text)`` to turn the output into content or tool calls, and ``check(text)``, the
validation every output goes through. What is fragile here, and what is done about it:

- **The grammar is not the schema.** xgrammar 0.2.8 turns some allOf / not / enum schemas into
  accept-any-JSON grammars without a word, ignores parent properties beside a oneOf, and refuses to
  compile others. A schema it refuses does not fail the request: that part of the grammar falls back
  to any JSON (any object for a tool's arguments) and ``Constraint.fallback`` says so. Either way
  ``check()`` validates the output with jsonschema and every known format: never trust the grammar
  alone. Benchmarked in benchmarks/bench_schema_coverage.py.
- **Compact JSON.** Grammars allow no free whitespace and use ``,`` / ``:`` separators. xgrammar
  0.2.8 writes its rules for free-form JSON (a value of any type, an object without declared
  properties) with ``", "`` whatever the separators say, so those two rules are rewritten to ``,``:
  no token goes to a space.
- **Forced text in the tokenizer's own tokens.** Where the grammar allows one string only (keys,
  ``{"tool_calls":[{"name":"``), the model is given the first token of the tokenizer's encoding of
  it: left alone, SmolLM2-135M spelled such keys one character per token, 60 tokens where 25 do,
  and off the text it was trained on.
- **Key order and extra keys.** Properties come in schema order, and where a schema says nothing
  about other properties none are generated (xgrammar's strict mode): the grammar yields a subset
  of the valid instances, which is what a model should write anyway.
- **Budget steering.** A grammar alone lets a model spend its ``max_new_tokens`` on a long string
  and be cut off mid-JSON. While the budget is within ``STEERING_SLACK`` tokens of the shortest
  completion, each step takes the model's ``STEERING_TOP_K`` best grammar-allowed tokens and, for
  each, estimates the shortest completion after it by a greedy rollout on a forked matcher: the
  forced text (xgrammar's jump-forward string, counted in the tokenizer's tokens), else the longest
  allowed closing token (``"``, ``]``, ``}`` and runs of them such as ``"}``), else a short filler
  (``,``, ``0``, ``""``, ``{}``, ``null`` ...), else the lowest-id allowed token. Tokens whose
  completion would no longer fit are masked, so the model writes freely while it can and closes in
  time; if none fits, only the rollout's own first token is left. Limits: the rollout is a
  heuristic, not the true shortest path (it can miss a shorter anyOf branch or a longer token that
  would close faster), so a very tight budget can still end cut off; when the shortest completion
  itself is longer than the budget (many required fields) nothing helps; and closing early means
  short values (``""``, ``0``, the first enum member the rollout finds). Near the end, sampling is
  limited to the feasible top-k tokens. A cut-off output is never passed as valid: ``check()`` says
  it was cut off.
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

import collections
import functools
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import xgrammar as xgr
from transformers import LogitsProcessor

from byzer_agents.llm_runtime.structured_output import (
    ANY_OBJECT,
    OutputSpec,
    output_spec,
    tool_calls_schema,
    tool_calls_schema_of,
)
from byzer_agents.tools import Tool
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

STEERING_TOP_K = 8
"""How many of the model's best allowed tokens budget steering weighs at each step."""
STEERING_SLACK = 32
"""Steering starts when the budget left is within this many tokens of the shortest completion."""

_GRAMMAR_CACHE_SIZE = 64
_TEXT_ANSWER_REGEX = r"[^{\s][\s\S]*"
# Rollouts try closing tokens first (longest first), then separators (a value just ended: a
# digit would only make a number longer), one-token values, and openers.
_CLOSING_CHARS = b'"]}'
_FILLERS = (b",", b":", b"0", b'""', b"{}", b"[]", b"null", b"true", b"false", b"1")
_OPENERS = (b'"', b"[", b"{", b"-")
_FREE_FORM_RULE = re.compile(r"^(basic_array_items|basic_object_properties) ::= (.*)$", re.M)


# --- the public front door ------------------------------------------------------------------


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
    vocabulary = _vocabulary(tokenizer, vocab_size)
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
        vocabulary: _Vocabulary,
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


# --- the logits processor -------------------------------------------------------------------


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks the logits of one ``generate()`` call (a batch of one) to the tokens the grammar
    allows, steering to a short completion as the token budget runs out (see the module doc)."""

    def __init__(
        self,
        grammar: xgr.CompiledGrammar,
        vocabulary: _Vocabulary,
        *,
        encode: Callable[[str], list[int]],
        max_new_tokens: int,
        budget_steering: bool,
        stop_token_ids: Sequence[int] | None = None,
    ) -> None:
        self._matcher = xgr.GrammarMatcher(
            grammar, override_stop_tokens=list(stop_token_ids) if stop_token_ids else None
        )
        self._vocabulary = vocabulary
        self._encode = encode
        self._encoded: dict[str, list[int]] = {}
        self._bitmask = xgr.allocate_token_bitmask(1, vocabulary.size)
        self._scratch = xgr.allocate_token_bitmask(1, vocabulary.size)
        self._max_new_tokens = max_new_tokens
        self._budget_steering = budget_steering
        self._prompt_length: int | None = None
        self._seen = 0
        self.steered_steps = 0
        """Steps at which budget steering took tokens away from the model's choice."""
        self.rejected_token: int | None = None
        """A token the grammar refused (another processor forced it); generation is then ended."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != 1:
            raise ValueError(
                f"GrammarLogitsProcessor takes a batch of one sequence, got {input_ids.shape[0]}"
            )
        length = int(input_ids.shape[1])
        if self._prompt_length is None:
            self._prompt_length = length
        else:
            if length != self._prompt_length + self._seen + 1:
                raise RuntimeError(
                    "this GrammarLogitsProcessor already served another generate() call; take a "
                    "fresh one from Constraint.logits_processor for each call"
                )
            self._seen += 1
            self._accept(int(input_ids[0, -1]))
        if self.rejected_token is not None or self._matcher.is_terminated():
            _keep_only(scores, self._matcher.stop_token_ids)
            return scores
        self._matcher.fill_next_token_bitmask(self._bitmask)
        _apply_bitmask(scores, self._bitmask, self._vocabulary.size)
        forced = self._forced_token(scores)
        if forced is not None:
            _keep_only(scores, [forced])
        elif self._budget_steering:
            self._steer(scores, left_after=self._max_new_tokens - self._seen - 1)
        return scores

    def _forced_token(self, scores: torch.Tensor) -> int | None:
        """The first of the tokenizer's own tokens for the text the grammar forces now, if any.
        Left alone, a small model spells forced keys one character per token."""
        forced = self._matcher.find_jump_forward_string()
        if not forced:
            return None
        ids = self._tokens_of(forced)
        if ids and bool(torch.isfinite(scores[0, ids[0]])):
            return ids[0]
        return None

    def _tokens_of(self, text: str) -> list[int]:
        ids = self._encoded.get(text)
        if ids is None:
            ids = self._encoded[text] = list(self._encode(text))
        return ids

    def _accept(self, token: int) -> None:
        if self._matcher.is_terminated() or self.rejected_token is not None:
            return
        if not self._matcher.accept_token(token):
            self.rejected_token = token
            logger.warning("the grammar refused token %d; ending generation", token)

    # --- budget steering ----------------------------------------------------------------------

    def _steer(self, scores: torch.Tensor, *, left_after: int) -> None:
        """Keep only tokens after which a completion still fits in ``left_after`` tokens."""
        now_length, now_first = self._rollout(self._matcher.fork(), cap=left_after + 1)
        if now_length is not None and now_length + STEERING_SLACK <= left_after + 1:
            return
        top = torch.topk(scores[0], k=min(STEERING_TOP_K, scores.shape[-1]))
        candidates = [
            int(t) for v, t in zip(top.values, top.indices, strict=True) if torch.isfinite(v)
        ]
        if self._matcher.is_completed():
            candidates.extend(self._matcher.stop_token_ids)
        if now_first is not None:
            candidates.append(now_first)
        feasible = []
        for token in dict.fromkeys(candidates):
            fork = self._matcher.fork()
            if fork.accept_token(token) and self._rollout(fork, cap=left_after)[0] is not None:
                feasible.append(token)
        if not feasible:
            # Nothing fits: the rollout's first token is the quickest way toward closing.
            feasible = [now_first] if now_first is not None else candidates[:1]
        if not feasible:
            return
        allowed = torch.isfinite(scores[0]).sum()
        if len(feasible) < int(allowed):
            self.steered_steps += 1
            _keep_only(scores, feasible)

    def _rollout(self, matcher: xgr.GrammarMatcher, *, cap: int) -> tuple[int | None, int | None]:
        """(tokens a greedy completion takes, or None past ``cap``; its first token). Advances
        ``matcher``, so pass a fork."""
        steps = 0
        first: int | None = None
        while not (matcher.is_completed() or matcher.is_terminated()):
            if steps >= cap:
                return None, first
            taken = self._rollout_step(matcher)
            if not taken:
                return None, first
            if first is None:
                first = taken[0]
            steps += len(taken)
        return (steps if steps <= cap else None), first

    def _rollout_step(self, matcher: xgr.GrammarMatcher) -> list[int]:
        forced = matcher.find_jump_forward_string()
        if forced:
            taken = []
            for token in self._tokens_of(forced):
                if not matcher.accept_token(token):
                    break
                taken.append(token)
            if taken:
                return taken
        for token in self._vocabulary.rollout_tokens:
            if matcher.accept_token(token):
                return [token]
        matcher.fill_next_token_bitmask(self._scratch)
        lowest = _lowest_allowed(self._scratch)
        if lowest is not None and matcher.accept_token(lowest):
            return [lowest]
        return []


def _apply_bitmask(scores: torch.Tensor, bitmask: torch.Tensor, vocab_size: int) -> None:
    # "auto" would pick triton on a GPU, an optional dependency of xgrammar.
    backend: Literal["cpu", "torch_native"] = (
        "cpu" if scores.device.type == "cpu" else "torch_native"
    )
    xgr.apply_token_bitmask_inplace(
        scores,
        bitmask.to(scores.device),
        vocab_size=min(vocab_size, scores.shape[-1]),
        backend=backend,
    )
    if scores.shape[-1] > vocab_size:
        scores[:, vocab_size:] = float("-inf")  # padded embedding rows are never tokens


def _keep_only(scores: torch.Tensor, token_ids: Sequence[int]) -> None:
    kept = torch.tensor(list(token_ids), dtype=torch.long, device=scores.device)
    values = scores[:, kept].clone()
    scores.fill_(float("-inf"))
    scores[:, kept] = values


def _lowest_allowed(bitmask: torch.Tensor) -> int | None:
    row = bitmask[0]
    nonzero = torch.nonzero(row)
    if nonzero.numel() == 0:
        return None
    word_index = int(nonzero[0, 0])
    word = int(row[word_index]) & 0xFFFFFFFF
    return word_index * 32 + (word & -word).bit_length() - 1


# --- grammars, per tokenizer ----------------------------------------------------------------


class _Vocabulary:
    """A tokenizer as xgrammar sees it, its compiler, the tokens rollouts use, and an LRU cache of
    the grammars compiled for it (safe to drop)."""

    def __init__(self, tokenizer: Any, vocab_size: int | None) -> None:
        self.info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.size: int = self.info.vocab_size
        self.compiler = xgr.GrammarCompiler(
            self.info, max_threads=min(8, os.cpu_count() or 1), cache_enabled=False
        )
        self.rollout_tokens = _rollout_tokens(self.info.decoded_vocab)
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


_VOCABULARIES: weakref.WeakKeyDictionary[Any, dict[int | None, _Vocabulary]] = (
    weakref.WeakKeyDictionary()
)
_VOCABULARIES_LOCK = threading.Lock()


def _vocabulary(tokenizer: Any, vocab_size: int | None) -> _Vocabulary:
    # TokenizerInfo takes ~0.1 s to build from a 49k vocabulary: once per tokenizer.
    with _VOCABULARIES_LOCK:
        per_size = _VOCABULARIES.setdefault(tokenizer, {})
        if vocab_size not in per_size:
            per_size[vocab_size] = _Vocabulary(tokenizer, vocab_size)
        return per_size[vocab_size]


def _rollout_tokens(decoded_vocab: Sequence[bytes]) -> list[int]:
    by_text: dict[bytes, int] = {}
    for token_id, text in enumerate(decoded_vocab):
        by_text.setdefault(text, token_id)
    closers = sorted(
        (text for text in by_text if text and all(c in _CLOSING_CHARS for c in text)),
        # Inside a string "]" and "}" are content: closers that start by closing the string first.
        key=lambda text: (not text.startswith(b'"'), -len(text), by_text[text]),
    )
    others = [text for text in (*_FILLERS, *_OPENERS) if text in by_text and text not in closers]
    return [by_text[text] for text in (*closers, *others)]


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
