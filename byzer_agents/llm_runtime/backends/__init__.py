"""Backends: each answers the one protocol of ``byzer_agents.chat.protocol`` for a kind of model."""
