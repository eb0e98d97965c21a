"""The byzer-agents command, through typer's runner, against the real local cluster."""

from __future__ import annotations

from typer.testing import CliRunner

from byzer_agents.cli import app
from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from tests.openai_server import serve_backend

runner = CliRunner()


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
    assert (
        unknown.exit_code == 2 and "unknown pretrained_model_type 'custom/nope'" in unknown.output
    )
    malformed = runner.invoke(app, ["deploy", "x", "--name", "bad", "--param", "novalue"])
    assert malformed.exit_code != 0 and "KEY=VALUE" in malformed.output
    missing = runner.invoke(app, ["undeploy", "never-deployed"])
    assert missing.exit_code == 1 and "no deployment named never-deployed" in missing.output


def test_serve_runs_the_openai_server_on_loopback(ray_cluster: cluster.ClusterInfo) -> None:
    import os
    import socket
    import subprocess
    import sys
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
