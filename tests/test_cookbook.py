"""Every cookbook script runs as a person would run it, and shows what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"


def run_script(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(COOKBOOK / name)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tools_and_schemas_shows_schemas_and_a_refused_call() -> None:
    output = run_script("01_tools_and_schemas.py")
    assert '"name": "compute_date_range"' in output
    assert '"enum": [\n' in output and '"fortnight"' not in output.split("refused")[0]
    assert "refused: invalid arguments for tool 'compute_date_range'" in output
    assert "  - count: Input should be a valid integer" in output
    assert "  - unit: 'fortnight' is not one of ['day', 'week', 'month', 'year']" in output
    assert "  - tz: unexpected argument; the tool takes: count, unit" in output
    assert output.rstrip().endswith("What was the date two weeks ago?")
