"""The byzer-agents command, through typer's runner, against the real local cluster: what it
does, its help, and its errors (one line, exit status 1, never a traceback)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from byzer_agents.cli import app
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from tests.openai_server import serve_backend

runner = CliRunner()


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, subcommand in getattr(command, "commands", {}).items():
        paths += _command_paths(subcommand, (*path, name))
    return paths


COMMAND_PATHS = _command_paths(typer.main.get_command(app))


def _params(path: tuple[str, ...]) -> list[Any]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return list(command.params)


def _one_line_error(result: Any) -> str:
    """The error a failed command printed, checked to be one line and exit status 1."""
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return str(lines[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda path: " ".join(path) or "top")
def test_help_names_every_value_and_pads_no_line(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert re.search(r"--[\w-]+ <", result.output) is None  # typer's "--port <int>" labels
    assert [line for line in result.output.splitlines() if line != line.rstrip()] == []
    for param in _params(path):
        assert param.help, f"{' '.join(path)}: {param.name} has no help"


def test_help_calls_every_model_or_deployment_name_NAME() -> None:
    usage = {
        name: runner.invoke(app, [name, "--help"]).output.splitlines()[0]
        for name in ("undeploy", "meta", "chat")
    }
    assert all("NAME" in line for line in usage.values()), usage
    assert "--name NAME" in runner.invoke(app, ["deploy", "--help"]).output
    assert "--model NAME" in runner.invoke(app, ["eval", "bfcl", "--help"]).output


def test_a_bad_option_value_is_one_line_naming_it() -> None:
    said = _one_line_error(runner.invoke(app, ["deploy", "x", "--name", "y", "--workers", "many"]))
    assert "'--workers'" in said and "deploy --help` shows the usage" in said
    said = _one_line_error(runner.invoke(app, ["depoly"]))
    assert "No such command 'depoly'" in said and "'deploy'" in said


def test_a_missing_file_is_one_line_naming_it(tmp_path: Any) -> None:
    missing = tmp_path / "nowhere"
    said = _one_line_error(
        runner.invoke(app, ["eval", "bfcl", "--model", "m", "--data-dir", str(missing)])
    )
    assert str(missing) in said
    data = tmp_path / "train.jsonl"
    said = _one_line_error(
        runner.invoke(app, ["finetune", "sft", "--data", str(data), "--output-dir", str(tmp_path)])
    )
    assert str(data) in said


@pytest.mark.parametrize(
    "command", [["list"], ["meta", "m"], ["chat", "m", "hi"], ["undeploy", "m"], ["status"]]
)
def test_no_cluster_is_one_line_saying_how_to_start_one(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_cluster(address: str | None = None, *, start: bool = True) -> None:
        assert not start, "a command that only reads started a cluster"
        raise ConnectionError("Could not find any running Ray instance.")  # what ray.init says

    # deployment.py binds connect at its import: imported first, it keeps the real one.
    import byzer_agents.llm_runtime.deployment  # noqa: F401

    monkeypatch.setattr(cluster, "connect", no_cluster)
    said = _one_line_error(runner.invoke(app, command))
    assert "no Ray cluster runs here; `byzer-agents start` starts one" in said


@pytest.mark.parametrize("command", ["list", "status"])
def test_a_cluster_address_where_none_runs_is_one_line_naming_it(command: str) -> None:
    address = f"127.0.0.1:{_free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "byzer_agents.cli", command],
        env={**os.environ, **cluster.local_cluster_env(), "RAY_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and address in lines[0], result.stderr
    assert result.stdout == ""


def test_an_unknown_model_is_one_line_naming_the_deployed_ones(
    ray_cluster: cluster.ClusterInfo,
) -> None:
    for command in (["chat", "never-deployed", "hi"], ["meta", "never-deployed"]):
        said = _one_line_error(runner.invoke(app, command))
        assert "no model named 'never-deployed'; available:" in said
    said = _one_line_error(runner.invoke(app, ["undeploy", "never-deployed"]))
    assert "no deployment named never-deployed" in said


def test_a_missing_model_path_is_one_line(ray_cluster: cluster.ClusterInfo) -> None:
    said = _one_line_error(runner.invoke(app, ["deploy", "/no/such/model", "--name", "nowhere"]))
    assert "model_path '/no/such/model' does not exist" in said


def test_status_shows_the_loopback_address(ray_cluster: cluster.ClusterInfo) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "address: 127.0.0.1:" in result.output


def test_deploy_chat_list_meta_undeploy(ray_cluster: cluster.ClusterInfo) -> None:
    with serve_backend(ScriptedBackend(["Hello from the endpoint."])) as url:
        deployed = runner.invoke(
            app,
            ["deploy", "unused", "--name", "cli-echo", "--type", "saas/openai",
             "--cpus", "0.25", "--param", f"saas.base_url={url}", "--param", "saas.api_key=k",
             "--param", "saas.model=scripted"],
        )  # fmt: skip
        assert deployed.exit_code == 0, deployed.output
        try:
            assert "cli-echo" in runner.invoke(app, ["list"]).output
            answer = runner.invoke(app, ["chat", "cli-echo", "hi"])
            assert answer.exit_code == 0 and "Hello from the endpoint." in answer.output
            meta = runner.invoke(app, ["meta", "cli-echo"])
            assert '"udf_name": "cli-echo"' in meta.output
        finally:
            removed = runner.invoke(app, ["undeploy", "cli-echo"])
    assert removed.exit_code == 0 and "undeployed cli-echo" in removed.output


def test_bad_deploy_arguments_are_named(ray_cluster: cluster.ClusterInfo) -> None:
    unknown = runner.invoke(app, ["deploy", "x", "--name", "bad", "--type", "custom/nope"])
    assert "unknown pretrained_model_type 'custom/nope'" in _one_line_error(unknown)
    malformed = runner.invoke(app, ["deploy", "x", "--name", "bad", "--param", "novalue"])
    assert "'novalue' is not KEY=VALUE" in _one_line_error(malformed)


def test_serve_runs_the_openai_server_on_loopback(ray_cluster: cluster.ClusterInfo) -> None:
    import time

    import openai

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_backend(ScriptedBackend(["served"] * 4)) as url:
        runner.invoke(
            app,
            ["deploy", "unused", "--name", "cli-served", "--type", "saas/openai",
             "--cpus", "0.25", "--param", f"saas.base_url={url}", "--param", "saas.api_key=k",
             "--param", "saas.model=scripted"],
        )  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "byzer_agents.cli", "serve", "--port", str(port)],
            env={**os.environ, **cluster.local_cluster_env(), "BYZER_AGENTS_API_KEY": "sk-cli"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-cli", max_retries=0
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    models = [model.id for model in client.models.list()]
                    break
                except openai.APIConnectionError:
                    assert server.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            answer = client.chat.completions.create(
                model="cli-served", messages=[{"role": "user", "content": "hi"}]
            )
        finally:
            server.terminate()
            output = server.communicate(timeout=30)[0]
            runner.invoke(app, ["undeploy", "cli-served"])
    assert "cli-served" in models
    assert answer.choices[0].message.content == "served"
    assert f"serving on http://127.0.0.1:{port}/v1" in output
    assert "sk-cli" not in output
