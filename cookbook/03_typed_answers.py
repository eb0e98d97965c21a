"""Typed answers: Byzer-LLM's Story example, with ``response_class``, ``extract`` and
``response_after_chat``.

Run: python cookbook/03_typed_answers.py [--model NAME] [--base-url URL --model NAME]

The model is by default the shipped SmolLM2-135M-Instruct (with its tool-calling adapter),
deployed on the local Ray for the run and removed after it. The answer comes back as a validated
pydantic instance: a local model's JSON is held to the schema by constrained decoding, and an
answer that still does not validate goes back to the model with the problem named; after
``max_retries`` an ExtractionError holds every attempt, and the script prints it as it came.
"""

from __future__ import annotations

from _model import cookbook_model
from pydantic import BaseModel, Field

from byzer_agents import ExtractionError

CONFIG = {"temperature": 0, "max_tokens": 160}


class Story(BaseModel):
    """A story."""

    title: str = Field(description="The story's title")
    body: str = Field(description="The story itself")


def failed(error: ExtractionError) -> str:
    return f"no valid Story after {len(error.attempts)} attempts: {error.attempts[-1].error}"


def main() -> None:
    with cookbook_model("Byzer-LLM's Story example, as typed answers.") as llm:
        try:
            (answer,) = llm.chat_oai(
                [{"role": "user", "content": "Tell me a story in two parts: a title and a body."}],
                response_class=Story,
                llm_config=CONFIG,
            )
            print(f"response_class -> {answer.value!r} (attempts: {answer.metadata['attempts']})")
        except ExtractionError as error:
            print(f"response_class -> {failed(error)}")

        try:
            story = llm.extract(
                Story,
                "Title: Rain. It rained on the small town for forty days.",
                llm_config=CONFIG,
            )
            print(f"extract        -> {story!r}")
        except ExtractionError as error:
            print(f"extract        -> {failed(error)}")

        try:
            (answer,) = llm.chat_oai(
                [{"role": "user", "content": "Tell me a short story about a fox."}],
                response_class=Story,
                response_after_chat=True,
                llm_config=CONFIG,
            )
            print(f"after chat     -> free answer: {answer.metadata['free_answer']!r}")
            print(f"                  typed:       {answer.value!r}")
        except ExtractionError as error:
            print(f"after chat     -> {failed(error)}")


if __name__ == "__main__":
    main()
