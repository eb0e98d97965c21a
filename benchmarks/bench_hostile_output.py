"""Time what a hostile or broken model reply costs our readers, against ``json_repair`` alone (the
library our parser used to call with no budget), at sizes from 25 KB to 400 KB.

Inputs, each cut to the size in characters (1 KB = 1,000 ASCII characters):

- ``{ {``: ``"{ " * k``, objects with no key (json_repair re-reads the rest of its input for each);
- ``{x}``: ``"{x} " * k``, prose braces around a bare word;
- ``{{{`` unclosed: ``"{" * k``, nested empty objects that never close;
- ``[[[ ]]]`` deep: ``"[" * k + "]" * k``, valid JSON nested k levels;
- garbage: seeded random printable text, heavy in brackets and quotes;
- valid answer: a long valid JSON object (a catalogue of items).

Readers: ours ``extract_json``, ``parse_tool_calls`` and ``parse_partial_json`` (the reader behind
``stream_extract``'s partial answers), in process, best of a few repeats; the peer
``json_repair.loads`` in a subprocess per input under a time limit, so a pathological input records
``> 20`` instead of hanging the run. Then ``stream_extract``-style reading: a JSON answer fed in
4-character pieces to ``PartialAnswers`` (what ``stream_extract`` does), against re-reading the
whole prefix for every piece (the old, quadratic way); and ``python_eval`` refusing
``(10**4299)**10000``.

Run: ``.venv/bin/python benchmarks/bench_hostile_output.py [--contended]`` (under 3 minutes). It
checks, untimed, what each reader made of each input (refused, nothing, or the right value), prints
markdown tables and writes its section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import random
import string
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import RESULTS_PATH, library_versions, write_section  # noqa: E402

from byzer_agents.chat.streaming import PartialAnswers, partial_value  # noqa: E402
from byzer_agents.core.parsing import (  # noqa: E402
    extract_json,
    parse_partial_json,
    parse_tool_calls,
)
from byzer_agents.tools.builtin import python_eval  # noqa: E402

SECTION_HEADING = "## Hostile model output: bounded reading (bench_hostile_output.py)"
VERSIONED = ("json_repair", "pydantic-core")
KB = 1_000
SIZES = (25 * KB, 50 * KB, 100 * KB, 200 * KB, 400 * KB)
GROWTH = (100 * KB, 400 * KB)
"""Growth is time at the second size over time at the first: about 4 when reading is linear,
about 16 when it is quadratic."""
PEER_LIMIT_S = 20.0
REPEAT = 3
SECONDS_PER_REPEAT = 0.05
"""Each repeat of ours runs the reader enough times to last about this long; the best counts."""
PIECE_CHARS = 4
STREAM_SIZES = (5 * KB, 10 * KB, 20 * KB, 40 * KB)
REREAD_SIZES = (5 * KB, 10 * KB, 20 * KB)
EXPRESSION = "(10**4299)**10000"


# --- the inputs --------------------------------------------------------------------------------


class Item(BaseModel):
    id: int
    name: str
    tags: list[str]
    price: float
    in_stock: bool


CATALOGUE_TITLE = "Spring catalogue"


class Catalogue(BaseModel):
    """The long valid answer: what a model asked for a big typed answer writes."""

    title: str
    items: list[Item]


def catalogue_json(size: int) -> str:
    """A valid ``Catalogue`` of ``size`` characters or a little fewer (an item is about 100)."""
    items: list[dict[str, Any]] = []
    length = len(json.dumps({"title": CATALOGUE_TITLE, "items": []}))
    while length + len(json.dumps(catalogue_item(len(items)))) + 2 <= size:
        length += len(json.dumps(catalogue_item(len(items)))) + 2  # and its ", "
        items.append(catalogue_item(len(items)))
    return json.dumps({"title": CATALOGUE_TITLE, "items": items})


def catalogue_item(index: int) -> dict[str, Any]:
    return {
        "id": index,
        "name": f"Item number {index}",
        "tags": ["garden", "tools"] if index % 2 else ["kitchen"],
        "price": round(index * 1.25, 2),
        "in_stock": index % 3 != 0,
    }


_GARBAGE_ALPHABET = string.ascii_letters + string.digits + " ,:.;-_=" * 3 + "{}[]\"'" * 6


def garbage(size: int) -> str:
    return "".join(random.Random(20261202).choices(_GARBAGE_ALPHABET, k=size))


INPUTS: dict[str, Callable[[int], str]] = {
    "`{ {` (`'{ ' * k`)": lambda size: "{ " * (size // 2),
    "`{x}` (`'{x} ' * k`)": lambda size: "{x} " * (size // 4),
    "`{{{` unclosed (`'{' * k`)": lambda size: "{" * size,
    "`[[[ ]]]` deep (`'[' * k + ']' * k`)": lambda size: "[" * (size // 2) + "]" * (size // 2),
    "garbage (seeded random, brackets and quotes)": garbage,
    "valid JSON answer": catalogue_json,
}
VALID = "valid JSON answer"


# --- ours: in process --------------------------------------------------------------------------


def outcome_of(read: Callable[[str], Any], text: str) -> str:
    """What a reader made of a text, in a word: the type it returned or the error it raised."""
    try:
        value = read(text)
    except Exception as exc:
        return type(exc).__name__
    return "None" if value is None else type(value).__name__


def quietly(read: Callable[[str], Any], text: str) -> Callable[[], None]:
    def call() -> None:
        with contextlib.suppress(Exception):  # a refusal is the answer; its cost is what is timed
            read(text)

    return call


def best_seconds(call: Callable[[], None]) -> float:
    timer = timeit.Timer(call)
    once = min(timer.repeat(number=1, repeat=1))  # also the warm-up
    number = max(1, int(SECONDS_PER_REPEAT / max(once, 1e-7)))
    return min(once, *(timer.timeit(number) / number for _ in range(REPEAT)))


OURS: dict[str, Callable[[str], Any]] = {
    "ours `extract_json`": extract_json,
    "ours `parse_tool_calls`": parse_tool_calls,
    "ours `parse_partial_json`": parse_partial_json,
}


def check_ours(kind: str, text: str) -> dict[str, str]:
    """Untimed: what each reader of ours made of the text, checked where the answer is known."""
    outcomes = {name: outcome_of(read, text) for name, read in OURS.items()}
    if kind == VALID:
        expected = json.loads(text)
        assert extract_json(text) == expected, "extract_json misread the valid answer"
        assert parse_partial_json(text) == expected, "parse_partial_json misread the valid answer"
        assert parse_tool_calls(text) is None, "parse_tool_calls took the answer for a call"
    else:
        assert outcomes["ours `parse_tool_calls`"] == "None", f"{kind}: read as a tool call"
    return outcomes


# --- the peer: json_repair in a subprocess, under a time limit ---------------------------------

_PEER_PROGRAM = """
import json, sys, time
import json_repair
text = sys.stdin.read()
print("ready", flush=True)
start = time.perf_counter()
try:
    value = json_repair.loads(text)
    outcome = type(value).__name__
except BaseException as exc:
    outcome = type(exc).__name__
print(json.dumps({"seconds": time.perf_counter() - start, "outcome": outcome}), flush=True)
"""


@dataclasses.dataclass
class PeerTime:
    seconds: float
    """``math.inf`` when it did not finish within the limit (or was not run, see ``skipped``)."""
    outcome: str
    skipped: bool = False


def peer_seconds(text: str) -> PeerTime:
    """``json_repair.loads(text)`` once, timed in a fresh interpreter (after its import and after
    reading the input), killed at ``PEER_LIMIT_S``."""
    with subprocess.Popen(
        [sys.executable, "-c", _PEER_PROGRAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(text)
        process.stdin.close()
        if process.stdout.readline().strip() != "ready":
            process.wait()
            return PeerTime(math.nan, f"exit {process.returncode} before reading")
        try:
            process.wait(timeout=PEER_LIMIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return PeerTime(math.inf, f"killed at {PEER_LIMIT_S:.0f} s")
        line = process.stdout.readline()
        if process.returncode != 0 or not line:
            return PeerTime(math.nan, f"crashed (exit {process.returncode})")
        result = json.loads(line)
        return PeerTime(result["seconds"], result["outcome"])


def peer_row(make: Callable[[int], str]) -> dict[int, PeerTime]:
    """The peer at each size, smallest first. A size is not run once the size before it took over
    half the limit or was killed: its time grows at least in step with the input, so it would
    pass the limit too."""
    times: dict[int, PeerTime] = {}
    previous: tuple[int, PeerTime] | None = None
    for size in SIZES:
        if previous is not None and previous[1].seconds * size / previous[0] > PEER_LIMIT_S:
            times[size] = PeerTime(math.inf, previous[1].outcome, skipped=True)
            continue
        times[size] = peer_seconds(make(size))
        previous = (size, times[size])
        print(f"    json_repair {size // KB:>4} KB {fmt(times[size].seconds):>8} s", flush=True)
    return times


# --- streamed answers ---------------------------------------------------------------------------


@dataclasses.dataclass
class StreamRun:
    seconds: float
    partials: int
    last: Any


def pieces_of(text: str) -> list[str]:
    return [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]


def stream_paced(pieces: list[str]) -> StreamRun:
    """What ``stream_extract`` does with the pieces: ``PartialAnswers.add`` each one."""
    start = time.perf_counter()
    answers = PartialAnswers(Catalogue)
    partials, last = 0, None
    for piece in pieces:
        partial = answers.add(piece)
        if partial is not None:
            partials, last = partials + 1, partial
    return StreamRun(time.perf_counter() - start, partials, last)


def stream_rereading(pieces: list[str]) -> StreamRun:
    """The old way: the whole text so far read again for every piece."""
    start = time.perf_counter()
    text, partials, last = "", 0, None
    for piece in pieces:
        text += piece
        partial = partial_value(Catalogue, text)
        if partial is not None and partial != last:
            partials, last = partials + 1, partial
    return StreamRun(time.perf_counter() - start, partials, last)


def check_stream(name: str, text: str, run: StreamRun, *, complete: bool) -> None:
    """The last partial is the answer so far: the right title, and its items (None while the
    last item is incomplete: the list is left out until it validates) the first of the answer's."""
    full = Catalogue.model_validate_json(text).model_dump()
    assert run.last is not None and run.partials > 0, f"{name}: no partial answer"
    got = run.last.model_dump()
    assert got["title"] == full["title"], f"{name}: wrong title {got['title']!r}"
    items = got["items"] or []
    assert items == full["items"][: len(items)], f"{name}: items out of place"
    if complete:
        assert got == full, f"{name}: the last partial is not the whole answer"


def measure_streams() -> tuple[dict[int, StreamRun], dict[int, StreamRun]]:
    paced, rereading = {}, {}
    for size in STREAM_SIZES:
        text = catalogue_json(size)
        pieces = pieces_of(text)
        paced[size] = stream_paced(pieces)
        check_stream("PartialAnswers", text, paced[size], complete=False)
        print(f"  PartialAnswers   {size // KB:>3} KB {paced[size].seconds:8.3f} s", flush=True)
        if size in REREAD_SIZES:
            rereading[size] = stream_rereading(pieces)
            check_stream("re-reading", text, rereading[size], complete=True)
            print(
                f"  re-reading       {size // KB:>3} KB {rereading[size].seconds:8.3f} s",
                flush=True,
            )
    return paced, rereading


# --- python_eval ----------------------------------------------------------------------------------


def python_eval_refusal() -> tuple[float, str]:
    try:
        python_eval(EXPRESSION)
    except ValueError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"python_eval computed {EXPRESSION}")
    assert "too large" in message, message
    return best_seconds(quietly(python_eval, EXPRESSION)), message


# --- reporting ------------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return f"> {PEER_LIMIT_S:.0f}"
    if seconds >= 1:
        return f"{seconds:.2f}"
    return f"{seconds:.4f}" if seconds >= 0.001 else f"{seconds:.6f}"


def ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return "-"
    if math.isinf(numerator):
        return f"> {PEER_LIMIT_S / denominator:,.0f}" if not math.isinf(denominator) else "-"
    value = numerator / denominator
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def growth(times: dict[int, float]) -> str:
    low, high = times[GROWTH[0]], times[GROWTH[1]]
    if math.isinf(high) and not math.isinf(low):
        return f"> {PEER_LIMIT_S / low:.1f}"
    return ratio(high, low)


@dataclasses.dataclass
class KindResult:
    ours: dict[str, dict[int, float]]
    outcomes: dict[str, str]
    peer: dict[int, PeerTime]


def readers_table(results: dict[str, KindResult]) -> str:
    sizes = " | ".join(f"{size // KB} KB" for size in SIZES)
    low, high = (f"{size // KB} KB" for size in GROWTH)
    lines = [
        f"| input | reader | {sizes} | growth {high} / {low} | json_repair / this at {low} "
        f"| at {high} | result |",
        "|---|---|" + "---:|" * (len(SIZES) + 3) + "---|",
    ]
    for kind, result in results.items():
        peer = {size: time.seconds for size, time in result.peer.items()}
        for name, times in result.ours.items():
            cells = " | ".join(fmt(times[size]) for size in SIZES)
            lines.append(
                f"| {kind} | {name} | {cells} | {growth(times)} "
                f"| {ratio(peer[GROWTH[0]], times[GROWTH[0]])} "
                f"| {ratio(peer[GROWTH[1]], times[GROWTH[1]])} | {result.outcomes[name]} |"
            )
        cells = " | ".join(
            f"({fmt(peer[size])})" if result.peer[size].skipped else fmt(peer[size])
            for size in SIZES
        )
        outcomes = sorted({time.outcome for time in result.peer.values()})
        lines.append(
            f"| {kind} | peer `json_repair.loads` | {cells} | {growth(peer)} | - | - "
            f"| {', '.join(outcomes)} |"
        )
    return "\n".join(lines)


def stream_table(
    text_sizes: dict[int, int],
    paced: dict[int, StreamRun],
    rereading: dict[int, StreamRun],
) -> str:
    lines = [
        f"| answer | pieces of {PIECE_CHARS} characters | reading | partials | seconds "
        "| µs per character | re-reading / paced |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for size in STREAM_SIZES:
        chars = text_sizes[size]
        pieces = math.ceil(chars / PIECE_CHARS)
        runs = [("`PartialAnswers` (paced)", paced[size])]
        if size in rereading:
            runs.append(("whole prefix per piece (old)", rereading[size]))
        for name, run in runs:
            versus = ratio(run.seconds, paced[size].seconds) if run is not paced[size] else "1.00"
            lines.append(
                f"| {chars:,} chars | {pieces:,} | {name} | {run.partials:,} | {fmt(run.seconds)} "
                f"| {run.seconds / chars * 1e6:.1f} | {versus} |"
            )
    return "\n".join(lines)


def section_text(
    args: argparse.Namespace, tables: list[str], refusal: tuple[float, str], wall_s: float
) -> str:
    command = "nice -n 19 .venv/bin/python" if args.contended else ".venv/bin/python"
    flag = " --contended" if args.contended else ""
    machine = (
        "Not a quiet machine: other heavy work shared its cores (this run at `nice -n 19`), so "
        "the seconds are high and noisy; read the growth and the ratios."
        if args.contended
        else "Quiet machine: nothing else heavy ran during the run."
    )
    readers_md, stream_md = tables
    refuse_s, message = refusal
    biggest = STREAM_SIZES[-1]
    return f"""{SECTION_HEADING}

Command: `{command} benchmarks/bench_hostile_output.py{flag}`; run on {dt.date.today().isoformat()};
{library_versions(*VERSIONED)}. {os.cpu_count()} CPU cores. {machine} The whole run took
{wall_s:.0f} s.

**Readers**: seconds to read one reply of each size (1 KB = 1,000 characters). Ours are timed in
process, best of {REPEAT} repeats of at least {SECONDS_PER_REPEAT * 1000:.0f} ms; the peer,
`json_repair.loads(text)` alone (what our parser used to call with no budget), is timed once per
size in a fresh interpreter, after its import and after reading the input, and killed at
{PEER_LIMIT_S:.0f} s (`> {PEER_LIMIT_S:.0f}`). A size in brackets was not run: the size before it
took over half the limit, and its time grows at least in step with the input. Growth: time at
{GROWTH[1] // KB} KB over time at {GROWTH[0] // KB} KB, about 4 when reading is linear, 16 when
quadratic. json_repair / this: the peer's time over this reader's at the same size. Result: what
the reader returned or raised at {SIZES[-1] // KB} KB (checked, untimed: ours read the valid
answer right, and took no input for a tool call). `json_repair.loads` tries `json.loads` first,
which raises `RecursionError` on the deep input: quick, but not the `ValueError` a caller catches.

{readers_md}

**Streamed answer**: a `Catalogue` answer (a title and a list of items) fed in
{PIECE_CHARS}-character pieces, as `stream_extract` gets it. Paced:
`PartialAnswers(Catalogue).add(piece)` for each piece (what `stream_extract` does: it re-reads the
text only while the reading done stays within a fixed multiple of its length, so long answers get
partials less often). Old: the whole text so far read again with `partial_value` for every piece.
Partials: values handed out (each differing from the one before; a `Catalogue` partial has
`items=None` while its last item is still incomplete, so the list comes and goes). Checked: the
last partial has the right title and its items are the first of the answer's, and the old way's
last partial is the whole answer. At {biggest // KB} KB only the paced reading is run.

{stream_md}

**`python_eval("{EXPRESSION}")`** is refused in {refuse_s * 1e6:.0f} µs, before computing anything
(computing it would hold the GIL for about a minute): "{message}".
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--contended",
        action="store_true",
        help="say in the section that other work shared the machine (the seconds are then noisy)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, KindResult] = {}
    for kind, make in INPUTS.items():
        print(kind, flush=True)
        ours: dict[str, dict[int, float]] = {name: {} for name in OURS}
        outcomes: dict[str, str] = {}
        for size in SIZES:
            text = make(size)
            outcomes = check_ours(kind, text)
            for name, read in OURS.items():
                ours[name][size] = best_seconds(quietly(read, text))
            print(
                f"    ours        {size // KB:>4} KB "
                + " ".join(f"{fmt(ours[name][size]):>8}" for name in OURS),
                flush=True,
            )
        results[kind] = KindResult(ours=ours, outcomes=outcomes, peer=peer_row(make))
    print("streamed answer", flush=True)
    paced, rereading = measure_streams()
    text_sizes = {size: len(catalogue_json(size)) for size in STREAM_SIZES}
    refusal = python_eval_refusal()
    tables = [readers_table(results), stream_table(text_sizes, paced, rereading)]
    wall_s = time.perf_counter() - started
    print("\n" + "\n\n".join(tables) + "\n")
    print(f"python_eval({EXPRESSION!r}) refused in {refusal[0] * 1e6:.0f} us: {refusal[1]}")
    print(f"the run took {wall_s:.0f} s")
    write_section(SECTION_HEADING, section_text(args, tables, refusal, wall_s))
    print(f"wrote {RESULTS_PATH.relative_to(_REPO_ROOT)}")


if __name__ == "__main__":
    main()
