"""Every cookbook script runs as a person would run it, against the real shipped model where it
asks one, shows what it promises, and leaves no deployment behind, also when interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"
COOKBOOK_MODEL = "cookbook-smollm2-tools"  # what cookbook/_model.py deploys


def run_script(name: str, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, str(COOKBOOK / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tools_and_schemas_shows_schemas_and_a_refused_call() -> None:
    output = run_script("01_tools_and_schemas.py")
    assert '"name": "compute_date_range"' in output
    assert '"enum": [\n' in output and '"fortnight"' not in output.split("refused")[0]
    assert "refused: invalid arguments for tool 'compute_date_range'" in output
    assert "  - count: Input should be a valid integer" in output
    assert "  - unit: 'fortnight' is not one of ['day', 'week', 'month', 'year']" in output
    assert "  - tz: unexpected argument; the tool takes: count, unit" in output
    assert output.rstrip().endswith("What was the date two weeks ago?")


def test_function_calling_asks_the_shipped_model_then_replays_a_fixed_call(
    ray_cluster: object,
) -> None:
    from byzer_agents.llm_runtime import deployment

    output = run_script("02_function_calling.py", timeout=300)
    assert f"[model: deployed {COOKBOOK_MODEL} on the local Ray]" in output
    real, replay = output.split("Scripted replay of a bad call:")
    for question in ("What time is it now?", "Which dates span the last three months?"):
        answer = real.split(f"Q: {question}", 1)[1].split("Q:", 1)[0]
        assert "   calls:  [" in answer or "   no call validated" in answer
    assert "unit: Input should be 'day', 'week', 'month' or 'year' (got 'months')" in replay
    assert "calls:  [('compute_date_range', {'count': 3, 'unit': 'month'})]" in replay
    assert "attempts: 2" in replay
    assert f"undeployed {COOKBOOK_MODEL}" in real
    assert deployment.find(COOKBOOK_MODEL) is None


def test_typed_answers_ask_the_shipped_model_three_ways(ray_cluster: object) -> None:
    output = run_script("03_typed_answers.py", timeout=300)
    assert f"[model: deployed {COOKBOOK_MODEL} on the local Ray]" in output
    for way in ("response_class -> ", "extract        -> ", "after chat     -> "):
        shown = output.split(way, 1)[1]
        assert shown.startswith(("Story(", "no valid Story", "free answer: "))
    assert f"undeployed {COOKBOOK_MODEL}" in output


def test_an_interrupted_script_undeploys_what_it_deployed(ray_cluster: object) -> None:
    from byzer_agents.llm_runtime import deployment

    assert deployment.find(COOKBOOK_MODEL) is None, "left over by another run"
    script = subprocess.Popen(
        [sys.executable, "-u", str(COOKBOOK / "02_function_calling.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(300, script.kill)
    watchdog.start()
    try:
        assert script.stdout is not None
        lines = []
        for line in script.stdout:
            lines.append(line)
            if "[model: deployed" in line:
                script.send_signal(signal.SIGINT)  # as Ctrl-C does, while the model is asked
                break
        output = "".join(lines) + script.communicate(timeout=120)[0]
    finally:
        watchdog.cancel()
        script.kill()
    assert f"[model: deployed {COOKBOOK_MODEL}" in output
    assert "KeyboardInterrupt" in output and "Scripted replay" not in output
    assert f"undeployed {COOKBOOK_MODEL}" in output
    assert deployment.find(COOKBOOK_MODEL) is None


def test_function_calling_cookbook_over_a_real_endpoint() -> None:
    from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
    from tests.openai_server import serve_backend

    backend = ScriptedBackend(
        [
            {"tool_calls": [{"name": "compute_now", "arguments": {}}]},
            {
                "tool_calls": [
                    {"name": "compute_date_range", "arguments": {"count": 3, "unit": "month"}}
                ]
            },
        ]
    )
    with serve_backend(backend) as base_url:
        output = run_script("02_function_calling.py", "--base-url", base_url, "--model", "scripted")
    assert f"[model: scripted at {base_url}]" in output
    assert "'unit': 'month'" in output


def test_deploy_and_chat_runs_the_seed_quick_start(ray_cluster: object) -> None:
    output = run_script("04_deploy_and_chat.py")
    assert "Paris" in output.split("chat:", 1)[1].splitlines()[0]
    assert "meta:     transformers on cpu, 1 worker(s)" in output
    assert "undeployed cookbook-smollm2" in output


def test_serve_cookbook_answers_through_the_openai_sdk(ray_cluster: object) -> None:
    output = run_script("05_serve_openai_compatible.py")
    assert "Paris" in output.split("chat:", 1)[1].splitlines()[0]
    assert "tool:   get_weather({'city': " in output
    assert "typed:  City(name=" in output
    assert "wrong key: HTTP 401 (invalid_api_key)" in output


def test_saas_models_retry_fall_back_and_cool_down(ray_cluster: object) -> None:
    output = run_script("06_saas_models.py", "--local")
    assert "saas/deepseek      -> https://api.deepseek.com" in output
    assert "answer:   Paris." in output
    answer_trace = output.split("answer:", 1)[1].split("call 1", 1)[0]
    assert "cookbook-saas        error" in answer_trace and "HTTP 429" in answer_trace
    calls = output.split("call 3 to cookbook-saas-down: Paris.", 1)
    assert "cookbook-saas-down   error" in calls[0]  # tried, failed, fell back
    assert "cookbook-saas-down" not in calls[1].split("the down provider")[0]  # skipped
    assert "the down provider saw 4 requests" in output
    assert "undeployed cookbook-saas-down\nundeployed cookbook-saas\n" in output


def test_finetune_on_traces_records_trains_deploys_and_asks(
    tmp_path: Path, ray_cluster: object
) -> None:
    output = run_script("07_finetune_on_traces.py", "--work-dir", str(tmp_path), timeout=900)
    assert f"recorded 8 runs in {tmp_path / 'traces.db'}" in output
    assert "trained adapter (lora) for 4 steps" in output
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "adapter" / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert "deployed cookbook-tuned: adapter on SmolLM2-135M-Instruct" in output
    assert "calls: [" in output or "answer: " in output
    assert "verdict: right" in output or "verdict: wrong" in output


def test_multi_step_agent_notebook_runs_on_the_shipped_model(ray_cluster: object) -> None:
    import nbformat
    from nbclient import NotebookClient

    from byzer_agents.llm_runtime import deployment

    notebook = nbformat.read(COOKBOOK / "08_multi_step_agent.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": COOKBOOK}}
    )
    try:
        client.execute()
    finally:
        leftover = deployment.find(COOKBOOK_MODEL) is not None
        if leftover:  # a failed cell skipped the notebook's last one, which undeploys
            from byzer_agents import LLM

            LLM().undeploy(COOKBOOK_MODEL)
    assert not leftover, "the notebook's last cell did not undeploy its model"
    shown = {cell.metadata.get("tags", ["untagged"])[0]: cell_text(cell) for cell in notebook.cells}
    assert f"[model: deployed {COOKBOOK_MODEL} on the local Ray]" in shown["deploy"]
    # The model picks its calls: any of the tools may show, each with its outcome and time.
    assert "Step 1" in shown["run"] and "Output</b> (TripPlan;" in shown["run"]
    assert "book_hotel(" in shown["run"] or "get_weather(" in shown["run"]
    assert shown["output"].startswith("TripPlan(") and "bookings: [" in shown["output"]
    assert "Step 1" in shown["continue"] and "Output</b> (TripPlan;" in shown["continue"]
    assert "the conversation went from" in shown["continue"]
    assert f"undeployed {COOKBOOK_MODEL}" in shown["undeploy"]


def cell_text(cell: object) -> str:
    """What a code cell showed: its printed text and its HTML or plain results, joined."""
    parts = []
    for output in getattr(cell, "outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            data = output.data
            parts.append(data.get("text/html") or data.get("text/plain", ""))
    return "".join(parts)


def test_mcp_tools_cookbook_serves_its_tools_and_a_model_calls_them_over_an_endpoint() -> None:
    from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
    from tests.openai_server import serve_backend

    backend = ScriptedBackend(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {
                "tool_calls": [
                    {
                        "name": "convert_temperature",
                        "arguments": {"celsius": 20, "to": "fahrenheit"},
                    }
                ]
            },
        ]
    )
    with serve_backend(backend) as base_url:
        output = run_script("09_mcp_tools.py", "--base-url", base_url, "--model", "scripted")
    assert "09_mcp_tools.py --serve-mcp', open)" in output
    assert "tool convert_temperature: Convert degrees Celsius" in output
    assert "values: [{'city': 'Paris', 'celsius': 18.5}]" in output
    assert "values: [68.0]" in output
    assert "raised MCPToolError: LookupError: no weather for 'Atlantis'" in output
    assert "'to' is a required property" in output
    assert "values: [274.15]" in output
    assert output.rstrip().endswith("--serve-mcp', closed)")


def test_mcp_tools_cookbook_asks_the_shipped_model(ray_cluster: object) -> None:
    from byzer_agents.llm_runtime import deployment

    output = run_script("09_mcp_tools.py", timeout=300)
    assert f"[model: deployed {COOKBOOK_MODEL} on the local Ray]" in output
    real = output.split("Scripted replay of a failing call:")[0]
    for question in ("What is the weather in Paris today?", "Convert 20 degrees Celsius"):
        answer = real.split(f"Q: {question}", 1)[1].split("Q:", 1)[0]
        assert "   calls:  [" in answer or "   no call validated" in answer
    assert f"undeployed {COOKBOOK_MODEL}" in real
    assert "raised MCPToolError: LookupError" in output
    assert deployment.find(COOKBOOK_MODEL) is None
