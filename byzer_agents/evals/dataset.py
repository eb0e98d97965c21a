"""BFCL-format data: the Berkeley Function Calling Leaderboard's test entries and their possible
answers, read from the copy shipped in this package (V4, Apache-2.0, see data/bfcl/LICENSE) or
from any directory laid out the same way (a full BFCL checkout's ``bfcl_eval/data``).

A directory holds ``BFCL_v4_<category>.json`` (JSON Lines: ``id``, ``question`` — a list of
turns, each a list of OpenAI-style messages —, ``function`` — the tool definitions, in BFCL's
dialect) and ``possible_answer/BFCL_v4_<category>.json`` (``id``, ``ground_truth``: a list of
calls ``{function_name: {argument: [acceptable values...]}}``). Irrelevance categories have no
possible answers: the right answer is to call nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from byzer_agents.exceptions import ConfigurationError

__all__ = [
    "BFCL_DATA_DIR",
    "CATEGORIES",
    "HELDOUT_PER_CATEGORY",
    "SHIPPED_CATEGORIES",
    "BfclCase",
    "CheckKind",
    "check_kind",
    "heldout_ids",
    "load_cases",
    "read_jsonl",
]

BFCL_DATA_DIR = Path(__file__).resolve().parent / "data" / "bfcl"
"""The BFCL V4 sample shipped with the package."""

SHIPPED_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
"""The categories in ``BFCL_DATA_DIR``."""

CATEGORIES = (
    *SHIPPED_CATEGORIES,
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
)
"""The single-turn Python categories BFCL scores with its AST checker; the live ones need a data
directory that holds them (``data_dir``)."""

HELDOUT_PER_CATEGORY = 30
"""Cases per category in the project's fixed eval slice (``heldout_ids``)."""

CheckKind = Literal["simple", "multiple", "parallel", "irrelevance"]


def check_kind(category: str) -> CheckKind:
    """How BFCL scores a category, from its name, as BFCL's own checker decides it."""
    if "irrelevance" in category:
        return "irrelevance"
    if "parallel" in category:
        return "parallel"
    if "multiple" in category:
        return "multiple"
    return "simple"


@dataclass(frozen=True, kw_only=True)
class BfclCase:
    """One BFCL entry with its possible answer."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    """The question's turns, flattened (every single-turn category has one turn)."""
    functions: list[dict[str, Any]]
    """The tool definitions, as BFCL writes them (``"type": "dict"``, dotted names...)."""
    ground_truth: list[dict[str, dict[str, list[Any]]]]
    """The expected calls, each ``{function_name: {argument: [acceptable values]}}``; ``""`` among
    the values: the argument may be left out. Empty for irrelevance (call nothing)."""

    @property
    def kind(self) -> CheckKind:
        """How the case is checked, from its category."""
        return check_kind(self.category)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, blank lines skipped; ConfigurationError naming the
    line that is not JSON."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{path}:{number} is not a JSON line: {exc}") from None


def load_cases(
    category: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> list[BfclCase]:
    """The cases of ``category``; with ``limit``, that many, evenly spaced through the file (the
    same ones every run, spread over its topics rather than its first few)."""
    if category not in CATEGORIES:
        raise ConfigurationError(
            f"unknown BFCL category {category!r}; the categories are {list(CATEGORIES)}"
        )
    if limit is not None and limit < 1:
        raise ConfigurationError(f"limit must be 1 or more cases per category, got {limit}")
    root = Path(data_dir) if data_dir is not None else BFCL_DATA_DIR
    entries_path = root / f"BFCL_v4_{category}.json"
    if not entries_path.is_file():
        raise FileNotFoundError(
            f"no {entries_path.name} in {root}: give a directory laid out as BFCL's "
            f"bfcl_eval/data (the shipped one holds {list(SHIPPED_CATEGORIES)})"
        )
    entries = list(read_jsonl(entries_path))
    answers = _possible_answers(root, category)
    selected = _evenly_spaced(entries, limit)
    return [_case(entry, category, answers) for entry in selected]


def heldout_ids(
    categories: Sequence[str] = SHIPPED_CATEGORIES,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    per_category: int = HELDOUT_PER_CATEGORY,
) -> frozenset[str]:
    """The ids of the project's own fixed eval slice, which training data must exclude.

    Per category, the ``per_category`` cases ``load_cases(category, limit=per_category)`` picks:
    evenly spaced through the file, so the same every run (``byzer-agents eval bfcl --limit 30``
    scores exactly these). A model fine-tuned on BFCL data is scored on them, so
    ``dataset_from_bfcl(exclude_ids=heldout_ids())`` keeps them out of its training data: a score
    on cases the model was trained on would measure memory, not skill.
    """
    return frozenset(
        case.id
        for category in categories
        for case in load_cases(category, data_dir=data_dir, limit=per_category)
    )


def _possible_answers(root: Path, category: str) -> dict[str, list[Any]]:
    if check_kind(category) == "irrelevance":
        return {}
    path = root / "possible_answer" / f"BFCL_v4_{category}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{category} needs its possible answers, and {path} is missing")
    return {answer["id"]: answer["ground_truth"] for answer in read_jsonl(path)}


def _case(entry: dict[str, Any], category: str, answers: dict[str, list[Any]]) -> BfclCase:
    case_id = entry["id"]
    if check_kind(category) != "irrelevance" and case_id not in answers:
        raise ConfigurationError(f"{category} entry {case_id!r} has no possible answer")
    return BfclCase(
        id=case_id,
        category=category,
        messages=[message for turn in entry["question"] for message in turn],
        functions=list(entry["function"]),
        ground_truth=list(answers.get(case_id, [])),
    )


def _evenly_spaced(items: Sequence[Any], limit: int | None) -> list[Any]:
    if limit is None or limit >= len(items):
        return list(items)
    return [items[index * len(items) // limit] for index in range(limit)]
