"""Streaming stays bounded: a stream that never ends is stopped with a typed error, and partial
typed answers cost time linear in the answer's length."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from byzer_agents import LLM
from byzer_agents.chat import streaming
from byzer_agents.chat.streaming import MAX_STREAM_CHARS, PartialAnswers
from byzer_agents.exceptions import ModelStreamBrokenError, ModelStreamTooLongError
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.traces import TraceStore
from byzer_agents.types import ChatCompletionChunk, ChatRequest, make_chunk


class Story(BaseModel):
    title: str
    body: str


class EndlessBackend(ScriptedBackend):
    """A server that ignores max_tokens and never stops streaming."""

    def __init__(self, piece: str) -> None:
        super().__init__()
        self.piece = piece
        self.chunks_sent = 0
        self.closed = False

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        try:
            while True:
                self.chunks_sent += 1
                yield make_chunk(model=self.model, completion_id="endless", content=self.piece)
        finally:
            self.closed = True


def test_a_stream_past_twice_max_tokens_is_stopped_with_what_arrived(
    trace_store: TraceStore,
) -> None:
    backend = EndlessBackend("word ")
    llm = LLM.from_backend(backend, model="endless", trace_store=trace_store)
    received = []
    with pytest.raises(ModelStreamTooLongError, match="max_tokens=50") as raised:
        for piece in llm.stream_chat_oai("hi", llm_config={"max_tokens": 50}):
            received.append(piece)
    assert isinstance(raised.value, ModelStreamBrokenError)
    assert raised.value.partial == "".join(received)
    assert len(received) <= 2 * 50 + 16
    assert backend.closed
    assert trace_store.runs()[0].status == "error"


def test_a_stream_without_max_tokens_is_stopped_at_the_character_cap() -> None:
    backend = EndlessBackend("x" * 10_000)
    llm = LLM.from_backend(backend, model="endless")
    received = 0
    with pytest.raises(ModelStreamTooLongError, match="characters") as raised:
        for piece in llm.stream_chat_oai("hi"):
            received += len(piece)
    assert received == len(raised.value.partial) <= MAX_STREAM_CHARS
    assert backend.chunks_sent <= MAX_STREAM_CHARS // 10_000 + 1
    assert backend.closed


def test_the_async_stream_is_stopped_as_well() -> None:
    llm = LLM.from_backend(EndlessBackend("word "), model="endless")

    async def read() -> None:
        async for _ in llm.astream_chat_oai("hi", llm_config={"max_tokens": 20}):
            pass

    with pytest.raises(ModelStreamTooLongError, match="max_tokens=20"):
        asyncio.run(read())


def test_stream_extract_is_stopped_when_its_stream_never_ends() -> None:
    llm = LLM.from_backend(EndlessBackend('{"title": "a'), model="endless")
    with pytest.raises(ModelStreamTooLongError):
        list(llm.stream_extract(Story, "text", llm_config={"max_tokens": 30}))


def test_a_stream_within_max_tokens_is_read_whole() -> None:
    llm = LLM.from_backend(ScriptedBackend(["Hello there, friend."]), model="scripted")
    assert "".join(llm.stream_chat_oai("hi", llm_config={"max_tokens": 5})) == (
        "Hello there, friend."
    )


LONG_STORY = Story(title="A long one", body="The cat sailed on. " * 2_000)


def test_a_long_stream_extract_takes_linear_time_and_ends_validated() -> None:
    # 40 KB in 4-character pieces: reading the whole text per piece gave 9,840 partials in 20 s.
    text = json.dumps(LONG_STORY.model_dump())
    llm = LLM.from_backend(ScriptedBackend([text]), model="scripted")
    start = time.perf_counter()
    partials = list(llm.stream_extract(Story, "text"))
    assert time.perf_counter() - start < 5
    assert partials[-1] == LONG_STORY
    assert 10 < len(partials) < len(text) // 4 / 10
    bodies = [partial.body or "" for partial in partials]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(bodies))


def test_partial_answers_read_at_most_sixteen_times_the_text_beyond_the_allowance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = []
    monkeypatch.setattr(streaming, "partial_value", lambda _, text: read.append(len(text)))
    partials = PartialAnswers(Story)
    for piece in itertools.repeat("abcd", 500_000):
        partials.add(piece)
    assert sum(read) <= 16 * 2_000_000 + 1_000_000
    assert partials.text == "abcd" * 500_000


def test_partial_answers_of_a_short_answer_come_with_every_piece() -> None:
    text = json.dumps({"title": "Tom", "body": "A cat who sailed the seas."})
    partials = PartialAnswers(Story)
    values = [partials.add(text[i : i + 4]) for i in range(0, len(text), 4)]
    bodies = {value.body for value in values if value is not None}
    assert len(bodies) >= 5


def test_a_partial_list_keeps_its_complete_items_while_the_last_one_arrives() -> None:
    from pydantic import BaseModel

    from byzer_agents.chat.streaming import partial_value

    class Item(BaseModel):
        name: str
        price: float

    class Catalogue(BaseModel):
        title: str
        items: list[Item]

    text = '{"title": "Tools", "items": [{"name": "saw", "price": 9.5}, {"name": "dri'
    partial = partial_value(Catalogue, text)
    assert partial is not None and partial.title == "Tools"
    assert [item.name for item in partial.items] == ["saw"]
