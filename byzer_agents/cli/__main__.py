"""``python -m byzer_agents.cli``: the ``byzer-agents`` command."""

from byzer_agents.cli import app

app()
