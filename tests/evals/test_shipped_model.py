"""The evaluation against the real shipped model: SmolLM2-135M-Instruct deployed on the real local
Ray, a handful of BFCL cases asked with and without constrained decoding."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from byzer_agents import LLM
from byzer_agents.evals import BfclCase, load_cases, run_bfcl
from byzer_agents.llm_runtime.models import default_chat_model

NAME = "test-bfcl-smollm2"
CONFIG = {"max_tokens": 48}


@pytest.fixture(scope="module")
def llm(ray_cluster: object) -> Iterator[LLM]:
    client = LLM()
    client.undeploy(NAME)
    client.deploy(default_chat_model(), "custom/auto", NAME, cpus_per_worker=0.5)
    yield client
    client.undeploy(NAME)


@pytest.fixture(scope="module")
def cases() -> list[BfclCase]:
    return load_cases("simple_python", limit=1) + load_cases("irrelevance", limit=1)


def test_forced_constrained_calls_always_parse_and_fit_the_cases_functions(
    llm: LLM, cases: list[BfclCase]
) -> None:
    report = run_bfcl(llm, cases, model=NAME, tool_choice="required", llm_config=CONFIG)
    simple, irrelevance = report.records
    assert [simple.id, irrelevance.id] == [case.id for case in cases]
    for case, record in zip(cases, report.records, strict=True):
        assert record.error_kind != "model_error", record.reason
        assert record.calls and not record.unparseable
        assert record.schema_error is None, "the grammar holds calls to the schema"
        defined = {function["name"] for function in case.functions}
        assert all(name in defined for call in record.calls for name in call)
        assert record.seconds > 0
    assert irrelevance.error_kind == "called_when_irrelevant"
    assert report.unparseable_share == 0.0


def test_unconstrained_answers_are_scored_too(llm: LLM, cases: list[BfclCase]) -> None:
    # That the switch turns the grammar off is tested at the backend
    # (tests/llm_runtime/test_transformers_constraint_switch.py); here: the eval runs that way.
    free = run_bfcl(
        llm, cases[:1], model=NAME, constrained_decoding=False, llm_config={"max_tokens": 24}
    ).records[0]
    assert free.error_kind != "model_error", free.reason
    assert free.output
