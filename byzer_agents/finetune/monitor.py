"""What a running fine-tune leaves to watch it by, written at every log step by one transformers
callback: ``metrics.jsonl`` (one line per log, appended, so a crash keeps what was logged), a PNG
loss curve (``loss.png``, rewritten each time) and a progress hook (step, total, last loss) that
the job layer turns into its record. Only the world's rank 0 writes.

TensorBoard event files are transformers' own ``TensorBoardCallback`` (``report_to=
["tensorboard"]``, directory from ``TENSORBOARD_LOGGING_DIR``); this module does not redo them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

__all__ = ["LOSS_PLOT", "METRICS_FILE", "TrainingMonitor", "plot_losses", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
LOSS_PLOT = "loss.png"

ProgressHook = Callable[[int, int, "float | None"], None]
"""Called with (global step, total steps, last training loss or None)."""


class TrainingMonitor(TrainerCallback):
    """Appends every log to ``output_dir/metrics.jsonl``, redraws ``output_dir/loss.png`` and calls
    ``on_progress`` after every step and log (rank 0 only)."""

    def __init__(self, output_dir: str | os.PathLike[str], on_progress: ProgressHook | None = None):
        self.output_dir = Path(output_dir)
        self.on_progress = on_progress
        self._last_loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Report the starting step (and, on a resumed run, the last loss logged)."""
        if state.is_world_process_zero:
            self._last_loss = _last_logged_loss(state.log_history)
            self._progress(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Report the step just done."""
        if state.is_world_process_zero:
            self._progress(state)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        """Append what the trainer logged to ``metrics.jsonl`` (synced to disk), redraw
        ``loss.png`` and report the progress."""
        if not state.is_world_process_zero or not logs:
            return
        entry: dict[str, Any] = {"step": int(state.global_step), "time": round(time.time(), 3)}
        entry.update({k: v for k, v in logs.items() if isinstance(v, int | float | str)})
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / METRICS_FILE).open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(entry) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
        if isinstance(logs.get("loss"), int | float):
            self._last_loss = float(logs["loss"])
        plot_losses(read_metrics(self.output_dir), self.output_dir / LOSS_PLOT)
        self._progress(state)

    def _progress(self, state: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(int(state.global_step), int(state.max_steps or 0), self._last_loss)


def read_metrics(output_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every log line a run (and the runs it resumed) wrote to ``metrics.jsonl``; a line cut
    short by a crash is skipped."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def plot_losses(entries: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Draw training (and eval) loss against the step into a PNG at ``path`` (matplotlib, Agg:
    no display needed). A step logged twice (a resumed run) keeps its newest value."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    curves: dict[str, dict[int, float]] = {"loss": {}, "eval_loss": {}}
    for entry in entries:
        for key, points in curves.items():
            value = entry.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                points[int(entry.get("step", 0))] = float(value)
    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
    try:
        for key, label in (("loss", "train loss"), ("eval_loss", "eval loss")):
            ordered = sorted(curves[key].items())
            if ordered:
                axes.plot(*zip(*ordered, strict=True), marker="o", markersize=3, label=label)
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.grid(alpha=0.3)
        if any(curves.values()):
            axes.legend()
        figure.tight_layout()
        target = Path(path)
        partial = target.with_name(target.name + ".tmp")
        figure.savefig(partial, format="png")
        os.replace(partial, target)
    finally:
        pyplot.close(figure)
    return target


def _last_logged_loss(history: list[dict[str, Any]]) -> float | None:
    losses = [entry["loss"] for entry in history if isinstance(entry.get("loss"), int | float)]
    return float(losses[-1]) if losses else None
