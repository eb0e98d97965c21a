"""What an evaluation run gives back: one record per case (written as JSON Lines), and the scores
per category read from them — accuracy, the share of outputs that held no readable tool call, and
the median seconds per case."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from byzer_agents.evals.checker import ErrorKind
from byzer_agents.evals.dataset import check_kind

__all__ = ["CaseRecord", "CategoryScore", "EvalReport", "read_records"]


@dataclass(frozen=True, kw_only=True)
class CaseRecord:
    """One case: what the model answered, and how it scored."""

    id: str
    category: str
    correct: bool
    calls: list[dict[str, dict[str, Any]]]
    """The calls scored, in BFCL's decoded form ``{function_name: {argument: value}}``, with the
    functions' original names (``math.factorial``); empty when none could be read."""
    output: str
    """The model's text; for native tool calls (which come without text), the calls as JSON
    ``[{"name": ..., "arguments": ...}]`` under the names the model used."""
    seconds: float
    """Wall time of the request, end to end."""
    unparseable: bool = False
    """A call was expected, and none could be read from the output."""
    error_kind: ErrorKind | None = None
    reason: str | None = None
    """Why the answer is wrong, naming the argument and value; or why the model failed."""
    schema_error: str | None = None
    """Why the framework's schema validation refused the calls (they are scored as written)."""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (one line of ``EvalReport.write_jsonl``)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseRecord:
        """The record a ``to_json`` object holds."""
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class CategoryScore:
    """How a model did on one category: cases, correct ones, unreadable outputs, failures."""

    category: str
    cases: int
    correct: int
    unparseable: int | None
    """Outputs with no readable call; None for irrelevance, where no call is the right answer."""
    model_errors: int
    """Requests the model endpoint failed to answer (scored wrong)."""
    median_seconds: float

    @property
    def accuracy(self) -> float:
        """Correct cases over all cases of the category."""
        return _share(self.correct, self.cases)

    @property
    def unparseable_share(self) -> float | None:
        """Outputs with no readable call over all cases; None for irrelevance."""
        if self.unparseable is None or not self.cases:
            return None
        return _share(self.unparseable, self.cases)


@dataclass(frozen=True, kw_only=True)
class EvalReport:
    """A scored run: every case's record, and the scores per category and overall."""

    model: str
    constrained_decoding: bool
    """Whether constrained decoding was asked for (local backends honour it)."""
    tool_choice: str = "auto"
    records: list[CaseRecord] = field(default_factory=list)

    @property
    def categories(self) -> list[CategoryScore]:
        """The scores per category, in the order the categories were run."""
        by_category: dict[str, list[CaseRecord]] = {}
        for record in self.records:
            by_category.setdefault(record.category, []).append(record)
        return [_score(category, records) for category, records in by_category.items()]

    @property
    def accuracy(self) -> float:
        """Correct cases over all cases."""
        return _share(sum(r.correct for r in self.records), len(self.records))

    @property
    def ast_summary(self) -> float | None:
        """BFCL's non-live AST summary: the unweighted mean of the accuracies of the categories
        that expect calls (here simple_python stands for BFCL's simple, which also averages Java
        and JavaScript); irrelevance is not in it. None when no such category was run."""
        answered = [s.accuracy for s in self.categories if check_kind(s.category) != "irrelevance"]
        return statistics.fmean(answered) if answered else None

    @property
    def unparseable_share(self) -> float | None:
        """Outputs with no readable call, over the cases that expect a call."""
        expecting = [r for r in self.records if check_kind(r.category) != "irrelevance"]
        if not expecting:
            return None
        return _share(sum(r.unparseable for r in expecting), len(expecting))

    @property
    def median_seconds(self) -> float:
        """The median wall time of a case (0 with no cases)."""
        return _median(r.seconds for r in self.records)

    def write_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """One JSON line per case; the file is replaced."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as lines:
            for record in self.records:
                lines.write(json.dumps(record.to_json(), ensure_ascii=False, default=str) + "\n")
        return target


def read_records(path: str | os.PathLike[str]) -> list[CaseRecord]:
    """The records a run wrote with ``EvalReport.write_jsonl``."""
    with Path(path).open(encoding="utf-8") as lines:
        return [CaseRecord.from_json(json.loads(line)) for line in lines if line.strip()]


def _score(category: str, records: Sequence[CaseRecord]) -> CategoryScore:
    expects_calls = check_kind(category) != "irrelevance"
    return CategoryScore(
        category=category,
        cases=len(records),
        correct=sum(r.correct for r in records),
        unparseable=sum(r.unparseable for r in records) if expects_calls else None,
        model_errors=sum(r.error_kind == "model_error" for r in records),
        median_seconds=_median(r.seconds for r in records),
    )


def _median(values: Iterable[float]) -> float:
    collected = list(values)
    return statistics.median(collected) if collected else 0.0


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
