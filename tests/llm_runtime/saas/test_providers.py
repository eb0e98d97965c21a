"""``saas/<provider>`` deployments, before any worker starts: the provider table, the typed
``saas.*`` infer_params, what each provider's backend is built with, and the checks that refuse
what cannot work, naming the key."""

from __future__ import annotations

import json

import pytest

from byzer_agents.llm_runtime.deploy_config import (
    MODEL_TYPES,
    DeploymentSpec,
    InferParams,
    parse_model_type,
)
from byzer_agents.llm_runtime.saas.providers import SAAS_PROVIDERS, saas_provider
from byzer_agents.llm_runtime.saas.settings import SaasParams
from byzer_agents.llm_runtime.worker import build_backend

KEY = "sk-provider-SECRET-0123456789abcdef"

DOCUMENTED_URLS = {
    "deepseek": "https://api.deepseek.com",
    "moonshot": "https://api.moonshot.cn/v1",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "zhipu": "https://open.bigmodel.cn/api/paas/v4",
    "qianfan": "https://qianfan.baidubce.com/v2",
    "baichuan": "https://api.baichuan-ai.com/v1",
    "minimax": "https://api.minimaxi.com/v1",
    "sparkdesk": "https://spark-api-open.xf-yun.com/v1",
}


def spec(
    model_type: str, params: dict[str, object] | None = None, **fields: object
) -> DeploymentSpec:
    return DeploymentSpec(
        udf_name=str(fields.pop("udf_name", "chat")),
        model_path="",
        model_type=parse_model_type(model_type),
        infer_params=InferParams.parse(params),
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("provider", "url"), sorted(DOCUMENTED_URLS.items()))
def test_each_provider_deploys_to_its_documented_url(provider: str, url: str) -> None:
    assert MODEL_TYPES[f"saas/{provider}"].kind == "saas"
    backend = build_backend(spec(f"saas/{provider}", {"saas.api_key": KEY, "saas.model": "m1"}))
    assert (backend.meta()["base_url"], backend.meta()["model"]) == (url, "m1")


def test_the_seeds_names_reach_the_same_providers() -> None:
    for alias, name in [("qwen", "dashscope"), ("qianwen", "dashscope"), ("kimi", "moonshot")]:
        assert saas_provider(alias) is SAAS_PROVIDERS[name]
        assert f"saas/{alias}" in MODEL_TYPES
    assert parse_model_type("SAAS/Azure_OpenAI").name == "saas/azure_openai"


def test_an_unknown_provider_is_refused_listing_the_accepted_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown SaaS provider 'nope'; accepted: .*deepseek"
    ) as e:
        parse_model_type("saas/nope")
    assert "saas.base_url" in str(e.value)


def test_saas_base_url_reaches_any_other_compatible_endpoint() -> None:
    params = {"saas.base_url": "https://api.example.test/v1", "saas.api_key": KEY}
    backend = build_backend(spec("saas/openai", params, udf_name="example-chat"))
    meta = backend.meta()
    assert (meta["base_url"], meta["model"], meta["api"]) == (
        "https://api.example.test/v1",
        "example-chat",  # no saas.model: the udf_name, as in Byzer-LLM
        "openai",
    )
    assert (
        build_backend(spec("saas/deepseek", {"saas.api_base": "https://proxy.test/v1"})).meta()[
            "base_url"
        ]
        == "https://proxy.test/v1"
    )


def test_the_seeds_retry_count_and_request_timeout_are_honoured() -> None:
    params = {"saas.retry_count": "5", "saas.request_timeout": "7.5", "saas.retry_backoff_s": "0"}
    backend = build_backend(spec("saas/deepseek", params))
    assert backend.meta()["max_retries"] == 5 and backend.meta()["timeout"] == 7.5
    assert backend.retry.backoff_s == 0.0


def test_azure_takes_the_seeds_keys() -> None:
    params = {
        "saas.api_type": "azure",
        "saas.api_key": KEY,
        "saas.api_base": "https://res.openai.azure.com",
        "saas.api_version": "2024-10-21",
        "saas.deployment_id": "gpt4o-prod",
    }
    for model_type in ("saas/azure_openai", "saas/openai"):
        backend = build_backend(spec(model_type, params))
        assert backend.meta()["api"] == "azure"
        assert backend.azure is not None and backend.azure.deployment == "gpt4o-prod"
        assert backend.azure.api_version == "2024-10-21"


@pytest.mark.parametrize(
    ("model_type", "params", "named"),
    [
        ("saas/azure_openai", {"saas.api_version": "2024-10-21"}, "saas.api_base"),
        ("saas/azure_openai", {"saas.api_base": "https://r.openai.azure.com"}, "saas.api_version"),
        ("saas/azure_openai", {"saas.api_type": "openai"}, "contradicts"),
        ("saas/deepseek", {"saas.api_version": "2024-10-21"}, "Azure OpenAI only"),
        ("saas/deepseek", {"saas.fallbacks": "backup,chat"}, "names the deployment itself"),
        ("custom/auto", {"saas.model": "m"}, "saas/<provider> deployments only"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_key(
    model_type: str, params: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        spec(model_type, params)


def test_bad_saas_keys_and_values_are_named_and_the_key_never_echoed() -> None:
    with pytest.raises(
        ValueError, match=r"unknown infer_params key 'saas.colour'.*saas.retry_count"
    ):
        InferParams.parse({"saas.colour": "red"})
    with pytest.raises(ValueError, match=r"saas.retry_count='many'") as caught:
        InferParams.parse({"saas.retry_count": "many", "saas.api_key": KEY})
    assert KEY not in str(caught.value)
    with pytest.raises(ValueError, match=r"saas.api_key='\*\*\*'"):
        InferParams.parse({"saas.api_key": ["not", "a", "string"]})


def test_fallbacks_are_read_from_a_comma_list_or_a_list() -> None:
    assert spec("saas/deepseek", {"saas.fallbacks": " b, c ,"}).infer_params.saas == SaasParams(
        fallbacks=("b", "c")
    )
    params = {"saas.fallbacks": ["b"], "saas.cooldown_s": "5", "saas.cooldown_after": 1}
    saas = spec("saas/deepseek", params).infer_params.saas
    assert saas is not None and (saas.fallbacks, saas.cooldown_s, saas.cooldown_after) == (
        ("b",),
        5.0,
        1,
    )


def test_num_workers_bound_the_requests_in_flight_unless_told_otherwise() -> None:
    assert spec("saas/deepseek").infer_params.max_concurrency == 1
    assert spec("saas/deepseek", {"max_concurrency": 4}).infer_params.max_concurrency == 4
    assert spec("custom/auto").infer_params.max_concurrency == 8


def test_a_saas_deployment_takes_no_gpu() -> None:
    with pytest.raises(ValueError, match=r"uses no GPU.*setup_gpus_per_worker\(0\)"):
        spec("saas/deepseek", gpus_per_worker=1)


def test_the_key_reaches_the_worker_and_nothing_else() -> None:
    deployment = spec("saas/deepseek", {"saas.api_key": KEY})
    worker_side = DeploymentSpec.model_validate_json(deployment.worker_json())
    assert worker_side.infer_params.saas is not None
    assert worker_side.infer_params.saas.api_key is not None
    assert worker_side.infer_params.saas.api_key.get_secret_value() == KEY
    shown = [
        repr(deployment),
        str(deployment),
        deployment.model_dump_json(),
        json.dumps(deployment.model_dump(mode="json")),  # what a worker's describe() returns
        repr(build_backend(worker_side)),
        json.dumps(build_backend(worker_side).meta()),
    ]
    for text in shown:
        assert KEY not in text


def test_no_model_path_is_needed_for_saas_and_no_file_is_checked() -> None:
    spec("saas/deepseek").check_paths()


def test_only_saas_deployments_may_leave_out_the_model_path() -> None:
    from byzer_agents import LLM

    with pytest.raises(ValueError, match="'custom/auto' needs a model_path"):
        LLM().deploy(pretrained_model_type="custom/auto", udf_name="x")
