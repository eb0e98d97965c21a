"""Mask secrets (API keys, tokens, passwords) in JSON-shaped data before it is stored or shown.

Two rules, both heuristics that err towards masking:

- a mapping key that names a secret (``api_key``, ``Authorization``, ``saas.api_key``,
  ``client_secret``, ``x-api-key``, ``refresh_token``, ...) has its value replaced by ``"***"``;
  token *counts* (``max_tokens``, ``prompt_tokens``, ...) are not secrets and are kept;
- inside any string, text that looks like a credential (``sk-...`` keys, ``Bearer ...``,
  ``api_key=...``, and a few well-known key formats) is masked.

Only values are masked, never containers: a tool schema whose ``properties`` has a parameter
called ``token`` keeps its ``{"type": "string"}``, because the walk goes on inside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "redact", "redact_text"]

MASK = "***"

_SECRET_WORDS = frozenset({"pwd", "auth", "cookie"})
"""A key whose last word is one of these names a secret. A bare ``key`` is not among them: tools
take ``key`` and ``sort_key`` arguments, and traces are training data; the qualified key names
(``api_key``, ``x-api-key``, ``access_key``, ``private_key``) are caught by the endings below."""

_SECRET_ENDINGS = (
    "apikey",
    "apikeys",
    "accesskey",
    "secretkey",
    "privatekey",
    "token",
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "authorization",
    "credential",
    "credentials",
)
"""A key whose letters, separators removed, end with one of these names a secret."""

_NOT_SECRET = frozenset(
    {
        "maxtoken",
        "maxtokens",
        "maxnewtokens",
        "maxcompletiontokens",
        "prompttokens",
        "completiontokens",
        "totaltokens",
        "cachedtokens",
        "reasoningtokens",
        "audiotokens",
        "acceptedpredictiontokens",
        "rejectedpredictiontokens",
        "promptcachekey",
    }
)
"""Keys that match the rules above but hold counts or cache hints, never credentials."""

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")

_SECRET_NAME = r"[\w.-]*(?:api[_-]?key|access[_-]?key|secret|password|passwd|token)"
_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "api_key": "a b c" inside JSON text, e.g. tool-call arguments the model wrote.
    (
        re.compile(rf'(?i)("{_SECRET_NAME}"\s*:\s*")(?:[^"\\]|\\.)*(")'),
        rf"\g<1>{MASK}\g<2>",
    ),
    # api_key=abc, password: abc, --token abc is not matched (too close to prose).
    (
        re.compile(rf"(?i)\b({_SECRET_NAME})(['\"]?\s*[=:]\s*['\"]?)(?!\*\*\*)[^\s'\",&;}}]+"),
        rf"\g<1>\g<2>{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/-]{16,}=*"), rf"\g<1> {MASK}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), f"sk-{MASK}"),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}"), MASK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), MASK),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), MASK),
)


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``saas.api_key``, ``Authorization``)."""
    words = _SEPARATORS.split(_CAMEL_BOUNDARY.sub("_", str(key)).lower())
    words = [word for word in words if word]
    if not words:
        return False
    squashed = "".join(words)
    if squashed in _NOT_SECRET:
        return False
    return words[-1] in _SECRET_WORDS or squashed.endswith(_SECRET_ENDINGS)


def redact_text(text: str) -> str:
    """Return ``text`` with every credential-looking substring masked."""
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """Return a deep copy of ``value`` with secrets masked (see the module docstring).

    Walks mappings (returned as ``dict``), lists and tuples; strings are masked with
    :func:`redact_text`; other values are returned as they are, so convert objects to JSON-shaped
    data first (``TraceStore`` does).
    """
    return _redact(value, secret=False)


def _redact(value: Any, *, secret: bool) -> Any:
    if isinstance(value, Mapping):
        # A logprob entry's "token" is the sampled text, not a credential.
        is_logprob = "logprob" in value
        return {
            key: _redact(item, secret=not is_logprob and is_secret_key(key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_redact(item, secret=secret) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, bool):
        return value  # absent or a flag: nothing to hide
    if secret:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value
