"""SaaS models: deploy a provider's model by name, and keep answering when the provider does not.

Run: python cookbook/06_saas_models.py            # a local stand-in provider, no key needed
     DEEPSEEK_API_KEY=sk-... python cookbook/06_saas_models.py   # DeepSeek itself

Byzer-LLM's users deployed SaaS models as ``saas/<provider>`` with ``saas.api_key`` and
``saas.model``, no GPU, and ``num_workers`` as the limit of requests in flight; the same call
works here. Each request is retried on 429 (after the provider's Retry-After), 5xx and lost
connections; a deployment may name fallbacks, asked when it fails after its retries, and one that
keeps failing is skipped (cools down) for a while. The trace shows every request that was sent.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from _model import deployed
from _peer import serve_peer

from byzer_agents import LLM, ByzerLLM
from byzer_agents.llm_runtime.saas.providers import SAAS_PROVIDERS

MAIN, FLAKY = "cookbook-saas", "cookbook-saas-down"


def main() -> None:
    parser = argparse.ArgumentParser(description="SaaS models with retries and fallbacks.")
    parser.add_argument("--local", action="store_true", help="use the stand-in even with a key")
    args = parser.parse_args()
    key = None if args.local else os.environ.get("DEEPSEEK_API_KEY")

    print("providers:")
    for name, provider in sorted(SAAS_PROVIDERS.items()):
        if name == provider.name:  # aliases point to the same entry
            print(f"  saas/{name:<13} -> {provider.base_url or '(the SDK default / your own)'}")

    with ExitStack() as stack:
        # The provider every call ends with: DeepSeek, or a stand-in whose first answer is a 429.
        if key:
            main_params = {"saas.api_key": key, "saas.model": "deepseek-chat"}
            print("[provider: DeepSeek at https://api.deepseek.com]")
        else:
            stand_in = stack.enter_context(serve_peer("Paris.", failures=[429]))
            main_params = {"saas.api_key": "EMPTY", "saas.model": "deepseek-chat",
                           "saas.base_url": stand_in.url}  # fmt: skip
            print(f"[provider: a local stand-in at {stand_in.url}; set DEEPSEEK_API_KEY for real]")
        down = stack.enter_context(serve_peer("never", always=503))

        traces = Path(tempfile.mkdtemp()) / "traces.db"
        llm = ByzerLLM(trace_store=traces)
        llm.setup_gpus_per_worker(0).setup_cpus_per_worker(0.1).setup_num_workers(1)
        stack.callback(llm.close)
        for name in (MAIN, FLAKY):
            llm.undeploy(name)  # left over from a run that was killed
        # Each deployment is removed when the block ends, also when it is interrupted (Ctrl-C).
        stack.enter_context(deployed(llm, None, MAIN, main_params, model_type="saas/deepseek"))
        # A deployment whose provider is down, falling back to MAIN after one retry; after two
        # failed calls it is skipped for a minute.
        flaky_params = {
            "saas.api_key": "EMPTY",
            "saas.base_url": down.url,
            "saas.retry_count": 1,
            "saas.retry_backoff_s": 0.1,
            "saas.fallbacks": MAIN,
            "saas.cooldown_after": 2,
            "saas.cooldown_s": 60,
        }
        stack.enter_context(deployed(llm, None, FLAKY, flaky_params, model_type="saas/openai"))

        question = "What is the capital of France? One word."
        (reply,) = llm.chat_oai(question, model=MAIN)
        print(f"answer:   {reply.output}")
        show_trace(llm, reply.metadata["run_id"])

        for turn in (1, 2, 3):
            (reply,) = llm.chat_oai(question, model=FLAKY)
            print(f"call {turn} to {FLAKY}: {reply.output}")
            show_trace(llm, reply.metadata["run_id"])
        print(f"the down provider saw {down.requests} requests: the third call skipped it")


def show_trace(llm: LLM, run_id: str) -> None:
    assert llm.trace_store is not None
    for event in llm.trace_store.events(run_id):
        why = f"  ({event.error[:70]}...)" if event.error else ""
        print(f"  trace: {event.model:<20} {event.status:<5} {event.latency_s:5.2f} s{why}")


if __name__ == "__main__":
    main()
