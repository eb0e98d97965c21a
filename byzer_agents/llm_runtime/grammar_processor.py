"""The logits processor of constrained decoding: it masks each step's logits to the tokens an
xgrammar grammar allows, offers forced text in the tokenizer's own tokens, and steers to a short
completion as the token budget runs out.

- **Forced text in the tokenizer's own tokens.** Where the grammar allows one string only (keys,
  ``{"tool_calls":[{"name":"``), the model is given the first token of the tokenizer's encoding of
  it: left alone, SmolLM2-135M spelled such keys one character per token, 60 tokens where 25 do,
  and off the text it was trained on.
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
  limited to the feasible top-k tokens. A cut-off output is never passed as valid: the
  constraint's ``check()`` says it was cut off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import xgrammar as xgr
from transformers import LogitsProcessor

from byzer_agents.exceptions import ConfigurationError, UsageError

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.grammar_compiler import Vocabulary

__all__ = ["STEERING_SLACK", "STEERING_TOP_K", "GrammarLogitsProcessor", "rollout_tokens"]

logger = logging.getLogger(__name__)

STEERING_TOP_K = 8
"""How many of the model's best allowed tokens budget steering weighs at each step."""
STEERING_SLACK = 32
"""Steering starts when the budget left is within this many tokens of the shortest completion."""

_NUMPY_DTYPES = (torch.float32, torch.float16, torch.float64)

# Rollouts try closing tokens first (longest first), then separators (a value just ended: a
# digit would only make a number longer), one-token values, and openers.
_CLOSING_CHARS = b'"]}'
_FILLERS = (b",", b":", b"0", b'""', b"{}", b"[]", b"null", b"true", b"false", b"1")
_OPENERS = (b'"', b"[", b"{", b"-")


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks the logits of one ``generate()`` call (a batch of one) to the tokens the grammar
    allows, steering to a short completion as the token budget runs out (see the module doc)."""

    def __init__(
        self,
        grammar: xgr.CompiledGrammar,
        vocabulary: Vocabulary,
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
        self._bits = self._bitmask.numpy()  # the same memory, read a bit at a time
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
            raise ConfigurationError(
                f"GrammarLogitsProcessor takes a batch of one sequence, got {input_ids.shape[0]}"
            )
        length = int(input_ids.shape[1])
        last = None if self._prompt_length is None else int(input_ids[0, -1])
        return self.step(length, last, scores)

    def step(
        self, length: int, last_token: int | None, scores: torch.FloatTensor
    ) -> torch.FloatTensor:
        """Mask ``scores`` (shape ``(1, vocab)``, in place, returned) for the next token of a
        sequence now ``length`` tokens long whose last token is ``last_token`` (None at the
        first step: the prompt's end). ``__call__`` for engines that keep the ids themselves."""
        if self._prompt_length is None:
            self._prompt_length = length
        else:
            if length != self._prompt_length + self._seen + 1:
                raise UsageError(
                    "this GrammarLogitsProcessor already served another generate() call; take a "
                    "fresh one from Constraint.logits_processor for each call"
                )
            self._seen += 1
            if last_token is None:
                raise UsageError(
                    f"GrammarLogitsProcessor.step needs the last token after the first step "
                    f"(sequence length {length}); got None"
                )
            self._accept(last_token)
        if self.rejected_token is not None or self._matcher.is_terminated():
            _keep_only(scores, self._matcher.stop_token_ids)
            return scores
        # False: every token is allowed (no mask to apply).
        masks = self._matcher.fill_next_token_bitmask(self._bitmask)
        forced = self._forced_token(scores)
        if forced is not None:
            # Only the forced token stays: the rest of the mask need not be written first.
            _keep_only(scores, [forced])
            return scores
        _apply_bitmask(scores, self._bitmask if masks else None, self._vocabulary.size)
        if self._budget_steering:
            self._steer(scores, left_after=self._max_new_tokens - self._seen - 1)
        return scores

    def _forced_token(self, scores: torch.Tensor) -> int | None:
        """The first of the tokenizer's own tokens for the text the grammar forces now, if any,
        when the mask (filled, not yet applied) allows it. Left alone, a small model spells
        forced keys one character per token."""
        forced = self._matcher.find_jump_forward_string()
        if not forced:
            return None
        ids = self._tokens_of(forced)
        if not ids or not self._allowed(ids[0], width=int(scores.shape[-1])):
            return None
        return ids[0] if math.isfinite(float(scores[0, ids[0]])) else None

    def _allowed(self, token: int, *, width: int) -> bool:
        """Whether the filled mask allows ``token`` (padded rows past the vocabulary never)."""
        if not 0 <= token < min(self._vocabulary.size, width):
            return False
        return bool((int(self._bits[0, token >> 5]) >> (token & 31)) & 1)

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
            t
            for v, t in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            if math.isfinite(v)
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
        if len(feasible) < _count_finite(scores):
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


def _apply_bitmask(scores: torch.Tensor, bitmask: torch.Tensor | None, vocab_size: int) -> None:
    """Mask ``scores`` by ``bitmask`` (None: every token allowed) and the padded rows."""
    if bitmask is not None:
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


def _cpu_row(scores: torch.Tensor) -> np.ndarray | None:
    """The first row of ``scores`` as a numpy view when it lives on the CPU in a dtype numpy
    has: numpy's single-threaded loops beat torch's on one vocabulary-wide row here (torch may
    split them across threads that llama.cpp's decode threads keep busy)."""
    if scores.device.type != "cpu" or scores.dtype not in _NUMPY_DTYPES:
        return None
    return scores.detach().numpy()[0]


def _count_finite(scores: torch.Tensor) -> int:
    """How many tokens of the first row are still allowed (finite)."""
    row = _cpu_row(scores)
    if row is not None:
        return int(np.count_nonzero(np.isfinite(row)))
    return int(torch.isfinite(scores[0]).sum())


def _keep_only(scores: torch.Tensor, token_ids: Sequence[int]) -> None:
    kept_ids = list(token_ids)
    row = _cpu_row(scores) if scores.shape[0] == 1 else None
    if row is not None:
        kept_values = row[kept_ids]  # a copy (fancy indexing)
        row.fill(-np.inf)
        row[kept_ids] = kept_values
        return
    kept = torch.tensor(kept_ids, dtype=torch.long, device=scores.device)
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


def rollout_tokens(decoded_vocab: Sequence[bytes]) -> list[int]:
    """The tokens a rollout tries, best first: closers, then fillers and openers."""
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
