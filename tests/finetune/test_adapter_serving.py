"""Serving a LoRA adapter without merging it: as ``infer_params={"adapter": ...}`` on its base,
or as the model_path itself (its base found from its config), in process and through the real
local Ray cluster, answering what the merged model answers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents import LLM
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec, InferParams, parse_model_type
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.worker import build_backend

ADAPTED = "test-tiny-adapter"
MERGED = "test-tiny-merged"
GREEDY = {"temperature": 0, "max_tokens": 12}
QUESTION = "What is 3 plus 3?"


def spec(model_path: str | Path, **fields: object) -> DeploymentSpec:
    return DeploymentSpec(
        udf_name="x",
        model_path=str(model_path),
        model_type=parse_model_type("custom/auto"),
        **fields,  # type: ignore[arg-type]
    )


# --- refused before any worker starts ----------------------------------------------------------


def test_a_missing_adapter_is_refused_naming_the_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"adapter='/nowhere/adapter'.*not a directory"):
        InferParams.parse({"adapter": "/nowhere/adapter"})
    with pytest.raises(ValueError, match=r"adapter=.*no adapter_config\.json"):
        InferParams.parse({"adapter": str(tmp_path)})


def test_the_adapter_is_kept_as_an_absolute_path(
    tiny_adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_adapter.parent)

    params = InferParams.parse({"adapter": tiny_adapter.name})

    assert params.adapter == str(tiny_adapter.resolve())


def test_vllm_is_refused_an_adapter(tiny_adapter: Path) -> None:
    params = InferParams.parse({"adapter": str(tiny_adapter)})
    with pytest.raises(ValueError, match="merge the adapter first"):
        spec("/m", infer_params=params, infer_backend=InferBackend.VLLM)


def test_an_adapter_model_path_whose_base_is_gone_is_refused(
    tiny_adapter: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "/nowhere/base"
    (adapter / "adapter_config.json").write_text(json.dumps(config))

    with pytest.raises(FileNotFoundError, match="is a LoRA adapter whose base cannot be found"):
        spec(adapter).check_paths()


def test_an_adapter_model_path_takes_no_second_adapter(tiny_adapter: Path) -> None:
    params = InferParams.parse({"adapter": str(tiny_adapter)})
    with pytest.raises(ValueError, match="would be a second one"):
        spec(tiny_adapter, infer_params=params).check_paths()


# --- in process --------------------------------------------------------------------------------


def test_an_adapter_changes_the_logits_of_its_base(tiny_adapter: Path) -> None:
    import torch

    from byzer_agents.finetune.base_model import resolve_base_model
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

    base_dir = resolve_base_model("SmolLM2-135M-Instruct").checkpoint
    ids = torch.tensor([[1, 504, 3458, 314, 1345, 47, 2]])
    # Built as a worker builds it, from infer_params={"adapter": ...}.
    params = InferParams.parse({"adapter": str(tiny_adapter)})
    worker_backend = build_backend(spec(base_dir, infer_params=params))
    assert isinstance(worker_backend, TransformersBackend)
    with (
        TransformersBackend(base_dir, model_name="base") as base,
        worker_backend as adapted,
        torch.no_grad(),
    ):
        base_logits = base._model(ids).logits
        adapted_logits = adapted._model(ids).logits
        meta = adapted.meta()

    assert (adapted_logits - base_logits).abs().max() > 1e-2
    assert meta["adapter"] == {
        "path": str(tiny_adapter.resolve()),
        "base": str(base_dir),
        "merged": True,
    }
    assert base.meta()["adapter"] is None


def test_an_adapter_directory_is_served_on_the_base_its_config_names(tiny_adapter: Path) -> None:
    from byzer_agents.finetune.base_model import resolve_base_model
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

    with TransformersBackend(tiny_adapter, model_name="adapted") as backend:
        meta = backend.meta()

    assert meta["adapter"]["base"] == "SmolLM2-135M-Instruct"
    assert meta["checkpoint"] == str(resolve_base_model("SmolLM2-135M-Instruct").checkpoint)


# --- through Ray -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm(ray_cluster: object, tiny_adapter: Path, merged_model: Path) -> Iterator[LLM]:
    client = LLM()
    for name in (ADAPTED, MERGED):
        client.undeploy(name)
    client.deploy(tiny_adapter, "custom/auto", ADAPTED, {}, cpus_per_worker=0.5)
    client.deploy(merged_model, "custom/auto", MERGED, {}, cpus_per_worker=0.5)
    yield client
    for name in (ADAPTED, MERGED):
        client.undeploy(name)


def test_the_unmerged_adapter_answers_what_the_merged_model_answers(llm: LLM) -> None:
    (adapted,) = llm.chat_oai(QUESTION, model=ADAPTED, llm_config=GREEDY)
    (merged,) = llm.chat_oai(QUESTION, model=MERGED, llm_config=GREEDY)

    assert adapted.output and adapted.output == merged.output
    assert "Banana" in adapted.output  # what the two steps taught it


def test_the_deployment_meta_reports_the_adapter_and_its_base(llm: LLM, tiny_adapter: Path) -> None:
    meta = llm.get_meta(model=ADAPTED)

    assert meta["adapter"]["path"] == str(tiny_adapter.resolve())
    assert meta["adapter"]["base"] == "SmolLM2-135M-Instruct"
    assert llm.get_meta(model=MERGED)["adapter"] is None
