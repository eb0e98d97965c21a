"""Token usage summed over several completions: the choices of one request (``n``, or prompts x
``n``), or the attempts a typed answer took, reported to the client as one ``usage``."""

from __future__ import annotations

from byzer_agents.types import ChatCompletion, CompletionUsage

__all__ = ["UsageTotal"]


class UsageTotal:
    """The prompt, completion and total tokens of every completion added so far."""

    def __init__(self) -> None:
        self.counts = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.reported = False  # whether any completion carried a usage (a backend may not)

    def add(self, completion: ChatCompletion) -> None:
        """Count ``completion``'s usage in the total (nothing when it reports none)."""
        if completion.usage is not None:
            self.reported = True
            for key in self.counts:
                self.counts[key] += getattr(completion.usage, key, 0) or 0

    def on(self, completion: ChatCompletion) -> ChatCompletion:
        """``completion`` carrying the total as its usage (as it is when none was reported)."""
        if not self.reported:
            return completion
        return completion.model_copy(update={"usage": CompletionUsage.model_validate(self.counts)})
