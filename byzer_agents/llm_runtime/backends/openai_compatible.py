"""``OpenAIBackend``: any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, the SaaS providers of
``llm_runtime/saas/providers.py``, vLLM, our own server) through the official ``openai`` SDK,
without Ray, under the one retry policy of ``llm_runtime/saas/retry.py``.

What is fragile here is the API key: it lives only inside the SDK clients and a ``SecretStr``, and
every error is rebuilt as a ``ModelCallError`` with the key scrubbed out, because servers may echo
a wrong key back in their error message. The SDK's exception is not chained (its text holds that
message), so a traceback cannot print the key either; the attempts recorded for traces and the
retry log lines are scrubbed the same way.

A call that needed more than one request carries its attempts to the tracer on the completion
(``core/call_attempts.py``), or on the ``ModelCallError`` when it failed. A stream is retried
until its first chunk arrives; once chunks have gone to the caller, a break is not retried (the
answer would be told twice) but raised as ``ModelStreamBrokenError`` with the text received.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import SecretStr

from byzer_agents.core.call_attempts import attach_call_attempts
from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import (
    CallAttempt,
    ConfigurationError,
    ConfigurationTypeError,
    ModelCallError,
    ModelRateLimitError,
    ModelStreamBrokenError,
    ModelTimeoutError,
)
from byzer_agents.llm_runtime.saas.retry import (
    TRANSPORT_ERRORS,
    AttemptRecorder,
    RetryPolicy,
    retry_after_s,
)
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["AzureSettings", "OpenAIBackend"]

_SDK_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_SDK_ERRORS: tuple[type[Exception], ...] = (openai.OpenAIError, *TRANSPORT_ERRORS)
_BROKEN_OFF = frozenset({"RemoteProtocolError", "ReadError"})
"""The HTTP library's errors (by name: httpx and httpx2 alike) for an answer that began and then
stopped, as opposed to a server that could not be reached."""
_DEFAULT_CAPABILITIES = Capabilities(
    native_tools=True,
    json_schema_output=True,
    constrained_decoding=False,
    streaming=True,
    embeddings=True,
)


@dataclass(frozen=True, kw_only=True)
class AzureSettings:
    """Azure OpenAI: the endpoint is the backend's ``base_url`` (``https://<resource>.openai.
    azure.com``), the key goes in the ``api-key`` header, requests to ``/openai/deployments/
    <deployment>/...?api-version=<api_version>``."""

    api_version: str
    deployment: str | None = None
    """The model deployment's name; None: the request's ``model``."""


class OpenAIBackend:
    """A model behind an OpenAI-compatible HTTP API, answering the one protocol.

    ``api_key=None`` lets the SDK read ``OPENAI_API_KEY``; ``base_url=None`` lets it read
    ``OPENAI_BASE_URL`` or use OpenAI's. A server that checks no key still needs some value
    (``"EMPTY"`` is the custom). Failed requests are retried by ``retry`` (or, shorter,
    ``max_retries`` retries with the default backoff): 429, 5xx, connection errors and timeouts.
    ``name`` is what callers call this model (a deployment's udf_name; default: ``model``): a
    request for ``name`` asks the endpoint for ``model``, and the attempts traced carry ``name``.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        capabilities: Capabilities | None = None,
        timeout: float | None = 60.0,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        azure: AzureSettings | None = None,
        default_headers: Mapping[str, str] | None = None,
        embedding_model: str | None = None,
        http_client: Any = None,
        async_http_client: Any = None,
    ) -> None:
        """``http_client`` / ``async_http_client``: the SDK's own HTTP clients (proxies, custom
        transports); the async one serves a single event loop, as its connections do."""
        if not model:
            raise ConfigurationError(
                "model must name the endpoint's model, e.g. 'gpt-4o-mini'; got ''"
            )
        if max_retries is not None and retry is not None:
            raise ConfigurationError("give max_retries or retry (a RetryPolicy), not both")
        if max_retries is not None and max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more; got {max_retries}")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(
                f"timeout must be positive seconds or None (no limit); got {timeout}"
            )
        if azure is not None and not base_url:
            raise ConfigurationError(
                "Azure OpenAI needs base_url: the resource's endpoint, "
                "https://<resource>.openai.azure.com"
            )
        self.model = model
        self.name = name or model
        self.base_url = base_url
        self.embedding_model = embedding_model
        self.timeout = timeout
        self.retry = retry or RetryPolicy(retries=2 if max_retries is None else max_retries)
        self.azure = azure
        self._api_key = SecretStr(api_key) if api_key is not None else None
        self._default_headers = dict(default_headers) if default_headers else None
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._capabilities = capabilities or _DEFAULT_CAPABILITIES
        self._lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        # An async client's connections belong to the event loop that opened them, so each loop
        # gets its own client, dropped once its loop is closed. (Not a WeakKeyDictionary: the
        # client's transports hold their loop, so the key would never die.)
        self._async_clients: dict[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = {}

    @property
    def capabilities(self) -> Capabilities:
        """What the endpoint is taken to support (native tools and JSON schemas by default)."""
        return self._capabilities

    @property
    def max_retries(self) -> int:
        """Retries after a request's first attempt (the retry policy's)."""
        return self.retry.retries

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self._resolved_base_url()!r})"

    # -- the one protocol -------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """One completion from the endpoint, under the retry policy."""
        kwargs = self._create_kwargs(request)
        recorder = self._recorder()

        def send() -> ChatCompletion:
            completion: ChatCompletion = self._sync_client().chat.completions.create(**kwargs)
            return completion

        try:
            completion = recorder.run(send)
        except _SDK_ERRORS as error:
            raise self._failure(kwargs["model"], error, recorder.records) from None
        return _with_attempts(completion, recorder.records)

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The endpoint's chunks as they arrive (the request is retried only before the first)."""
        kwargs = self._create_kwargs(request)
        recorder = self._recorder()

        def open_stream() -> tuple[Any, Iterator[ChatCompletionChunk], ChatCompletionChunk | None]:
            chunks = self._sync_client().chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
            iterator = iter(chunks)
            try:
                return chunks, iterator, next(iterator, None)  # a break before it is retried
            except BaseException:
                chunks.close()
                raise

        try:
            chunks, iterator, first = recorder.run(open_stream)
        except _SDK_ERRORS as error:
            raise self._failure(kwargs["model"], error, recorder.records) from None
        received: list[str] = []
        with chunks:  # leaving the block closes the connection when the caller stops
            if first is None:
                return
            received.append(_text_of(first))
            yield first
            try:
                for chunk in iterator:
                    received.append(_text_of(chunk))
                    yield chunk
            except _SDK_ERRORS as error:
                raise self._broken(kwargs["model"], error, "".join(received), recorder) from None

    async def achat(self, request: ChatRequest) -> ChatCompletion:
        """``chat`` on the SDK's async client."""
        kwargs = self._create_kwargs(request)
        recorder = self._recorder()

        async def send() -> ChatCompletion:
            completion: ChatCompletion = await self._async_client().chat.completions.create(
                **kwargs
            )
            return completion

        try:
            completion = await recorder.arun(send)
        except _SDK_ERRORS as error:
            raise self._failure(kwargs["model"], error, recorder.records) from None
        return _with_attempts(completion, recorder.records)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """``stream`` on the SDK's async client."""
        kwargs = self._create_kwargs(request)
        recorder = self._recorder()

        async def open_stream() -> tuple[
            Any, AsyncIterator[ChatCompletionChunk], ChatCompletionChunk | None
        ]:
            chunks = await self._async_client().chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
            iterator = chunks.__aiter__()
            try:
                return chunks, iterator, await anext(iterator, None)
            except BaseException:
                await chunks.close()
                raise

        try:
            chunks, iterator, first = await recorder.arun(open_stream)
        except _SDK_ERRORS as error:
            raise self._failure(kwargs["model"], error, recorder.records) from None
        received: list[str] = []
        async with chunks:
            if first is None:
                return
            received.append(_text_of(first))
            yield first
            try:
                async for chunk in iterator:
                    received.append(_text_of(chunk))
                    yield chunk
            except _SDK_ERRORS as error:
                raise self._broken(kwargs["model"], error, "".join(received), recorder) from None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The endpoint's embeddings of ``texts``, in order."""
        if isinstance(texts, str):
            raise ConfigurationTypeError(
                f"embed takes a sequence of texts; got one string: wrap it, [{texts!r:.60}]"
            )
        if not texts:
            return []  # the API refuses an empty input
        model = self.embedding_model or self.model
        recorder = self._recorder()
        try:
            response = recorder.run(
                lambda: self._sync_client().embeddings.create(
                    model=model, input=list(texts), encoding_format="float"
                )
            )
        except _SDK_ERRORS as error:
            raise self._failure(model, error, recorder.records) from None
        if len(response.data) != len(texts):
            raise ModelCallError(
                model, f"asked for {len(texts)} embeddings, got {len(response.data)}"
            )
        return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    def meta(self) -> dict[str, Any]:
        """Which endpoint and model this is (no secrets)."""
        return {
            "model_deploy_type": "saas",
            "backend": "openai_compatible",
            "api": "azure" if self.azure is not None else "openai",
            "model": self.model,
            "base_url": self._resolved_base_url(),
            "embedding_model": self.embedding_model or self.model,
            "max_model_len": None,
            "architectures": None,
            "timeout": self.timeout,
            "max_retries": self.retry.retries,
        }

    # -- clients ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client's connections; the next call opens new ones."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client of the running event loop. A loop closed without it leaves
        its connections to the garbage collector, which warns (ResourceWarning) as it frees them."""
        with self._lock:
            client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _sync_client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                if self.azure is not None:
                    self._client = openai.AzureOpenAI(
                        **self._azure_kwargs(), http_client=self._http_client
                    )
                else:
                    self._client = openai.OpenAI(
                        **self._client_kwargs(), http_client=self._http_client
                    )
            return self._client

    def _async_client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._async_clients if other.is_closed()]:
                del self._async_clients[closed]
            client = self._async_clients.get(loop)
            if client is None:
                if self.azure is not None:
                    client = openai.AsyncAzureOpenAI(
                        **self._azure_kwargs(), http_client=self._async_http_client
                    )
                else:
                    client = openai.AsyncOpenAI(
                        **self._client_kwargs(), http_client=self._async_http_client
                    )
                self._async_clients[loop] = client
            return client

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self._api_key.get_secret_value() if self._api_key is not None else None,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": 0,  # ours is the one retry policy (saas/retry.py)
            "default_headers": self._default_headers,
        }

    def _azure_kwargs(self) -> dict[str, Any]:
        assert self.azure is not None and self.base_url is not None
        kwargs = self._client_kwargs()
        del kwargs["base_url"]
        return {
            **kwargs,
            "azure_endpoint": self.base_url,
            "azure_deployment": self.azure.deployment,
            "api_version": self.azure.api_version,
        }

    def _create_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        # The endpoint renders and counts its own prompts: a template or a context length set
        # for a local model would silently do nothing here, so say so instead.
        if request.chat_template is not None:
            raise ConfigurationError(
                f"{self.name!r} is an OpenAI-compatible endpoint, which renders prompts with its "
                f"own chat template; setup_template({self.name!r}, "
                f"{request.chat_template.name!r}) applies to local deployments only: "
                f"use setup_template({self.name!r}, 'auto')"
            )
        if request.max_model_len is not None:
            raise ConfigurationError(
                f"{self.name!r} is an OpenAI-compatible endpoint, which holds requests to its own "
                f"context length; setup_max_model_length({self.name!r}, "
                f"{request.max_model_len}) applies to local deployments only (which count the "
                "prompt's tokens): drop the call, and bound answers with max_tokens"
            )
        kwargs = request.openai_kwargs()
        # A request naming this backend (a deployment's udf_name) means the endpoint's model.
        named = request.model not in (None, self.name)
        kwargs["model"] = request.model if named else self.model
        return kwargs

    def _resolved_base_url(self) -> str:
        # What the SDK will use; read here so repr and meta never need a client (or a key).
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or _SDK_DEFAULT_BASE_URL

    # -- errors -------------------------------------------------------------------------------

    def _recorder(self) -> AttemptRecorder:
        return AttemptRecorder(self.retry, deployment=self.name, describe=self._attempt_error)

    def _attempt_error(self, error: BaseException) -> str:
        """One failed attempt, as traced and logged."""
        status = error.status_code if isinstance(error, openai.APIStatusError) else None
        prefix = f"HTTP {status}: " if status is not None else ""
        return self._scrub(prefix + self._describe(error))

    def _failure(
        self, model: str, error: BaseException, attempts: Sequence[CallAttempt]
    ) -> ModelCallError:
        """The typed error for a call whose every attempt failed; ``error`` is the last one's."""
        text = self._scrub(self._describe(error))
        tries = f" ({len(attempts)} attempts)" if len(attempts) > 1 else ""
        carried = tuple(attempts) if len(attempts) > 1 else ()
        if isinstance(error, openai.RateLimitError):
            asked = retry_after_s(error)
            if asked is not None and asked > self.retry.max_wait_s:
                tries += (
                    f"; it asked to wait {asked:g} s, more than the {self.retry.max_wait_s:g} s "
                    "this deployment waits"
                )
            return ModelRateLimitError(
                model, text + tries, retry_after_s=asked, call_attempts=carried
            )
        if isinstance(error, openai.APITimeoutError):
            return ModelTimeoutError(model, text + tries, call_attempts=carried)
        if isinstance(error, openai.APIError):
            status = error.status_code if isinstance(error, openai.APIStatusError) else None
            return ModelCallError(model, text + tries, status_code=status, call_attempts=carried)
        if isinstance(error, TRANSPORT_ERRORS):
            return ModelCallError(model, text + tries, call_attempts=carried)
        # The client could not be built (no key): nothing was sent.
        return ModelCallError(
            model,
            f"{text} (the endpoint is {self._resolved_base_url()}; "
            "a server that checks no key takes any, e.g. api_key='EMPTY')",
        )

    def _broken(
        self, model: str, error: BaseException, partial: str, recorder: AttemptRecorder
    ) -> ModelStreamBrokenError:
        where = self._resolved_base_url()
        if isinstance(error, (openai.APIConnectionError, *TRANSPORT_ERRORS)):
            cause = error.__cause__ or error if isinstance(error, openai.APIError) else error
            text = f"the answer from {where} broke off: {cause}"
        else:
            text = self._describe(error)
        attempts = recorder.records
        carried = tuple(attempts) if len(attempts) > 1 else ()
        return ModelStreamBrokenError(
            model, self._scrub(text), partial=partial, call_attempts=carried
        )

    def _describe(self, error: BaseException) -> str:
        where = self._resolved_base_url()
        if isinstance(error, openai.APITimeoutError):
            return f"no answer from {where} within {self.timeout} s"
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__
            if type(cause).__name__ in _BROKEN_OFF:
                return f"the answer from {where} broke off: {cause}"
            return f"cannot reach {where}" + (f": {cause}" if cause is not None else "")
        if isinstance(error, TRANSPORT_ERRORS):
            return f"the answer from {where} broke off: {type(error).__name__}: {error}"
        if not isinstance(error, openai.APIError):
            return str(error)
        body = error.body
        message = body.get("message") if isinstance(body, dict) else None
        text = message if isinstance(message, str) and message else error.message
        details = [
            f"{name} {value}"
            for name, value in (("type", error.type), ("code", error.code))
            if value
        ]
        request_id = getattr(error, "request_id", None)
        if request_id:
            details.append(f"request id {request_id}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{where} answered: {text}{suffix}"

    def _scrub(self, text: str) -> str:
        keys = {self._api_key.get_secret_value() if self._api_key is not None else None}
        keys.add(_client_key(self._client))
        with self._lock:
            keys.update(_client_key(client) for client in self._async_clients.values())
        keys.add(os.environ.get("OPENAI_API_KEY"))
        keys.add(os.environ.get("AZURE_OPENAI_API_KEY"))
        for key in keys:
            if key:
                text = text.replace(key, "***")
        return text


def _client_key(client: Any) -> str | None:
    key = getattr(client, "api_key", None) if client is not None else None
    return key if isinstance(key, str) else None


def _text_of(chunk: ChatCompletionChunk) -> str:
    return "".join(choice.delta.content or "" for choice in chunk.choices)


def _with_attempts(completion: ChatCompletion, attempts: Sequence[CallAttempt]) -> ChatCompletion:
    """A call answered at its first request carries nothing; a retried one, its attempts."""
    return attach_call_attempts(completion, attempts) if len(attempts) > 1 else completion
