"""`import byzer_agents` stays light: no heavy runtime is imported until a backend needs it."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "ray", "transformers", "vllm", "duckdb", "deepspeed", "openai")


def test_importing_the_package_pulls_in_no_heavy_runtime() -> None:
    code = (
        "import json, sys, byzer_agents\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_public_api_is_importable_from_the_top() -> None:
    import byzer_agents

    for name in byzer_agents.__all__:
        assert getattr(byzer_agents, name) is not None, name
