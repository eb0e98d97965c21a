"""Running the app: in the foreground (``byzer-agents serve``), or on a thread of its own with a
port picked by the system (tests, notebooks, the cookbook)."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from byzer_agents.serve.app import DEFAULT_MAX_BODY_BYTES, create_app

if TYPE_CHECKING:
    from byzer_agents.llm import LLM

__all__ = ["BackgroundServer", "serve"]

LOOPBACK = "127.0.0.1"


def serve(
    llm: LLM | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 8000,
    api_key: str | SecretStr | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
) -> None:
    """Serve every model ``llm`` reaches (default: the local Ray cluster's deployments) until
    interrupted. Binds 127.0.0.1 unless ``host`` says otherwise."""
    import uvicorn

    from byzer_agents.llm import LLM

    app = create_app(llm or LLM(), api_key=api_key, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class BackgroundServer:
    """The server on a daemon thread: ``with BackgroundServer(llm) as server: server.url``."""

    def __init__(
        self,
        llm: LLM,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        log_level: str = "warning",
        **options: Any,
    ) -> None:
        import uvicorn

        self.app = create_app(llm, **options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(self.app, log_level=log_level, lifespan="off")
        self._server = uvicorn.Server(config)
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
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
