"""``byzer-agents eval bfcl`` through typer's runner: against an OpenAI-compatible endpoint over
real HTTP, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from byzer_agents.cli import app
from byzer_agents.evals import load_cases, read_records
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from tests.evals.test_runner import _oracle
from tests.openai_server import serve_backend

runner = CliRunner()


def test_eval_bfcl_scores_an_openai_compatible_endpoint_and_writes_records(tmp_path: Path) -> None:
    cases = load_cases("parallel", limit=2) + load_cases("irrelevance", limit=2)
    calls_anyway = {"tool_calls": [{"name": cases[3].functions[0]["name"], "arguments": {}}]}
    backend = ScriptedBackend([_oracle(cases)] * 3 + [calls_anyway])
    output = tmp_path / "bfcl.jsonl"
    with serve_backend(backend, api_key="secret-key") as url:
        result = runner.invoke(
            app,
            ["eval", "bfcl", "--model", "scripted", "--base-url", url, "--api-key", "secret-key",
             "--category", "parallel", "--category", "irrelevance", "--limit", "2",
             "--output", str(output), "--no-constrained"],
        )  # fmt: skip
        bodies = url.bodies()
    assert result.exit_code == 0, result.output
    assert "secret-key" not in result.output
    cells = [line.strip("│ ").split(" │ ") for line in result.output.splitlines()]
    rows = {row[0].strip(): [cell.strip() for cell in row[1:]] for row in cells}
    assert "unconstrained" in result.output
    assert rows["parallel"][:3] == ["2/2", "100.0%", "0.0%"]
    assert rows["irrelevance"][:3] == ["1/2", "50.0%", "-"]
    assert rows["all"][:3] == ["3/4", "75.0%", "0.0%"]
    assert "AST summary (mean of the call categories): 100.0%" in result.output
    assert [body["tool_choice"] for body in bodies] == ["auto"] * 4
    records = read_records(output)
    assert [record.id for record in records] == [case.id for case in cases]
    assert json.loads(output.read_text().splitlines()[3])["error_kind"] == "called_when_irrelevant"


def test_eval_bfcl_refuses_unknown_categories_and_missing_data(tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["eval", "bfcl", "--model", "m", "--category", "exec_simple"])
    assert unknown.exit_code == 1 and "unknown BFCL category 'exec_simple'" in unknown.output
    missing = runner.invoke(app, ["eval", "bfcl", "--model", "m", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no BFCL_v4_simple_python.json" in missing.output


def test_eval_bfcl_names_a_missing_deployment(ray_cluster: cluster.ClusterInfo) -> None:
    result = runner.invoke(app, ["eval", "bfcl", "--model", "never-deployed", "--limit", "1"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "no deployment named 'never-deployed'" in said
    assert "byzer-agents deploy default --name never-deployed" in said
