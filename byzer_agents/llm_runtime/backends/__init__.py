"""Backends: each answers the one protocol of ``byzer_agents.core.protocol`` for a kind of model."""
