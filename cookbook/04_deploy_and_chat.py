"""Deploy and chat: Byzer-LLM's Quick Start, with the shipped SmolLM2 as the model.

Run: python cookbook/04_deploy_and_chat.py

Byzer-LLM's users started Ray, deployed a model under a name and talked to it; the same code runs
here with only its import line and model path changed. A deployment outlives the process that
made it, so the script removes it when it ends, also when it is interrupted.
"""

from __future__ import annotations

from byzer_agents import ByzerLLM, InferBackend, LLMRequest
from byzer_agents.llm_runtime.models import default_chat_model

MODEL = "cookbook-smollm2"


def main() -> None:
    llm = ByzerLLM()  # joins Ray, or starts the local cluster (loopback only, no dashboard)
    llm.setup_gpus_per_worker(0).setup_num_workers(1).setup_infer_backend(InferBackend.Transformers)
    try:  # the deployment is removed when the script ends, also when it is interrupted (Ctrl-C)
        if not llm.is_model_exist(MODEL):
            llm.deploy(
                model_path=default_chat_model(),
                pretrained_model_type="custom/auto",
                udf_name=MODEL,
                infer_params={"max_model_len": 2048},
            )
        llm.setup_default_model_name(MODEL)
        talk(llm)
    finally:
        if llm.undeploy(MODEL):
            print(f"undeployed {MODEL}")


def talk(llm: ByzerLLM) -> None:
    answer = llm.chat(
        MODEL, LLMRequest(instruction="Which city is the capital of France?", max_length=32)
    )
    print(f"chat:     {answer[0].output}")

    (reply,) = llm.chat_oai(
        [{"role": "user", "content": "Name three colours."}],
        llm_config={"temperature": 0, "max_tokens": 48},
    )
    print(f"chat_oai: {reply.output} ({reply.metadata['usage']['completion_tokens']} tokens)")

    print("stream:   ", end="")
    for piece in llm.stream_chat_oai("Say hello in French.", llm_config={"max_tokens": 16}):
        print(piece, end="", flush=True)
    print()

    meta = llm.get_meta(model=MODEL)
    print(f"meta:     {meta['backend']} on {meta['device']}, {meta['num_workers']} worker(s)")


if __name__ == "__main__":
    main()
