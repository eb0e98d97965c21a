"""Secrets are masked before anything is stored; everything else comes through unchanged."""

from __future__ import annotations

import json

import pytest

from byzer_agents.traces import is_secret_key, redact, redact_text
from byzer_agents.traces.redaction import MASK

OPENAI_KEY = "sk-proj-Abcdef0123456789ghijKLMN"


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "apikey",
        "apiKey",
        "api-key",
        "x-api-key",
        "saas.api_key",
        "OPENAI_API_KEY",
        "Authorization",
        "proxy-authorization",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refreshToken",
        "password",
        "db_password",
        "passwd",
        "access_key",
        "aws_secret_access_key",
        "private_key",
        "credentials",
        "Cookie",
    ],
)
def test_keys_that_name_secrets_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "max_tokens",
        "max_new_tokens",
        "max_completion_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "token_count",
        "prompt_cache_key",
        "key",
        "sort_key",
        "monkey",
        "keyword",
        "content",
        "role",
        "tool_call_id",
        "model",
        "",
        3,
    ],
)
def test_keys_that_hold_counts_or_plain_data_are_not_secrets(key: object) -> None:
    assert not is_secret_key(key)


def test_secret_values_are_masked_at_any_depth() -> None:
    value = {
        "model": "gpt-4o",
        "extra": {"saas.api_key": "abc", "headers": {"Authorization": "xyz"}},
        "attempts": [{"password": "hunter2"}, {"token": 1234}],
    }
    assert redact(value) == {
        "model": "gpt-4o",
        "extra": {"saas.api_key": MASK, "headers": {"Authorization": MASK}},
        "attempts": [{"password": MASK}, {"token": MASK}],
    }


def test_token_counts_survive() -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    request = {"messages": [], "max_tokens": 256, "max_completion_tokens": 128}
    assert redact(usage) == usage
    assert redact(request) == request


def test_a_list_under_a_secret_key_has_every_item_masked() -> None:
    assert redact({"api_keys": ["k1", "k2"]}) == {"api_keys": [MASK, MASK]}


def test_a_schema_property_named_like_a_secret_keeps_its_schema() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "login",
            "parameters": {
                "type": "object",
                "properties": {"password": {"type": "string"}, "token": {"type": "string"}},
                "required": ["password", "token"],
            },
        },
    }
    assert redact(tool) == tool


def test_flags_and_absent_values_under_secret_keys_are_kept() -> None:
    assert redact({"use_token": True, "api_key": None}) == {"use_token": True, "api_key": None}


def test_logprob_tokens_are_sampled_text_not_credentials() -> None:
    entry = {"token": "Hello", "logprob": -0.1, "bytes": [72], "top_logprobs": []}
    assert redact({"content": [entry]}) == {"content": [entry]}


def test_redact_returns_a_copy_and_leaves_its_input_alone() -> None:
    original = {"api_key": "abc", "items": [{"note": "x"}]}
    copied = redact(original)
    copied["items"][0]["note"] = "changed"
    assert original == {"api_key": "abc", "items": [{"note": "x"}]}


def test_tuples_stay_tuples() -> None:
    assert redact(("a", OPENAI_KEY)) == ("a", f"sk-{MASK}")


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (f"my key is {OPENAI_KEY}, thanks", OPENAI_KEY),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("curl -H 'authorization: bearer abcdefghijklmnop1234'", "abcdefghijklmnop1234"),
        ("https://api.example.com/v1?api_key=abc123def&x=1", "abc123def"),
        ("password: hunter2", "hunter2"),
        ('{"city": "Paris", "api_key": "two words"}', "two words"),
        ("token=ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("AWS key AKIAIOSFODNN7EXAMPLE in the log", "AKIAIOSFODNN7EXAMPLE"),
        ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    ],
)
def test_credentials_inside_text_are_masked(text: str, leaked: str) -> None:
    masked = redact_text(text)
    assert leaked not in masked
    assert MASK in masked


def test_json_text_stays_valid_json_after_masking() -> None:
    arguments = json.dumps({"city": "Paris", "password": 'a "quoted" secret'})
    assert json.loads(redact_text(arguments)) == {"city": "Paris", "password": MASK}


@pytest.mark.parametrize(
    "text",
    [
        "The bearer of bad news arrived.",
        "Use max_tokens=256 and total_tokens: 15.",
        "Ask for a basic answer; sk-short is not a key.",
        "The weather in Paris is sunny, 21°C.",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_strings_inside_structures_are_masked_too() -> None:
    messages = [{"role": "user", "content": f"use {OPENAI_KEY}"}]
    assert redact(messages) == [{"role": "user", "content": f"use sk-{MASK}"}]
