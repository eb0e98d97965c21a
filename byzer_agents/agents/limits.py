"""``UsageLimits``: what one agent run may spend (model requests, tokens, tool calls), checked
before each request and tool run and after each answer; past a limit the run ends with
``UsageLimitExceededError``, carrying the steps so far."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from byzer_agents.agents.results import Step, Usage
from byzer_agents.exceptions import ConfigurationError, UsageLimitExceededError

__all__ = ["UsageLimits"]


@dataclass(frozen=True)
class UsageLimits:
    """Limits on one run's spending; ``None`` leaves a quantity unlimited."""

    request_limit: int | None = 50
    """Model turns (requests) at most."""
    tool_calls_limit: int | None = None
    """Tool calls run at most (refused calls are not counted)."""
    input_tokens_limit: int | None = None
    output_tokens_limit: int | None = None
    total_tokens_limit: int | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ConfigurationError(
                    f"UsageLimits.{name} must be None or 0 or more, got {value!r}"
                )

    def check_request(self, usage: Usage, steps: Sequence[Step]) -> None:
        """Before a model request: one more must stay within ``request_limit``."""
        if self.request_limit is not None and usage.requests + 1 > self.request_limit:
            self._exceeded(
                f"the next request would pass request_limit={self.request_limit}", usage, steps
            )

    def check_tokens(self, usage: Usage, steps: Sequence[Step]) -> None:
        """After an answer: the tokens spent must be within the token limits."""
        for name, spent, limit in (
            ("input_tokens_limit", usage.input_tokens, self.input_tokens_limit),
            ("output_tokens_limit", usage.output_tokens, self.output_tokens_limit),
            ("total_tokens_limit", usage.total_tokens, self.total_tokens_limit),
        ):
            if limit is not None and spent > limit:
                self._exceeded(f"{spent} tokens passed {name}={limit}", usage, steps)

    def check_tool_calls(self, usage: Usage, more: int, steps: Sequence[Step]) -> None:
        """Before running ``more`` tool calls: all must stay within ``tool_calls_limit``."""
        limit = self.tool_calls_limit
        if limit is not None and more and usage.tool_calls + more > limit:
            self._exceeded(
                f"running {more} more tool call(s) would pass tool_calls_limit={limit}",
                usage,
                steps,
            )

    @staticmethod
    def _exceeded(reason: str, usage: Usage, steps: Sequence[Step]) -> None:
        raise UsageLimitExceededError(
            f"the agent run stopped after {len(steps)} step(s): {reason}", steps=steps, usage=usage
        )
