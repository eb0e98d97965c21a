"""How the requests behind one model call (retries, fallbacks) travel with its answer to the
tracer, which records each as an event.

Retries happen inside a backend, which may run in another process (a Ray worker) while traces
are written by the driver. So the attempts ride on the answer itself, in an extra field of the
``ChatCompletion`` (the SDK's models keep unknown fields, and they survive ``model_dump`` and
``model_validate`` across the process boundary); a failed call carries them on its
``ModelCallError.call_attempts``. The field is taken off again when the call is traced, so
answers handed to users carry no trace of it; code that serves answers without tracing them (an
HTTP server) should call ``take_call_attempts`` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from byzer_agents.exceptions import CallAttempt
from byzer_agents.types import ChatCompletion

__all__ = ["CALL_ATTEMPTS_FIELD", "attach_call_attempts", "take_call_attempts"]

CALL_ATTEMPTS_FIELD = "byzer_call_attempts"


def attach_call_attempts(
    completion: ChatCompletion, attempts: Sequence[CallAttempt]
) -> ChatCompletion:
    """Put ``attempts`` on ``completion`` (replacing any there) and return it."""
    setattr(completion, CALL_ATTEMPTS_FIELD, [dataclasses.asdict(item) for item in attempts])
    return completion


def take_call_attempts(completion: ChatCompletion | None) -> list[CallAttempt]:
    """Remove the attempts carried by ``completion`` and return them ([] when none)."""
    extra: dict[str, Any] | None = completion.model_extra if completion is not None else None
    if not extra or CALL_ATTEMPTS_FIELD not in extra:
        return []
    carried = extra.pop(CALL_ATTEMPTS_FIELD)
    return [
        item if isinstance(item, CallAttempt) else CallAttempt(**item) for item in carried or []
    ]
