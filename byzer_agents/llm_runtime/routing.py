"""Fallbacks and cooldowns: a deployment that fails a call, after its own retries, hands the call
to the next deployment it names, and a deployment that keeps failing is skipped for a while.

These are the routing ideas LiteLLM's users value, written here (LiteLLM itself is not a
dependency). A SaaS deployment names its fallbacks when it is deployed::

    llm.deploy(pretrained_model_type="saas/deepseek", udf_name="chat",
               infer_params={"saas.api_key": ..., "saas.fallbacks": "chat-moonshot,local-qwen",
                             "saas.cooldown_s": 60, "saas.cooldown_after": 3})

The setting lives in the deployment's spec, so every process that finds ``chat`` gets the same
fallbacks; routing happens on the client side (``LLM`` wraps such a deployment in a
``FallbackRouter`` when it resolves it), because a fallback is another deployment, with workers of
its own, and a worker should not call other deployments from inside its request slot. So the
cooldown state belongs to the client process: each ``LLM`` learns on its own which deployments
are failing. Rules:

- deployments are asked in order, the primary first; each may retry inside itself (its
  ``saas.retry_count``) before it counts as failed;
- any failure falls through to the next deployment; a stream falls through only before its first
  chunk;
- ``cooldown_after`` consecutive failed calls cool a deployment down for ``cooldown_s`` seconds,
  during which it is skipped; failures that are the request's fault (400, 422 and other 4xx but
  401, 403, 404, 408, 429) do not count, as a healthy deployment would refuse them too;
- a success resets the count; when every deployment is cooling down the call fails at once with
  ``ModelCoolingDownError`` saying when the first is back;
- fallbacks are one level deep: a fallback's own fallbacks are not followed.

The answer carries every request made for it (``core/call_attempts.py``), so the trace shows the
failed ones and which deployment answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from byzer_agents.core.call_attempts import attach_call_attempts, take_call_attempts
from byzer_agents.core.protocol import Capabilities, ChatBackend, achat, astream
from byzer_agents.exceptions import CallAttempt, ModelCallError, ModelCoolingDownError
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = [
    "CooldownPolicy",
    "Cooldowns",
    "FallbackRouter",
    "counts_against_deployment",
    "with_fallbacks",
]

logger = logging.getLogger(__name__)

_DEPLOYMENT_FAULTS = frozenset({401, 403, 404, 408, 429})
"""4xx answers that say the deployment cannot serve (bad key, unknown model, overloaded), unlike
other 4xx, which say the request is wrong."""


def counts_against_deployment(error: BaseException) -> bool:
    """Whether a failure says something about the deployment rather than the request."""
    status = getattr(error, "status_code", None)
    return status is None or status >= 500 or status in _DEPLOYMENT_FAULTS


@dataclass(frozen=True, kw_only=True)
class CooldownPolicy:
    """When a deployment that keeps failing is skipped, and for how long."""

    cooldown_s: float = 60.0
    """How long a deployment that keeps failing is skipped; 0: never skipped."""
    failures: int = 3
    """Consecutive failed calls that start a cooldown."""


class Cooldowns:
    """Consecutive failures per deployment and the time each is skipped until; thread-safe."""

    def __init__(
        self, policy: CooldownPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def ready_in(self, name: str) -> float:
        """Seconds until ``name`` may be asked again; 0 when it may now."""
        with self._lock:
            return max(0.0, self._until.get(name, 0.0) - self._clock())

    def failed(self, name: str, error: BaseException) -> None:
        """Count a failed call against ``name``; enough in a row start its cooldown."""
        if not counts_against_deployment(error) or self.policy.cooldown_s <= 0:
            return
        with self._lock:
            count = self._failures.get(name, 0) + 1
            self._failures[name] = count
            if count >= self.policy.failures:
                self._until[name] = self._clock() + self.policy.cooldown_s
                self._failures[name] = 0
                logger.warning(
                    "%s failed %d calls in a row; skipped for %g s", name, count,
                    self.policy.cooldown_s,
                )  # fmt: skip

    def succeeded(self, name: str) -> None:
        """A call to ``name`` succeeded: its failures and cooldown are cleared."""
        with self._lock:
            self._failures.pop(name, None)
            self._until.pop(name, None)


class FallbackRouter:
    """A ChatBackend that asks ``primary``, then each fallback deployment in turn, skipping the
    ones cooling down. ``find`` gives the deployment called a name (None: there is none)."""

    def __init__(
        self,
        name: str,
        primary: ChatBackend,
        fallbacks: Sequence[str],
        *,
        find: Callable[[str], ChatBackend | None],
        cooldowns: Cooldowns | None = None,
    ) -> None:
        self.name = name
        self.primary = primary
        self.fallbacks = tuple(fallbacks)
        self.cooldowns = cooldowns or Cooldowns(CooldownPolicy())
        self._find = find
        self._found: dict[str, ChatBackend] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FallbackRouter({self.name!r}, fallbacks={list(self.fallbacks)})"

    @property
    def capabilities(self) -> Capabilities:
        """The primary's capabilities."""
        return self.primary.capabilities

    def meta(self) -> dict[str, Any]:
        """The primary's meta, with the fallbacks named."""
        return {**self.primary.meta(), "fallbacks": list(self.fallbacks)}

    # -- the one protocol -------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """The first answer among the primary and its fallbacks, in turn."""
        call = _Call(self)
        for name, backend in call.candidates():
            start = time.perf_counter()
            try:
                completion = backend.chat(_addressed(request, name))
            except Exception as error:
                call.failed(name, error, start)
                continue
            return call.answered(name, completion, start)
        raise call.no_answer()

    async def achat(self, request: ChatRequest) -> ChatCompletion:
        """``chat`` on the async protocol."""
        call = _Call(self)
        for name, backend in call.candidates():
            start = time.perf_counter()
            try:
                completion = await achat(backend, _addressed(request, name))
            except Exception as error:
                call.failed(name, error, start)
                continue
            return call.answered(name, completion, start)
        raise call.no_answer()

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The first stream that starts, among the primary and its fallbacks."""
        call = _Call(self)
        for name, backend in call.candidates():
            start = time.perf_counter()
            chunks = iter(backend.stream(_addressed(request, name)))
            try:
                first = next(chunks, None)
            except Exception as error:
                call.failed(name, error, start)
                continue
            call.streaming(name)
            try:
                if first is not None:
                    yield first
                yield from chunks  # once the answer has begun, a break is the caller's to see
            finally:
                _close(chunks)  # a caller that stops reading stops the deployment's generation
            return
        raise call.no_answer()

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """``stream`` on the async protocol."""
        call = _Call(self)
        for name, backend in call.candidates():
            start = time.perf_counter()
            chunks = astream(backend, _addressed(request, name))
            try:
                first = await anext(chunks, None)
            except Exception as error:
                call.failed(name, error, start)
                continue
            call.streaming(name)
            try:
                if first is not None:
                    yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await _aclose(chunks)  # stops the deployment's generation, as in stream()
            return
        raise call.no_answer()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The first embeddings among the primary and its fallbacks."""
        call = _Call(self)
        for name, backend in call.candidates():
            start = time.perf_counter()
            try:
                vectors = backend.embed(texts)
            except Exception as error:
                call.failed(name, error, start)
                continue
            self.cooldowns.succeeded(name)
            return vectors
        raise call.no_answer()

    # -- members ------------------------------------------------------------------------------

    def members(self) -> Iterator[tuple[str, ChatBackend | None]]:
        """Each deployment in the order asked; None for a fallback that is not deployed."""
        yield self.name, self.primary
        for name in self.fallbacks:
            yield name, self._member(name)

    def _member(self, name: str) -> ChatBackend | None:
        with self._lock:
            known = self._found.get(name)
        if known is not None:
            return known
        found = self._find(name)
        if isinstance(found, FallbackRouter):
            found = found.primary  # one level deep: no cycles, no surprises
        if found is not None:
            with self._lock:
                self._found[name] = found
        return found


class _Call:
    """The bookkeeping of one routed call: the attempts so far, and why each deployment did not
    answer."""

    def __init__(self, router: FallbackRouter) -> None:
        self.router = router
        self.attempts: list[CallAttempt] = []
        self.failures: list[tuple[str, BaseException | str]] = []
        self.cooling: list[tuple[str, float]] = []

    def candidates(self) -> Iterator[tuple[str, ChatBackend]]:
        for name, backend in self.router.members():
            if backend is None:
                reason = f"no deployment named {name!r} (a fallback of {self.router.name!r})"
                self.failures.append((name, reason))
                continue
            wait = self.router.cooldowns.ready_in(name)
            if wait > 0:
                self.cooling.append((name, wait))
                continue
            yield name, backend

    def failed(self, name: str, error: BaseException, start: float) -> None:
        self.router.cooldowns.failed(name, error)
        carried = getattr(error, "call_attempts", ())
        self.attempts.extend(
            carried
            or [
                CallAttempt(
                    deployment=name,
                    attempt=1,
                    latency_s=time.perf_counter() - start,
                    error=str(error),
                    status_code=getattr(error, "status_code", None),
                )
            ]
        )
        self.failures.append((name, error))
        logger.info("%s failed (%s); trying the next deployment", name, error)

    def answered(self, name: str, completion: ChatCompletion, start: float) -> ChatCompletion:
        self.router.cooldowns.succeeded(name)
        own = take_call_attempts(completion) or [
            CallAttempt(deployment=name, attempt=1, latency_s=time.perf_counter() - start)
        ]
        self.attempts.extend(own)
        if len(self.attempts) == 1 and name == self.router.name:
            return completion  # the primary answered at once: nothing more to trace
        return attach_call_attempts(completion, self.attempts)

    def streaming(self, name: str) -> None:
        self.router.cooldowns.succeeded(name)

    def no_answer(self) -> ModelCallError:
        if self.cooling and not self.attempts:
            names = [name for name, _ in self.cooling]
            return ModelCoolingDownError(
                self.router.name, names, retry_in_s=min(wait for _, wait in self.cooling)
            )
        reasons = [f"{name!r}: {error}" for name, error in self.failures]
        reasons += [f"{name!r}: cooling down for {wait:.1f} s" for name, wait in self.cooling]
        last = self.failures[-1][1] if self.failures else None
        return ModelCallError(
            self.router.name,
            "no deployment answered; " + "; ".join(reasons),
            status_code=getattr(last, "status_code", None),
            call_attempts=self.attempts,
        )


def _close(chunks: Iterator[ChatCompletionChunk]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def _aclose(chunks: AsyncIterator[ChatCompletionChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _addressed(request: ChatRequest, name: str) -> ChatRequest:
    """The request as sent to deployment ``name``: a request names the deployment it is for,
    which maps it to its own provider's model. The chat template and context length set for the
    model asked (``setup_template``, ``setup_max_model_length``) stay with it: a fallback is
    another model, and renders and counts with its own."""
    if request.model == name:
        return request
    return request.model_copy(update={"model": name, "chat_template": None, "max_model_len": None})


def with_fallbacks(
    name: str, backend: ChatBackend, *, find: Callable[[str], ChatBackend | None]
) -> ChatBackend:
    """``backend`` behind a FallbackRouter when its deployment spec names fallbacks
    (``saas.fallbacks``); ``backend`` itself otherwise."""
    spec = getattr(backend, "spec", None)
    saas = getattr(getattr(spec, "infer_params", None), "saas", None)
    if saas is None or not saas.fallbacks:
        return backend
    policy = CooldownPolicy(cooldown_s=saas.cooldown_s, failures=saas.cooldown_after)
    return FallbackRouter(name, backend, saas.fallbacks, find=find, cooldowns=Cooldowns(policy))
