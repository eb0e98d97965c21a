"""``OpenAIBackend``: any OpenAI-compatible endpoint (OpenAI, Azure's v1 API, vLLM, our own server)
through the official ``openai`` SDK, without Ray.

What is fragile here is the API key: it lives only inside the SDK clients and a ``SecretStr``, and
every error is rebuilt as a ``ModelCallError`` with the key scrubbed out, because servers may echo
a wrong key back in their error message. The SDK's exception is not chained (its text holds that
message), so a traceback cannot print the key either.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import openai
from pydantic import SecretStr

from byzer_agents.chat.protocol import Capabilities
from byzer_agents.exceptions import ModelCallError
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["OpenAIBackend"]

_SDK_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's own errors (openai 3.x uses httpx2; 1.x and 2.x, httpx). The SDK wraps
    them only while it sends a request: a stream that breaks while it is read raises them raw."""
    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()
_DEFAULT_CAPABILITIES = Capabilities(
    native_tools=True,
    json_schema_output=True,
    constrained_decoding=False,
    streaming=True,
    embeddings=True,
)


class OpenAIBackend:
    """A model behind an OpenAI-compatible HTTP API, answering the one protocol.

    ``api_key=None`` lets the SDK read ``OPENAI_API_KEY``; ``base_url=None`` lets it read
    ``OPENAI_BASE_URL`` or use OpenAI's. A server that checks no key still needs some value
    (``"EMPTY"`` is the custom). The SDK itself retries connection errors, 408, 409, 429 and
    5xx answers ``max_retries`` times with backoff.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        capabilities: Capabilities | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        embedding_model: str | None = None,
        http_client: Any = None,
        async_http_client: Any = None,
    ) -> None:
        """``http_client`` / ``async_http_client``: the SDK's own HTTP clients (proxies, custom
        transports); the async one serves a single event loop, as its connections do."""
        if not model:
            raise ValueError("model must name the endpoint's model, e.g. 'gpt-4o-mini'; got ''")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more; got {max_retries}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None (no limit); got {timeout}")
        self.model = model
        self.base_url = base_url
        self.embedding_model = embedding_model
        self.timeout = timeout
        self.max_retries = max_retries
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
        return self._capabilities

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self._resolved_base_url()!r})"

    # -- the one protocol -------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatCompletion:
        kwargs = self._create_kwargs(request)
        with self._model_call_errors(kwargs["model"]):
            completion: ChatCompletion = self._sync_client().chat.completions.create(**kwargs)
        return completion

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        kwargs = self._create_kwargs(request)
        with self._model_call_errors(kwargs["model"]):
            chunks: openai.Stream[ChatCompletionChunk] = (
                self._sync_client().chat.completions.create(
                    **kwargs, stream=True, stream_options={"include_usage": True}
                )
            )
        with self._model_call_errors(kwargs["model"], reading_stream=True), chunks:
            yield from chunks  # leaving the block closes the connection when the caller stops

    async def achat(self, request: ChatRequest) -> ChatCompletion:
        kwargs = self._create_kwargs(request)
        with self._model_call_errors(kwargs["model"]):
            client = self._async_client()
            completion: ChatCompletion = await client.chat.completions.create(**kwargs)
        return completion

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        kwargs = self._create_kwargs(request)
        with self._model_call_errors(kwargs["model"]):
            client = self._async_client()
            chunks: openai.AsyncStream[ChatCompletionChunk] = await client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        with self._model_call_errors(kwargs["model"], reading_stream=True):
            async with chunks:
                async for chunk in chunks:
                    yield chunk

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError(
                f"embed takes a sequence of texts; got one string: wrap it, [{texts!r:.60}]"
            )
        if not texts:
            return []  # the API refuses an empty input
        model = self.embedding_model or self.model
        with self._model_call_errors(model):
            response = self._sync_client().embeddings.create(
                model=model, input=list(texts), encoding_format="float"
            )
        if len(response.data) != len(texts):
            raise ModelCallError(
                model, f"asked for {len(texts)} embeddings, got {len(response.data)}"
            )
        return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    def meta(self) -> dict[str, Any]:
        return {
            "model_deploy_type": "saas",
            "backend": "openai_compatible",
            "model": self.model,
            "base_url": self._resolved_base_url(),
            "embedding_model": self.embedding_model or self.model,
            "max_model_len": None,
            "architectures": None,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
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
                self._client = openai.OpenAI(**self._client_kwargs(), http_client=self._http_client)
            return self._client

    def _async_client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._async_clients if other.is_closed()]:
                del self._async_clients[closed]
            client = self._async_clients.get(loop)
            if client is None:
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
            "max_retries": self.max_retries,
            "default_headers": self._default_headers,
        }

    def _create_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs = request.openai_kwargs()
        kwargs["model"] = request.model or self.model
        return kwargs

    def _resolved_base_url(self) -> str:
        # What the SDK will use; read here so repr and meta never need a client (or a key).
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or _SDK_DEFAULT_BASE_URL

    # -- errors -------------------------------------------------------------------------------

    @contextmanager
    def _model_call_errors(self, model: str, *, reading_stream: bool = False) -> Iterator[None]:
        """``reading_stream``: the answer had begun, so a lost connection means it broke off
        (newer SDKs wrap that as APIConnectionError, older ones raise the transport's error)."""
        try:
            yield
        except openai.APIError as error:
            if reading_stream and isinstance(error, openai.APIConnectionError):
                raise self._broke_off(model, error.__cause__ or error) from None
            raise ModelCallError(
                model, self._scrub(self._describe(error)), status_code=_status_code(error)
            ) from None
        except _TRANSPORT_ERRORS as error:
            raise self._broke_off(model, error) from None
        except openai.OpenAIError as error:  # the client could not be built: no key
            raise ModelCallError(
                model,
                f"{self._scrub(str(error))} (the endpoint is {self._resolved_base_url()}; "
                "a server that checks no key takes any, e.g. api_key='EMPTY')",
            ) from None

    def _broke_off(self, model: str, cause: BaseException) -> ModelCallError:
        where = self._resolved_base_url()
        return ModelCallError(model, self._scrub(f"the answer from {where} broke off: {cause}"))

    def _describe(self, error: openai.APIError) -> str:
        where = self._resolved_base_url()
        if isinstance(error, openai.APITimeoutError):
            return (
                f"no answer from {where} within {self.timeout} s "
                f"(tried {self.max_retries + 1} time(s))"
            )
        if isinstance(error, openai.APIConnectionError):
            cause = f": {error.__cause__}" if error.__cause__ is not None else ""
            return f"cannot reach {where}{cause} (tried {self.max_retries + 1} time(s))"
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
        keys.add(self._client.api_key if self._client is not None else None)
        with self._lock:
            keys.update(client.api_key for client in self._async_clients.values())
        keys.add(os.environ.get("OPENAI_API_KEY"))
        for key in keys:
            if key:
                text = text.replace(key, "***")
        return text


def _status_code(error: openai.APIError) -> int | None:
    if isinstance(error, openai.APIStatusError):
        return error.status_code
    return None
