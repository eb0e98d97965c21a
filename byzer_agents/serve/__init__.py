"""The OpenAI-compatible HTTP server over deployed models (``byzer-agents serve``). Needs the
``serve`` extra (FastAPI, uvicorn)."""

from byzer_agents.serve.app import create_app
from byzer_agents.serve.server import BackgroundServer, serve

__all__ = ["BackgroundServer", "create_app", "serve"]
