"""Typed answers: Byzer-LLM's Story example, with ``response_class``, ``extract`` and
``response_after_chat``.

Run: python cookbook/03_typed_answers.py [--base-url URL --model NAME --api-key KEY]

The answer comes back as a validated pydantic instance. An answer that does not validate goes back
to the model with the problem named; after ``max_retries`` an ExtractionError holds every attempt.
"""

from __future__ import annotations

import json

from _model import model_from_args
from pydantic import BaseModel, Field


class Story(BaseModel):
    """A story."""

    title: str = Field(description="The story's title")
    body: str = Field(description="The story itself")


def fenced(value: object) -> str:
    return "```json\n" + json.dumps(value) + "\n```"


CANNED = [
    fenced({"title": "The Lighthouse Cat"}),  # missing body: fed back...
    fenced({"title": "The Lighthouse Cat", "body": "A cat kept the lamp lit all winter."}),
    fenced({"title": "Rain", "body": "It rained on the small town for forty days."}),
    "Once, a fox learned to whistle and woke the whole forest.",
    fenced({"title": "The Whistling Fox", "body": "A fox learned to whistle."}),
]


def main() -> None:
    llm = model_from_args(CANNED, "Byzer-LLM's Story example, as typed answers.")

    (answer,) = llm.chat_oai(
        [{"role": "user", "content": "Tell me a story in two parts: a title and a body."}],
        response_class=Story,
    )
    print(f"response_class -> {answer.value!r} (attempts: {answer.metadata['attempts']})")

    story = llm.extract(Story, "Title: Rain. It rained on the small town for forty days.")
    print(f"extract        -> {story!r}")

    (answer,) = llm.chat_oai(
        [{"role": "user", "content": "Tell me a short story about a fox."}],
        response_class=Story,
        response_after_chat=True,
    )
    print(f"after chat     -> free answer: {answer.metadata['free_answer']!r}")
    print(f"                  typed:       {answer.value!r}")


if __name__ == "__main__":
    main()
