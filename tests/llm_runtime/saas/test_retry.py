"""The one retry policy, over real HTTP: OpenAIBackend and the official openai SDK against the
fault server on 127.0.0.1. Retries happen where they should and only there, nothing is lost,
errors are typed, and the API key never shows, in errors, attempts, logs or traces."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from byzer_agents import LLM
from byzer_agents.core.call_attempts import take_call_attempts
from byzer_agents.exceptions import (
    ModelCallError,
    ModelRateLimitError,
    ModelStreamBrokenError,
    ModelTimeoutError,
)
from byzer_agents.llm_runtime.backends.openai_compatible import AzureSettings, OpenAIBackend
from byzer_agents.llm_runtime.saas.retry import RetryPolicy, is_retryable, retry_after_s
from byzer_agents.traces import TraceStore
from byzer_agents.types import ChatCompletionChunk, ChatRequest
from tests.fault_server import Answer, CutOff, FaultServer, Slow, Status, serve_faults

KEY = "sk-saas-retry-SECRET-0123456789abcdef"
FAST = RetryPolicy(retries=2, backoff_s=0.0, max_wait_s=5.0)


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}])


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with serve_faults(api_key=KEY) as running:
        yield running


@pytest.fixture
def connect() -> Iterator[Callable[..., OpenAIBackend]]:
    """Makes OpenAIBackends on the fault server (no backoff unless given), closed after."""
    made: list[OpenAIBackend] = []

    def connect(url: str, **settings: Any) -> OpenAIBackend:
        options: dict[str, Any] = {"model": "m", "api_key": KEY, "retry": FAST, **settings}
        made.append(OpenAIBackend(base_url=url, **options))
        return made[-1]

    yield connect
    for backend in made:
        backend.close()


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- what is retried ------------------------------------------------------------------------


def test_a_429_is_retried_after_the_wait_the_server_asked_for(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(429, "slow down", headers={"retry-after-ms": "250"}))
    completion = connect(server.url).chat(ask())
    assert completion.choices[0].message.content == "fine"
    first, second = server.received
    assert second.at - first.at >= 0.25
    attempts = take_call_attempts(completion)
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 429), (2, None)]
    assert attempts[0].waited_s == pytest.approx(0.25)
    assert "slow down" in (attempts[0].error or "") and attempts[1].error is None


def test_5xx_answers_are_retried_until_one_succeeds(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(500), Status(503))
    completion = connect(server.url).chat(ask())
    assert completion.choices[0].message.content == "fine"
    assert len(server.received) == 3
    assert [a.status_code for a in take_call_attempts(completion)] == [500, 503, None]


def test_a_call_answered_at_once_carries_no_attempts(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    completion = connect(server.url).chat(ask())
    assert take_call_attempts(completion) == []
    assert "byzer_call_attempts" not in completion.model_dump()


def test_retries_run_out_into_a_typed_error_carrying_every_attempt(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(500, "down"), Status(502, "down"), Status(500, "still down"))
    with pytest.raises(ModelCallError) as caught:
        connect(server.url).chat(ask())
    error = caught.value
    assert len(server.received) == 3
    assert error.status_code == 500
    assert "still down" in str(error) and "(3 attempts)" in str(error)
    assert [a.status_code for a in error.call_attempts] == [500, 502, 500]
    assert all(a.deployment == "m" for a in error.call_attempts)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_answers_are_not_retried(
    server: FaultServer, connect: Callable[..., OpenAIBackend], status: int
) -> None:
    server.script(Status(status, "your request is wrong"))
    with pytest.raises(ModelCallError, match="your request is wrong") as caught:
        connect(server.url).chat(ask())
    assert len(server.received) == 1
    assert caught.value.status_code == status
    assert caught.value.call_attempts == ()


def test_the_sdks_own_retries_are_off(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(500))
    with pytest.raises(ModelCallError):
        connect(server.url, max_retries=0, retry=None).chat(ask())
    assert len(server.received) == 1


def test_endless_429s_end_in_a_rate_limit_error(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(*[Status(429, "quota", headers={"retry-after": "0"})] * 3)
    with pytest.raises(ModelRateLimitError) as caught:
        connect(server.url).chat(ask())
    assert caught.value.status_code == 429 and caught.value.retry_after_s == 0
    assert len(server.received) == 3


def test_a_retry_after_longer_than_the_policy_waits_ends_the_retries_at_once(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(429, "come back in two minutes", headers={"retry-after": "120"}))
    policy = RetryPolicy(retries=3, backoff_s=0.0, max_wait_s=10.0)
    with pytest.raises(ModelRateLimitError, match="asked to wait 120 s, more than the 10 s") as c:
        connect(server.url, retry=policy).chat(ask())
    assert c.value.retry_after_s == 120
    assert len(server.received) == 1


def test_a_slow_answer_times_out_and_is_retried(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Slow(1.0))
    completion = connect(server.url, timeout=0.3).chat(ask())
    assert completion.choices[0].message.content == "fine"
    attempts = take_call_attempts(completion)
    assert "within 0.3 s" in (attempts[0].error or "")


def test_answers_that_never_come_in_time_end_in_a_timeout_error(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Slow(1.0), Slow(1.0))
    policy = RetryPolicy(retries=1, backoff_s=0.0)
    with pytest.raises(ModelTimeoutError, match=r"within 0\.2 s \(2 attempts\)") as caught:
        connect(server.url, timeout=0.2, retry=policy).chat(ask())
    assert isinstance(caught.value, TimeoutError)


def test_a_body_cut_off_halfway_is_retried(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(CutOff())
    completion = connect(server.url).chat(ask())
    assert completion.choices[0].message.content == "fine"
    assert len(server.received) == 2


def test_backoff_doubles_between_attempts(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(500), Status(500))
    policy = RetryPolicy(retries=2, backoff_s=0.1, max_wait_s=5.0)
    completion = connect(server.url, retry=policy).chat(ask())
    waits = [a.waited_s for a in take_call_attempts(completion)]
    assert 0.1 <= waits[0] <= 0.2 and 0.2 <= waits[1] <= 0.3 and waits[2] == 0.0


# -- streams ------------------------------------------------------------------------------


def test_a_stream_dropped_before_its_first_chunk_is_retried_whole(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(CutOff(after_chunks=0), Status(503))
    chunks = list(connect(server.url).stream(ask()))
    assert text_of(chunks) == "fine "
    assert len(server.received) == 3


def test_a_stream_broken_midway_is_not_retried_and_keeps_what_arrived(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(CutOff(after_chunks=2, text="one two three four"))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(ModelStreamBrokenError, match="broke off") as caught:
        for chunk in connect(server.url).stream(ask()):
            received.append(chunk)
    assert text_of(received) == caught.value.partial == "one two "
    assert server.url in str(caught.value)
    assert len(server.received) == 1


def test_async_calls_retry_alike(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    backend = connect(server.url)

    async def run() -> tuple[str | None, str]:
        try:
            server.script(Status(500), CutOff())
            answer = await backend.achat(ask())
            server.script(CutOff(after_chunks=0), CutOff(after_chunks=1, text="a b c"))
            with pytest.raises(ModelStreamBrokenError) as broken:
                async for _ in backend.astream(ask()):
                    pass
            return answer.choices[0].message.content, broken.value.partial
        finally:
            await backend.aclose()

    assert asyncio.run(run()) == ("fine", "a ")
    assert len(server.received) == 5


def test_embeddings_are_retried_too(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(503))
    assert connect(server.url).embed(["ab", "c"]) == [[2.0, 1.0], [1.0, 1.0]]
    assert len(server.received) == 2


# -- Azure ----------------------------------------------------------------------------------


def test_azure_requests_go_to_the_deployment_with_the_key_in_its_header(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Status(429, headers={"retry-after": "0"}))
    azure = AzureSettings(api_version="2024-10-21", deployment="gpt4o-prod")
    completion = connect(server.root, azure=azure).chat(ask())
    assert completion.choices[0].message.content == "fine"
    _, second = server.received
    assert second.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert second.query == {"api-version": ["2024-10-21"]}
    assert second.headers["api-key"] == KEY and "authorization" not in second.headers
    assert connect(server.root, azure=azure).meta()["api"] == "azure"


# -- the key never shows ----------------------------------------------------------------------


def test_the_key_never_shows_in_errors_attempts_logs_or_traces(
    connect: Callable[..., OpenAIBackend], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    with serve_faults(api_key="sk-the-right-one-0000000000") as strict:
        backend = connect(strict.url)  # sends KEY, which the server echoes back in its 401
        with pytest.raises(ModelCallError) as refused:
            backend.chat(ask())
    with serve_faults(api_key=KEY) as server:
        server.script(*[Status(500, f"upstream said {KEY}")] * 3)
        with pytest.raises(ModelCallError) as retried:
            connect(server.url).chat(ask())
        store = TraceStore(tmp_path / "traces.db")
        llm = LLM.from_openai(
            model="m", base_url=server.url, api_key=KEY, trace_store=store, retry=FAST
        )
        server.script(Status(503, f"echo {KEY}"))
        assert llm.chat_oai("hi")[0].output == "fine"
        server.script(*[Status(503, f"echo {KEY}")] * 3)
        with pytest.raises(ModelCallError):
            llm.chat_oai("hi")
        events = [event for run in store.runs() for event in store.events(run.id)]
        store.close()
    assert refused.value.status_code == 401
    assert "Incorrect API key provided: ***" in str(refused.value)
    assert [e.status for e in events].count("error") == 4  # one per failed request
    assert "attempt 1 of 3 failed" in caplog.text  # the retries were logged...
    shown = [
        str(refused.value),
        repr(refused.value),
        str(retried.value),
        repr(retried.value.call_attempts),
        caplog.text,
        repr(backend),
        repr(backend.meta()),
        repr(vars(backend)),
        (tmp_path / "traces.db").read_bytes().decode("utf-8", "replace"),
    ]
    for text in shown:
        assert KEY not in text  # ... and nothing shows the key


# -- the policy's parts --------------------------------------------------------------------


def response_with(**headers: str) -> Any:
    return SimpleNamespace(response=SimpleNamespace(headers=headers))


def test_retry_after_is_read_in_milliseconds_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_s(response_with(**{"retry-after-ms": "1500"})) == 1.5
    assert retry_after_s(response_with(**{"retry-after": "2"})) == 2.0
    assert retry_after_s(response_with(**{"retry-after": later}), now=now) == 30.0
    assert retry_after_s(response_with(**{"retry-after": "soon"})) is None
    assert retry_after_s(response_with(**{"retry-after": "-3"})) is None
    assert retry_after_s(response_with()) is None
    assert retry_after_s(ValueError("no response")) is None


def test_only_transient_failures_are_retryable() -> None:
    assert not is_retryable(ValueError("a bug"))
    assert not is_retryable(KeyError("a bug"))


def test_a_policy_refuses_negative_settings() -> None:
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="backoff_s"):
        RetryPolicy(backoff_s=-0.5)


def test_the_fault_server_answers_plainly_once_its_script_is_spent(
    server: FaultServer, connect: Callable[..., OpenAIBackend]
) -> None:
    server.script(Answer("scripted"))
    backend = connect(server.url)
    assert backend.chat(ask()).choices[0].message.content == "scripted"
    assert backend.chat(ask()).choices[0].message.content == "fine"
