"""benchmarks/RESULTS.md: each benchmark script owns one ``## `` section and rewrites only that."""

from __future__ import annotations

import importlib.metadata
import platform
import re
from pathlib import Path

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the script it names. Figures are measured in one run, on one\n"
    "machine (2 CPU cores, CPU only); absolute times vary between machines, so read the ratios.\n"
)


def library_versions(*packages: str) -> str:
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in packages)
    return f"Python {platform.python_version()}, {versions}; ours: byzer_agents from this checkout"


def replace_section(document: str, heading: str, section: str) -> str:
    """Put ``section`` (which starts with ``heading``) in place of the text from ``heading`` to the
    next ``## `` heading, or append it when the document has no such heading."""
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    replacement = section.rstrip("\n") + "\n\n"
    if pattern.search(document):
        return pattern.sub(lambda _: replacement, document, count=1).rstrip("\n") + "\n"
    return document.rstrip("\n") + "\n\n" + replacement.rstrip("\n") + "\n"


def write_section(heading: str, section: str) -> None:
    document = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else RESULTS_HEADER
    RESULTS_PATH.write_text(replace_section(document, heading, section))
