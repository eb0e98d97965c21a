"""EmbeddingBackend on the shipped all-MiniLM-L6-v2: unit vectors of 384 dimensions, nearer for
sentences that mean the same, loaded without a model hub."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents.core.protocol import ChatBackend
from byzer_agents.llm_runtime.backends.embeddings import EmbeddingBackend
from byzer_agents.types import ChatRequest


@pytest.fixture(scope="module")
def embedder() -> Iterator[EmbeddingBackend]:
    """The default model, loaded from its package; HF_HUB_OFFLINE is not set for this."""
    yield EmbeddingBackend()


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_backend_answers_the_one_protocol(embedder: EmbeddingBackend) -> None:
    assert isinstance(embedder, ChatBackend)


def test_vectors_have_384_dimensions_and_unit_length(embedder: EmbeddingBackend) -> None:
    vectors = embedder.embed(["The cat sits on the mat.", "Stock markets fell today."])

    assert len(vectors) == 2
    for vector in vectors:
        assert len(vector) == 384
        assert math.isclose(math.sqrt(dot(vector, vector)), 1.0, abs_tol=1e-4)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: EmbeddingBackend) -> None:
    cat, kitten, markets = embedder.embed(
        ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "Bond yields rose."]
    )

    assert dot(cat, kitten) > dot(cat, markets) + 0.3


def test_equal_texts_get_equal_vectors(embedder: EmbeddingBackend) -> None:
    first, again = embedder.embed(["same words", "same words"])

    assert first == pytest.approx(again, abs=1e-6)


def test_no_texts_give_no_vectors(embedder: EmbeddingBackend) -> None:
    assert embedder.embed([]) == []


def test_one_bare_string_is_refused(embedder: EmbeddingBackend) -> None:
    with pytest.raises(TypeError, match="wrap it"):
        embedder.embed("hello")


def test_chat_is_refused_as_an_embedding_model(embedder: EmbeddingBackend) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "Hi"}])

    with pytest.raises(NotImplementedError, match="embedding model"):
        embedder.chat(request)
    with pytest.raises(NotImplementedError, match="embedding model"):
        embedder.stream(request)


def test_capabilities_say_embeddings_only(embedder: EmbeddingBackend) -> None:
    capabilities = embedder.capabilities

    assert capabilities.embeddings
    assert not (capabilities.native_tools or capabilities.streaming)


def test_meta_names_the_model_and_its_dimension(embedder: EmbeddingBackend) -> None:
    meta = embedder.meta()

    assert meta["model_deploy_type"] == "local"
    assert meta["backend"] == "sentence_transformers"
    assert meta["model"] == "all-MiniLM-L6-v2"
    assert meta["embedding_dim"] == 384
    assert meta["max_model_len"] == 256
    assert meta["architectures"] == ["BertModel"]


def test_a_missing_model_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        EmbeddingBackend(f"{tmp_path}/nowhere")
