"""Load the JSONSchemaBench sample shipped in tests/data/jsonschemabench (MIT, see its README)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SAMPLE = (
    Path(__file__).resolve().parent.parent / "data" / "jsonschemabench" / "maskbench_sample.jsonl"
)


def schemas() -> Iterator[dict[str, Any]]:
    """Each entry: ``id``, ``schema``, ``tests`` (``valid`` and ``data``), ``meta``."""
    with SAMPLE.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def is_object_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and (schema.get("type") == "object" or "properties" in schema)
