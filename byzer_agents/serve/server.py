"""Running the app: in the foreground (``byzer-agents serve``), or on a thread of its own with a
port picked by the system (tests, notebooks, the cookbook).

Both run uvicorn with the event loop's thread pool sized for the models served in-process: each
such request holds a thread for as long as the model works on it, and asyncio's default pool
(``min(32, CPUs + 4)`` threads) would queue requests the in-flight limit had let in.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import SecretStr

from byzer_agents.exceptions import UnprotectedServerError, UsageError
from byzer_agents.serve.app import DEFAULT_CAPACITY, DEFAULT_MAX_BODY_BYTES, create_app

if TYPE_CHECKING:
    from byzer_agents.llm import LLM

__all__ = ["BackgroundServer", "check_exposure", "serve"]

LOOPBACK = "127.0.0.1"
_STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start


def serve(
    llm: LLM | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 8000,
    api_key: str | SecretStr | None = None,
    allow_unauthenticated_network: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
) -> None:
    """Serve every model ``llm`` reaches (default: the local Ray cluster's deployments) until
    interrupted. Binds 127.0.0.1 unless ``host`` says otherwise; any other address needs an
    ``api_key`` unless ``allow_unauthenticated_network`` (``UnprotectedServerError``).

    Ctrl-C returns; SIGTERM shuts the server down and exits with status 0."""
    check_exposure(host, api_key, allow_unauthenticated_network=allow_unauthenticated_network)
    from byzer_agents.llm import LLM

    llm = llm or LLM()
    # Joins the Ray cluster now: Ray's driver installs a C++ handler for SIGTERM that dumps a
    # stack trace, and only a handler set after it (ours, then uvicorn's) takes its place.
    models = llm.list_models()
    app = create_app(llm, api_key=api_key, max_body_bytes=max_body_bytes)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
    server = _Server(config, threads=_threads_for(DEFAULT_CAPACITY, len(models)))
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_quietly) if in_main_thread else None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise SystemExit(_STARTUP_FAILURE)  # uvicorn has logged why


def check_exposure(
    host: str, api_key: str | SecretStr | None, *, allow_unauthenticated_network: bool
) -> None:
    """Refuse (``UnprotectedServerError``) to listen beyond loopback with no API key, unless
    the caller says so explicitly."""
    if api_key is None and not allow_unauthenticated_network and not is_loopback(host):
        raise UnprotectedServerError(host)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    # SIGTERM asks the server to stop: uvicorn shuts down, then raises it again here.
    raise SystemExit(0)


def _threads_for(capacity: int, models: int) -> int:
    """Threads enough for every model served in-process to have ``capacity`` requests in flight
    (each holds one); Ray deployments are called without threads, and an unused thread is never
    started."""
    return capacity * max(models, 1)


class _Server(uvicorn.Server):
    """uvicorn's server, with the event loop's thread pool of ``threads`` threads."""

    def __init__(self, config: uvicorn.Config, *, threads: int) -> None:
        super().__init__(config)
        self._threads = threads

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        pool = ThreadPoolExecutor(self._threads, thread_name_prefix="byzer-agents-model")
        asyncio.get_running_loop().set_default_executor(pool)
        await super().serve(sockets=sockets)


class BackgroundServer:
    """The server on a daemon thread: ``with BackgroundServer(llm) as server: server.url``.
    ``options`` go to ``create_app``; beyond loopback, as ``serve``."""

    def __init__(
        self,
        llm: LLM,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        log_level: str = "warning",
        allow_unauthenticated_network: bool = False,
        **options: Any,
    ) -> None:
        check_exposure(
            host,
            options.get("api_key"),
            allow_unauthenticated_network=allow_unauthenticated_network,
        )
        self.app = create_app(llm, **options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(self.app, log_level=log_level, lifespan="off")
        capacity = int(options.get("default_capacity", DEFAULT_CAPACITY))
        self._server = _Server(config, threads=_threads_for(capacity, len(llm.list_models())))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"byzer-agents-serve-{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The OpenAI base URL: ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start serving and return once the server listens (UsageError if it has not within
        ``timeout_s``)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UsageError(f"the server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving (waiting up to 10 s for requests in flight) and close the socket."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
