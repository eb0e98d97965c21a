"""Generation with transformers, on the batcher's worker thread: a group of jobs left-padded into
one ``generate`` call, each row ended at its own end token, stop string or token limit, and a
stream's tokens handed out as they are made.

What is fragile: stop strings and per-request token limits inside one batch are enforced by
``RowStops``, one stopping criterion that records where each row ended; the text after a row's end
is padding. Seeded sampling runs alone (``GenerationJob.batchable``): a shared batch would make a
seeded draw depend on its neighbours.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from transformers.generation import (
    BaseStreamer,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from byzer_agents.llm_runtime.backends.local_chat import Sampling

if TYPE_CHECKING:  # grammar_processor.py needs xgrammar, which is optional
    from byzer_agents.llm_runtime.grammar_processor import GrammarLogitsProcessor

__all__ = [
    "Generated",
    "GenerationJob",
    "RowStops",
    "TransformersGenerator",
    "cut_at_stop",
    "without_partial_end",
]

_STOP_WINDOW_SLACK = 4
"""Tokens decoded beyond a stop string's length when looking for it at the end of the output."""


@dataclass(frozen=True)
class Generated:
    """One job's answer, as generated."""

    token_ids: list[int]
    """The new tokens, up to and including the one that ended the answer."""
    text: str
    """Their text, cut before any stop string."""
    finish_reason: Literal["stop", "length"]


@dataclass
class GenerationJob:
    """One request on its way to the worker thread."""

    prompt_ids: list[int]
    max_new_tokens: int
    stop: tuple[str, ...]
    sampling: Sampling
    seed: int | None = None
    end_ids: frozenset[int] = frozenset()
    """Token ids that end this answer besides the model's own (a caller's chat template's)."""
    logits_processor: GrammarLogitsProcessor | None = None
    tokens: queue.Queue[list[int] | None] | None = None
    """Set for a stream: each new token goes here as it is made, then None."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the stream's reader goes away: the decode ends at its next token."""
    stop_requested: threading.Event | None = None
    """The caller's own signal to end the decode (``stream(cancelled=...)``); never set here."""
    future: Future[Generated] = field(default_factory=Future)

    @property
    def stopped(self) -> bool:
        """Whether the reader went away or the caller asked the decode to end."""
        return self.cancelled.is_set() or (
            self.stop_requested is not None and self.stop_requested.is_set()
        )

    @property
    def batchable(self) -> bool:
        """Streams, constrained and seeded sampled jobs run alone."""
        seeded_draw = self.sampling.temperature is not None and self.seed is not None
        return self.tokens is None and self.logits_processor is None and not seeded_draw

    @property
    def batch_key(self) -> Hashable:
        """A batch shares its sampling settings and end tokens."""
        return (self.sampling, self.end_ids)

    def release(self) -> None:
        """Tell a stream's reader that no more tokens come."""
        if self.tokens is not None:
            self.tokens.put(None)


class TransformersGenerator:
    """Runs groups of jobs through one model's ``generate``, and decodes what it made. The
    tokenizer is shared with the request side, under one lock (fast tokenizers are not
    thread-safe)."""

    def __init__(
        self, model: Any, tokenizer: Any, *, device: torch.device, eos_ids: frozenset[int]
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.eos_ids = eos_ids
        pad_id = tokenizer.pad_token_id
        self.pad_id = int(pad_id if pad_id is not None else min(eos_ids))
        self._tokenizer_lock = threading.RLock()
        # Written by the worker thread only: how the requests were batched (for meta()).
        self.requests_served = self.batches_run = self.largest_batch = 0

    def encode(self, text: str) -> list[int]:
        """``text``'s token ids (no special tokens added)."""
        with self._tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids``, special tokens left out."""
        with self._tokenizer_lock:
            return str(self.tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def run(self, jobs: list[GenerationJob]) -> None:
        """Generate one group of jobs together, resolving each job's future."""
        started = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        try:
            if started:
                self.batches_run += 1
                self.requests_served += len(started)
                self.largest_batch = max(self.largest_batch, len(started))
                results = self._generate(started)
                for job, result in zip(started, results, strict=True):
                    job.future.set_result(result)
        except BaseException as exc:
            for job in started:
                if not job.future.done():
                    job.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            for job in jobs:
                job.release()

    def partial_texts(self, job: GenerationJob) -> Iterator[str]:
        """A stream's text so far, each time a token arrives, held back where it may be the
        start of a stop string or of a character whose bytes are not all there."""
        assert job.tokens is not None
        token_ids: list[int] = []
        while True:
            new = job.tokens.get()
            if new is None:
                return
            token_ids.extend(new)
            text = self.decode([t for t in token_ids if not self._ends(job, t)])
            cut = cut_at_stop(text, job.stop)
            if cut is not None:
                yield cut
                return
            yield without_partial_end(text, job.stop)

    def _ends(self, job: GenerationJob, token_id: int) -> bool:
        return token_id in self.eos_ids or token_id in job.end_ids

    def _generate(self, jobs: list[GenerationJob]) -> list[Generated]:
        width = max(len(job.prompt_ids) for job in jobs)
        input_ids = torch.tensor(
            [[self.pad_id] * (width - len(job.prompt_ids)) + job.prompt_ids for job in jobs],
            device=self.device,
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(job.prompt_ids)) + [1] * len(job.prompt_ids) for job in jobs],
            device=self.device,
        )
        row_stops = RowStops(jobs, width, self.eos_ids, self.decode)
        options: dict[str, Any] = {
            "max_new_tokens": max(job.max_new_tokens for job in jobs),
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids),
            "stopping_criteria": StoppingCriteriaList([row_stops]),
        }
        sampling = jobs[0].sampling
        if sampling.temperature is None:
            options["do_sample"] = False
        else:
            # OpenAI's sampling has no top-k: only temperature and nucleus (top_p).
            options.update(
                do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0
            )
        processors = [job.logits_processor for job in jobs if job.logits_processor is not None]
        if processors:
            options["logits_processor"] = LogitsProcessorList(processors)
        if jobs[0].tokens is not None:
            options["streamer"] = _TokenStreamer(jobs[0].tokens)
        seed = jobs[0].seed if sampling.temperature is not None else None
        with self._seeded(seed), torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, **options
            )
        results = []
        for row, job in enumerate(jobs):
            new_tokens = output[row, width:].tolist()
            end, reason = row_stops.ended[row] or (len(new_tokens), "length")
            kept = new_tokens[:end]
            text = self.decode([t for t in kept if not self._ends(job, t)])
            cut = cut_at_stop(text, job.stop)
            results.append(
                Generated(
                    token_ids=kept,
                    text=text if cut is None else cut,
                    finish_reason="stop" if cut is not None else reason,
                )
            )
        return results

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """Draws from ``seed`` inside, leaving the process's random state as it was."""
        if seed is None:
            yield
            return
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield


class RowStops(StoppingCriteria):
    """Ends each row of a batch at its own end token, stop string or token limit, and records
    where: ``ended[row] = (new tokens kept, reason)``."""

    def __init__(
        self,
        jobs: Sequence[GenerationJob],
        prompt_width: int,
        eos_ids: frozenset[int],
        decode: Callable[[Sequence[int]], str],
    ) -> None:
        self._jobs = list(jobs)
        self._prompt_width = prompt_width
        self._eos_ids = eos_ids
        self._decode = decode
        self._windows = [
            max((len(stop) for stop in job.stop), default=0) + _STOP_WINDOW_SLACK for job in jobs
        ]
        self.ended: list[tuple[int, Literal["stop", "length"]] | None] = [None] * len(jobs)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        produced = input_ids.shape[1] - self._prompt_width
        for row, job in enumerate(self._jobs):
            if self.ended[row] is None:
                self.ended[row] = self._end(
                    row, job, input_ids[row, self._prompt_width :], produced
                )
        done = [end is not None for end in self.ended]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _end(
        self, row: int, job: GenerationJob, new_tokens: torch.Tensor, produced: int
    ) -> tuple[int, Literal["stop", "length"]] | None:
        last = int(new_tokens[-1])
        if job.stopped or last in self._eos_ids or last in job.end_ids:
            return produced, "stop"
        if job.stop:
            tail = self._decode(new_tokens[-self._windows[row] :].tolist())
            if any(stop in tail for stop in job.stop):
                return produced, "stop"
        if produced >= job.max_new_tokens:
            return produced, "length"
        return None


class _TokenStreamer(BaseStreamer):
    """Hands each new token of a one-row generation to a queue (the prompt, put first, is
    skipped)."""

    def __init__(self, tokens: queue.Queue[list[int] | None]) -> None:
        self._tokens = tokens
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._tokens.put([int(token) for token in value.reshape(-1).tolist()])

    def end(self) -> None:
        self._tokens.put(None)


def cut_at_stop(text: str, stops: Sequence[str]) -> str | None:
    """``text`` before its first stop string; None when it holds none."""
    positions = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return text[: min(positions)] if positions else None


def without_partial_end(text: str, stops: Sequence[str]) -> str:
    """``text`` less a last character still missing bytes, and less an end that may begin a
    stop string."""
    text = text.removesuffix("\ufffd")
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                text = text[: len(text) - size]
                break
    return text
