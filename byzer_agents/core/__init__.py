"""What every layer builds on: the one chat protocol every backend answers, reading tool calls and
JSON out of model text, and the record of a call's attempts.

Nothing here imports the loop (``byzer_agents.chat``) or the runtime (``byzer_agents.llm_runtime``);
both import from here. See docs/architecture.md.
"""
