"""Fallbacks and cooldowns (``llm_runtime/routing.py``) on in-process backends: who is asked, in
which order, what is skipped and for how long, and what the trace shows. Over Ray and HTTP they
are tested in tests/llm_runtime/saas/test_deploy.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents import LLM
from byzer_agents.core.call_attempts import take_call_attempts
from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import CallAttempt, ModelCallError, ModelCoolingDownError
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.llm_runtime.routing import (
    CooldownPolicy,
    Cooldowns,
    FallbackRouter,
    counts_against_deployment,
)
from byzer_agents.traces import TraceStore
from byzer_agents.types import ChatCompletionChunk, ChatRequest, make_chunk


def ask(text: str = "hi", model: str | None = "primary") -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], model=model)


def down(status: int | None = 503) -> ModelCallError:
    return ModelCallError("x", "the provider is down", status_code=status)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def route(
    primary: ChatBackend,
    fallbacks: dict[str, ChatBackend],
    *,
    cooldown_s: float = 60.0,
    failures: int = 2,
    clock: Clock | None = None,
) -> FallbackRouter:
    cooldowns = Cooldowns(
        CooldownPolicy(cooldown_s=cooldown_s, failures=failures), clock=clock or Clock()
    )
    return FallbackRouter(
        "primary", primary, list(fallbacks), find=fallbacks.get, cooldowns=cooldowns
    )


def test_a_failing_primary_falls_back_and_the_answer_says_who_answered() -> None:
    primary, backup = ScriptedBackend([down(500)]), ScriptedBackend(["from backup"])
    completion = route(primary, {"backup": backup}).chat(ask())
    assert completion.choices[0].message.content == "from backup"
    assert backup.requests[0].model == "backup"  # each deployment gets a request for itself
    attempts = take_call_attempts(completion)
    assert [(a.deployment, a.status_code, a.error is None) for a in attempts] == [
        ("primary", 500, False),
        ("backup", None, True),
    ]


def test_the_primary_alone_answers_when_it_can() -> None:
    primary, backup = ScriptedBackend(["mine"]), ScriptedBackend([])
    completion = route(primary, {"backup": backup}).chat(ask())
    assert completion.choices[0].message.content == "mine" and not backup.requests
    assert take_call_attempts(completion) == []


def test_attempts_a_deployment_made_itself_are_kept_in_order() -> None:
    retried = [
        CallAttempt(deployment="primary", attempt=n, latency_s=0.1, error="HTTP 429")
        for n in (1, 2)
    ]
    primary = ScriptedBackend(
        [ModelCallError("x", "quota", status_code=429, call_attempts=retried)]
    )
    completion = route(primary, {"backup": ScriptedBackend(["ok"])}).chat(ask())
    attempts = take_call_attempts(completion)
    assert [(a.deployment, a.attempt) for a in attempts] == [
        ("primary", 1),
        ("primary", 2),
        ("backup", 1),
    ]


def test_when_every_deployment_fails_the_error_names_each() -> None:
    router = route(ScriptedBackend([down()]), {"backup": ScriptedBackend([down(500)])})
    with pytest.raises(ModelCallError, match=r"no deployment answered; 'primary': .*'backup'") as e:
        router.chat(ask())
    assert e.value.status_code == 500
    assert [a.deployment for a in e.value.call_attempts] == ["primary", "backup"]


def test_a_fallback_that_is_not_deployed_is_skipped_and_named() -> None:
    primary = ScriptedBackend([down(), "second try"])
    router = FallbackRouter("primary", primary, ["ghost"], find=lambda name: None)
    with pytest.raises(ModelCallError, match="no deployment named 'ghost'"):
        router.chat(ask())


def test_a_deployment_that_keeps_failing_cools_down_then_comes_back() -> None:
    clock = Clock()
    primary = ScriptedBackend([down(), down(), "recovered"])
    backup = ScriptedBackend(["b1", "b2", "b3", "b4"])
    router = route(primary, {"backup": backup}, cooldown_s=30, failures=2, clock=clock)
    for _ in range(3):
        assert router.chat(ask()).choices[0].message.content.startswith("b")
    assert len(primary.requests) == 2  # the third call skipped it
    assert router.cooldowns.ready_in("primary") == 30
    completion = router.chat(ask())  # skipped: the answer still says who gave it
    assert [a.deployment for a in take_call_attempts(completion)] == ["backup"]
    clock.now += 30
    assert router.chat(ask()).choices[0].message.content == "recovered"
    assert router.cooldowns.ready_in("primary") == 0


def test_a_success_resets_the_count_of_failures() -> None:
    primary = ScriptedBackend([down(), "fine", down(), "fine again"])
    router = route(primary, {"backup": ScriptedBackend(["b", "b"])}, failures=2)
    for _ in range(4):
        router.chat(ask())
    assert len(primary.requests) == 4 and router.cooldowns.ready_in("primary") == 0


def test_when_every_deployment_is_cooling_down_nothing_is_sent() -> None:
    clock = Clock()
    primary, backup = ScriptedBackend([down()]), ScriptedBackend([down()])
    router = route(primary, {"backup": backup}, cooldown_s=20, failures=1, clock=clock)
    with pytest.raises(ModelCallError):
        router.chat(ask())
    clock.now += 5
    with pytest.raises(ModelCoolingDownError, match=r"back in 15\.0 s") as caught:
        router.chat(ask())
    assert caught.value.retry_in_s == 15 and caught.value.deployments == ("primary", "backup")
    assert len(primary.requests) == len(backup.requests) == 1


@pytest.mark.parametrize(
    ("status", "counts"),
    [(None, True), (500, True), (503, True), (429, True), (401, True), (404, True), (400, False)],
)
def test_only_failures_that_are_the_deployments_fault_count(
    status: int | None, counts: bool
) -> None:
    assert counts_against_deployment(down(status)) is counts


def test_a_bad_request_falls_back_but_never_cools_the_deployment_down() -> None:
    primary = ScriptedBackend([down(400), down(400), "fine"])
    router = route(primary, {"backup": ScriptedBackend(["b", "b"])}, failures=1)
    for _ in range(3):
        router.chat(ask())
    assert len(primary.requests) == 3


class BreaksMidway(ScriptedBackend):
    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        self.requests.append(request)
        yield make_chunk(model="m", completion_id="c", content="half ")
        raise ModelCallError("m", "the stream broke")


def test_a_stream_falls_back_only_before_its_first_chunk() -> None:
    router = route(ScriptedBackend([down()]), {"backup": ScriptedBackend(["streamed answer"])})
    text = "".join(c.choices[0].delta.content or "" for c in router.stream(ask()) if c.choices)
    assert text == "streamed answer"

    backup = ScriptedBackend(["never asked"])
    router = route(BreaksMidway(), {"backup": backup})
    received = []
    with pytest.raises(ModelCallError, match="the stream broke"):
        for chunk in router.stream(ask()):
            received.append(chunk.choices[0].delta.content)
    assert received == ["half "] and not backup.requests


def test_async_calls_fall_back_alike() -> None:
    primary = ScriptedBackend([down(), down()])
    backup = ScriptedBackend(["async backup", "streamed backup"])
    router = route(primary, {"backup": backup}, failures=5)

    async def run() -> tuple[str | None, str]:
        completion = await router.achat(ask())
        chunks = [chunk async for chunk in router.astream(ask())]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return completion.choices[0].message.content, text

    assert asyncio.run(run()) == ("async backup", "streamed backup")


def test_fallbacks_are_one_level_deep() -> None:
    backups_own_fallback = ScriptedBackend(["never asked"])
    backup_primary = ScriptedBackend([down()])
    backup = route(backup_primary, {"third": backups_own_fallback})
    router = route(ScriptedBackend([down()]), {"backup": backup})
    with pytest.raises(ModelCallError):
        router.chat(ask())
    assert len(backup_primary.requests) == 1 and not backups_own_fallback.requests


def test_embeddings_fall_back_and_meta_names_the_fallbacks() -> None:
    class CannotEmbed(ScriptedBackend):
        def embed(self, texts: object) -> list[list[float]]:
            raise down()

    backup = ScriptedBackend()
    router = route(CannotEmbed(), {"backup": backup})
    assert router.embed(["a"]) == backup.embed(["a"])
    assert router.meta()["fallbacks"] == ["backup"]
    assert router.capabilities == CannotEmbed().capabilities


def test_the_trace_shows_the_failed_deployment_and_the_one_that_answered(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "traces.db")
    router = route(ScriptedBackend([down(502)]), {"backup": ScriptedBackend(["from backup"])})
    llm = LLM.from_backend(router, model="primary", trace_store=store)
    (response,) = llm.chat_oai("hi")
    assert response.output == "from backup"
    events = store.events(response.metadata["run_id"])
    assert [(e.model, e.status, e.step) for e in events] == [
        ("primary", "error", 1),
        ("backup", "ok", 1),
    ]
    assert "HTTP 502" in (events[0].error or "")
    assert "byzer_call_attempts" not in response.response.model_dump()
    store.close()
