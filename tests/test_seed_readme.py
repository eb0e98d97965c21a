"""Byzer-LLM's README, run as a test: its Python snippets (quick start, embeddings, stream chat,
a SaaS model's stream, function calling with the no-tool branch, ``response_class``,
``response_after_chat``, and the prompt function / prompt class examples) against the shipped
models on the real local Ray.

Each test holds the README's code as the README writes it (allwefantasy/byzer-llm, README.md), in
``# fmt: off`` blocks so the formatter leaves it as written. Only these things were changed:

- import lines: ``from byzerllm.utils.client import ...`` is ``from byzer_agents import ...``,
  and ``import byzerllm`` is ``import byzer_agents as byzerllm``;
- model paths: the README's ``/home/byzerllm/models/...`` are the shipped models
  (``default_chat_model()``: SmolLM2-135M-Instruct; ``default_tool_model()``: the same with the
  project's tool-calling adapter, for the Qwen-72B of the function-calling section;
  ``default_embedding_model()``: all-MiniLM-L6-v2 for bge-large-zh);
- deploy resources: this machine has 2 CPUs and no GPU, so ``setup_gpus_per_worker(0)``,
  ``setup_num_workers(1)``, ``setup_cpus_per_worker(0.25)`` (0.1 for SaaS, so every deployment
  fits beside one an earlier test left running), and the transformers backend where the README
  asks for vLLM;
- SaaS endpoints: the prompt examples' ``sparkdesk_chat`` is a ``saas/sparkdesk`` deployment,
  and the qianwen snippet's ``saas/qianwen`` one gets a ``saas.base_url``: both talk to a local
  OpenAI-compatible server (tests/openai_server.py) on 127.0.0.1, answering from the deployed
  SmolLM2;
- ``llm_config={"max_length": N}`` on the calls whose free text would otherwise run to the
  backend's default length, so the module runs in minutes on 2 CPUs;
- the README's own slips, each marked where it is fixed: ``lm.`` for ``llm.``,
  ``chat_model_name`` used before it is set, ``ray.init`` without ``ignore_reinit_error`` after
  Ray is already joined.

The shipped 135M model is weak: where the content of an answer cannot be asserted, the tests
assert the shape the snippet relies on (typed answers are instances of the snippet's class, the
no-tool branch's ``.response.output`` is a str, a tool that was called has its value read).
"""

# The README's code keeps its own style (imports where it puts them, typing.List, ...), and no
# `from __future__ import annotations` here: the prompt examples' return annotations must stay
# the classes themselves, as in the README, for a class defined inside a test to be found.
# ruff: noqa: B018, E402, E501, F401, F541, F811, I001, UP006, UP035, UP039

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

import byzer_agents
from byzer_agents import ByzerLLM, InferBackend, LLMRequest, Templates
from byzer_agents.models import default_chat_model, default_embedding_model, default_tool_model
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest
from tests.openai_server import ServerURL, serve_backend

pytestmark = pytest.mark.slow

# The udf names the README deploys; a leftover of an earlier run is removed first.
QUICKSTART, EMBEDDER, CHAT, SAAS_CHAT = "llama2_chat", "emb", "chat", "sparkdesk_chat"
SAAS_STREAM = "qianwen_chat"
SAAS_KEY = "sk-seed-readme-local"
SAAS_MAX_TOKENS = 96
"""The local SaaS stand-in's default answer length (the prompt examples pass no llm_config)."""

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


# --- README, "Function Calling": the tools ---------------------------------------------------
# fmt: off

from typing import List,Dict,Any,Annotated
import pydantic
import datetime
from dateutil.relativedelta import relativedelta

def compute_date_range(count:Annotated[int,"时间跨度，数值类型"],
                       unit:Annotated[str,"时间单位，字符串类型",{"enum":["day","week","month","year"]}])->List[str]:
    '''
    计算日期范围

    Args:
        count: 时间跨度，数值类型
        unit: 时间单位，字符串类型，可选值为 day,week,month,year
    '''
    now = datetime.datetime.now()
    now_str = now.strftime("%Y-%m-%d %H:%M:%S")
    if unit == "day":
        return [(now - relativedelta(days=count)).strftime("%Y-%m-%d %H:%M:%S"),now_str]
    elif unit == "week":
        return [(now - relativedelta(weeks=count)).strftime("%Y-%m-%d %H:%M:%S"),now_str]
    elif unit == "month":
        return [(now - relativedelta(months=count)).strftime("%Y-%m-%d %H:%M:%S"),now_str]
    elif unit == "year":
        return [(now - relativedelta(years=count)).strftime("%Y-%m-%d %H:%M:%S"),now_str]
    return ["",""]

def compute_now()->str:
    '''
    计算当前时间
    '''
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")

# --- README, "Respond with pydantic class" ----------------------------------------------------

import pydantic

class Story(pydantic.BaseModel):
    '''
    故事
    '''

    title: str = pydantic.Field(description="故事的标题")
    body: str = pydantic.Field(description="故事主体")

# --- README, "Prompt Function && Prompt Class": the shared context and data -------------------

context='''
Byzer产品栈从底层存储到大模型管理和serving再到应用开发框架：
1. Byzer-Retrieval, 一个支持向量+搜索的混合检索数据库。
2. Byzer-LLM, 可以衔接SaaS/开源模型，能部署，可以统一入口。
3. Byzer-Agent ,一套分布式 Agent 框架，做为应用开发框架
4. ByzerPerf, 一套性能吞吐评测框架
5. ByzerEvaluation, 一套大模型效果评测框架 （未开源）
6. Byzer-SQL， 一套全SQL方言，支持ETL，数据分析等工作，并且支持大模型的管理和调用（model as UDF）,方便数据预处理。
'''

class ByzerProductDesc(pydantic.BaseModel):
    byzer_retrieval: str
    byzer_llm: str
    byzer_agent: str
    byzer_perf: str
    byzer_evaluation: str
    byzer_sql: str

data = {
    'name': 'Jane Doe',
    'task_count': 3,
    'tasks': [
        {'name': 'Submit report', 'due_date': '2024-03-10'},
        {'name': 'Finish project', 'due_date': '2024-03-15'},
        {'name': 'Reply to emails', 'due_date': '2024-03-08'}
    ]
}

# fmt: on


@dataclass(frozen=True)
class Seed:
    """What the README's deploy snippets leave: the client of each section."""

    quickstart: Any
    """The quick start's ``llm`` (it deployed ``llama2_chat`` and ``emb``)."""
    chat: Any
    """The function-calling section's ``llm``: default model ``chat``, template qwen."""
    chat_model_name: str
    saas_url: ServerURL
    """The local OpenAI-compatible server the SaaS snippets' deployments talk to."""


@dataclass(frozen=True)
class _CappedAnswers:
    """The local SaaS stand-in's model: the deployed SmolLM2, with a provider's default answer
    length when a request names none."""

    deployment: Any

    def _capped(self, request: ChatRequest) -> ChatRequest:
        if request.max_tokens is not None:
            return request
        return request.model_copy(update={"max_tokens": SAAS_MAX_TOKENS})

    def chat(self, request: ChatRequest) -> ChatCompletion:
        completion: ChatCompletion = self.deployment.chat(self._capped(request))
        return completion

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        chunks: Iterator[ChatCompletionChunk] = self.deployment.stream(self._capped(request))
        return chunks

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.deployment.embed(texts)
        return vectors


@pytest.fixture(scope="module")
def seed(ray_cluster: object) -> Iterator[Seed]:
    """The README's deploy snippets, run once for the module (Ray is joined by ``ray_cluster``,
    through the project's own cluster connect, before the README's ``ray.init`` lines run)."""
    cleaner = byzer_agents.ByzerLLM()
    for name in (QUICKSTART, EMBEDDER, CHAT, SAAS_CHAT, SAAS_STREAM):
        cleaner.undeploy(name)
    try:
        # README, "Quick Start" (Python), its deploy half:
        # fmt: off
        import ray
        from byzer_agents import ByzerLLM,LLMRequest,InferBackend

        ray.init(address="auto",namespace="default",ignore_reinit_error=True)

        llm = ByzerLLM()

        llm.setup_gpus_per_worker(0).setup_num_workers(1).setup_cpus_per_worker(0.25)  # README: setup_gpus_per_worker(4)
        llm.setup_infer_backend(InferBackend.transformers)

        llm.deploy(model_path=default_chat_model(),  # README: "/home/byzerllm/models/openbuddy-llama2-13b64k-v15"
                   pretrained_model_type="custom/llama2",
                   udf_name="llama2_chat",infer_params={})
        # fmt: on
        quickstart = llm

        # README, "Embedding Model":
        # fmt: off
        import ray
        from byzer_agents import ByzerLLM,LLMRequest,InferBackend
        ray.init(address="auto",namespace="default",ignore_reinit_error=True)
        llm = ByzerLLM()

        llm.setup_gpus_per_worker(0).setup_num_workers(1).setup_cpus_per_worker(0.25).setup_infer_backend(InferBackend.Transformers)  # README: (0.4), (2)
        llm.deploy(
            model_path=default_embedding_model(),  # README: "/home/byzerllm/models/bge-large-zh"
            pretrained_model_type="custom/bge",
            udf_name="emb",
            infer_params={}
        )
        # fmt: on

        # README, "Function Calling", "Deploy Model". The README uses `chat_model_name` without
        # setting it (its other sections set it); the model answers to "chat" below, so:
        chat_model_name = "chat"
        # fmt: off
        import ray
        ray.init(address="auto",namespace="default",ignore_reinit_error=True)  # README: no ignore_reinit_error (Ray is joined already)
        llm = ByzerLLM()

        model_location=default_tool_model()  # README: "/home/byzerllm/models/Qwen-72B-Chat"

        llm.setup_gpus_per_worker(0).setup_num_workers(1).setup_cpus_per_worker(0.25).setup_infer_backend(InferBackend.Transformers)  # README: (8), VLLM
        llm.deploy(
            model_path=model_location,
            pretrained_model_type="custom/auto",
            udf_name=chat_model_name,
            infer_params={}
        )

        llm.setup_default_model_name("chat")
        # from 0.1.24
        # llm.setup_auto("chat")
        meta = llm.get_meta()
        llm.setup_max_model_length("chat",meta.get("max_model_len",32000))
        llm.setup_template("chat",Templates.qwen())  # README: `lm.setup_template`, a typo
        # fmt: on

        # The prompt examples' "sparkdesk_chat": a saas/sparkdesk deployment whose endpoint is a
        # local OpenAI-compatible server on 127.0.0.1. Not the README's sparkdesk snippet: its
        # saas.appid / saas.api_secret / saas.gpt_url / saas.domain are for SparkDesk's websocket
        # API; byzer-agents speaks SparkDesk's OpenAI-compatible API (key, model, base_url).
        with serve_backend(
            _CappedAnswers(llm.backend(CHAT)),
            api_key=SAAS_KEY,
            model_name=CHAT,
        ) as saas_url:
            saas = ByzerLLM()
            saas.setup_num_workers(1).setup_gpus_per_worker(0).setup_cpus_per_worker(0.1)
            saas.deploy(
                model_path="",
                pretrained_model_type="saas/sparkdesk",
                udf_name=SAAS_CHAT,
                infer_params={"saas.api_key": SAAS_KEY, "saas.model": CHAT,
                              "saas.base_url": saas_url},
            )  # fmt: skip
            yield Seed(
                quickstart=quickstart,
                chat=llm,
                chat_model_name=chat_model_name,
                saas_url=saas_url,
            )
    finally:
        for name in (QUICKSTART, EMBEDDER, CHAT, SAAS_CHAT, SAAS_STREAM):
            cleaner.undeploy(name)


# --- Quick Start -------------------------------------------------------------------------------


def test_quick_start_chats_with_the_deployed_model(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    llm = seed.quickstart
    # README, "Quick Start" (Python), its chat half:
    # fmt: off
    llm_client = ByzerLLM()
    llm_client.setup_template("llama2_chat","auto")

    v = llm.chat_oai(model="llama2_chat",conversations=[{
        "role":"user",
        "content":"hello",
    }])

    print(v[0].output)
    # fmt: on
    assert isinstance(v, list) and len(v) == 1
    assert isinstance(v[0].output, str) and v[0].output.strip()
    assert capsys.readouterr().out == v[0].output + "\n"


# --- Embedding Model ---------------------------------------------------------------------------


def test_embedding_turns_text_into_a_vector(seed: Seed) -> None:
    llm = seed.quickstart
    # README, "Embedding Model":
    # fmt: off
    t = llm.emb("emb",LLMRequest(instruction="wow"))
    t[0].output
    # fmt: on
    vector = t[0].output
    assert isinstance(vector, list) and len(vector) == 384  # all-MiniLM-L6-v2's dimension
    assert all(isinstance(x, float) for x in vector) and any(x != 0 for x in vector)


# --- Stream Chat -------------------------------------------------------------------------------


def test_stream_chat_yields_text_pieces(seed: Seed, capsys: pytest.CaptureFixture[str]) -> None:
    llm, chat_model_name = seed.chat, seed.chat_model_name
    # README, "vLLM Support", "Stream Chat":
    # fmt: off
    llm.setup_default_model_name(chat_model_name)

    t = llm.stream_chat_oai(conversations=[{
        "role":"user",
        "content":"Hello, how are you?"
    }],llm_config={"max_length":48})  # README: no llm_config

    for line in t:
       print(line+"\n")
    # fmt: on
    printed = capsys.readouterr().out
    assert printed.strip(), "the stream yielded no text"
    assert printed.endswith("\n\n")


# --- SaaS Models: qianwen, streamed -------------------------------------------------------------


def test_saas_model_streams(seed: Seed, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        # README, "SaaS Models", "qianwen/通义千问", Python:
        # fmt: off
        from byzer_agents import ByzerLLM
        llm = ByzerLLM()

        llm.setup_num_workers(1).setup_gpus_per_worker(0).setup_cpus_per_worker(0.1)  # README: no cpus_per_worker

        chat_name = "qianwen_chat"

        llm.deploy(model_path="",
                   pretrained_model_type="saas/qianwen",
                   udf_name=chat_name,
                   infer_params={
                    "saas.api_key":SAAS_KEY,  # README: "xxxxxxx"
                    "saas.model":"qwen-turbo",
                    "saas.base_url":seed.saas_url,  # README: none (DashScope's endpoint)
                   })

        ## here you can use `stream_chat_oai`
        v = llm.stream_chat_oai(model=chat_name,conversations=[{
            "role":"user",
            "content":"你好，你是谁",
        }],llm_config={"gen.incremental_output":False})

        for t in v:
            print(t,flush=True)
        # fmt: on
    finally:
        ByzerLLM().undeploy(SAAS_STREAM)
    printed = capsys.readouterr().out
    assert printed.strip(), "the stream yielded no text"
    served = [body for body in seed.saas_url.bodies() if body.get("model") == "qwen-turbo"]
    assert served and served[-1]["stream"] is True  # it streamed, from the local endpoint


# --- Function Calling --------------------------------------------------------------------------


def _assert_calls_were_run(t: list[Any], *, called: bool = False) -> None:
    """Every tool call the model made ran once, and ``.values`` holds what each returned; with
    ``called``, the model made one (the shipped tool model does for the README's questions)."""
    assert isinstance(t, list) and len(t) == 1
    if called:
        assert t[0].tool_calls, f"no tool was called; the model answered {t[0].output!r}"
    assert isinstance(t[0].values, list)
    assert len(t[0].values) == len(t[0].tool_calls) - len(t[0].tool_errors)
    assert not t[0].tool_errors, t[0].tool_errors
    for call, value in zip(t[0].tool_calls, t[0].values, strict=True):
        assert call.name in ("compute_date_range", "compute_now")
        if call.name == "compute_now":
            assert isinstance(value, str) and DATETIME.match(value), value
        else:
            assert call.arguments["unit"] in ("day", "week", "month", "year")
            assert isinstance(call.arguments["count"], int)
            assert isinstance(value, list) and len(value) == 2, value
            assert all(DATETIME.match(end) for end in value), value


def test_function_calling_current_time(seed: Seed) -> None:
    llm = seed.chat
    # fmt: off
    t = llm.chat_oai([{
        "content":'''计算当前时间''',
        "role":"user"
    }],tools=[compute_date_range,compute_now],execute_tool=True,llm_config={"max_length":64})  # README: no llm_config

    t[0].values

    ## output: ['2023-12-18 17:30:49']
    # fmt: on
    _assert_calls_were_run(t, called=True)


def test_function_calling_last_three_months(seed: Seed) -> None:
    llm = seed.chat
    # fmt: off
    t = llm.chat_oai([{
        "content":'''最近三个月趋势''',
        "role":"user"
    }],tools=[compute_date_range,compute_now],execute_tool=True,llm_config={"max_length":64})  # README: no llm_config

    t[0].values

    ## output: [['2023-09-18 17:31:21', '2023-12-18 17:31:21']]
    # fmt: on
    _assert_calls_were_run(t, called=True)


def test_function_calling_last_three_days(seed: Seed) -> None:
    llm = seed.chat
    # fmt: off
    t = llm.chat_oai([{
        "content":'''最近三天''',
        "role":"user"
    }],tools=[compute_date_range,compute_now],execute_tool=True,llm_config={"max_length":64})  # README: no llm_config

    t[0].values

    ## output: [['2023-12-15 17:23:38', '2023-12-18 17:23:38']]
    # fmt: on
    _assert_calls_were_run(t, called=True)


@pytest.mark.parametrize(
    "model", [CHAT, QUICKSTART], ids=["tool-model-calls-anyway", "base-model-answers-in-text"]
)
def test_function_calling_question_no_tool_answers(
    seed: Seed, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tool model calls a tool even here (so the README's first branch runs); the base
    SmolLM2, without the tool-calling adapter, answers in text: the README's no-tool branch. The
    base model gets the settings the README's function-calling section gives its model."""
    if model == CHAT:
        llm = seed.chat
    else:
        llm = ByzerLLM().setup_default_model_name(QUICKSTART)
        llm.setup_template(QUICKSTART, Templates.qwen())
    # fmt: off
    t = llm.chat_oai([{
        "content":'''你吃饭了么？''',
        "role":"user"
    }],tools=[compute_date_range,compute_now],execute_tool=True,llm_config={"max_length":64})  # README: no llm_config

    if t[0].values:
        print(t[0].values[0])
    else:
        print(t[0].response.output)

    ## output: '您好，我是一个人工智能语言模型，暂时无法吃饭。'
    # fmt: on
    _assert_calls_were_run(t)
    printed = capsys.readouterr().out
    if t[0].values:
        assert printed == f"{t[0].values[0]}\n"
    else:  # the branch the README shows: no tool fits, the text answer is read
        assert isinstance(t[0].response.output, str)
        assert printed == t[0].response.output + "\n"
    if model == QUICKSTART:
        assert not t[0].values, "the base model called a tool: the no-tool branch did not run"


# --- Respond with pydantic class ---------------------------------------------------------------


def test_response_class_answers_a_story(seed: Seed) -> None:
    llm = seed.chat
    # fmt: off
    t = llm.chat_oai([
    {
        "content":f'''请给我讲个故事，分成两个部分，一个标题，一个故事主体''',
        "role":"user"
    },
    ],response_class=Story,llm_config={"max_length":160})  # README: no llm_config

    t[0].value
    # fmt: on
    assert isinstance(t[0].value, Story)
    assert isinstance(t[0].value.title, str) and isinstance(t[0].value.body, str)


def test_response_after_chat_extracts_a_story_from_the_text(seed: Seed) -> None:
    llm = seed.chat
    # fmt: off
    t = llm.chat_oai([
    {
        "content":f'''请给我讲个故事，分成两个部分，一个标题，一个故事主体''',
        "role":"user"
    },
    ],response_class=Story,response_after_chat=True,llm_config={"max_length":160})  # README: no llm_config

    t[0].value
    # fmt: on
    assert isinstance(t[0].value, Story)
    assert isinstance(t[0].value.title, str) and isinstance(t[0].value.body, str)


# --- Prompt Function && Prompt Class -----------------------------------------------------------


def test_prompt_function_on_the_llm(seed: Seed, capsys: pytest.CaptureFixture[str]) -> None:
    llm = ByzerLLM()
    llm.setup_default_model_name(SAAS_CHAT)  # the README's `llm` had its default model set

    # fmt: off
    @llm.prompt(render="simple")
    def generate_answer(context:str,question:str)->str:
        '''
        Answer the question based on only the following context:
        {context}
        Question: {question}
        Answer:
        '''
        pass

    print(generate_answer(context=context,question="Byzer SQL是什么？"))
    # fmt: on
    printed = capsys.readouterr().out
    assert printed.strip()
    assert "Answer the question based on only the following context" not in printed, (
        "the prompt was printed: the model was not asked"
    )


def test_prompt_class_asks_the_llm_its_lambda_names(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    # fmt: off
    import ray
    from byzer_agents import ByzerLLM
    import byzer_agents as byzerllm

    ray.init(address="auto",namespace="default",ignore_reinit_error=True)

    class RAG():
        def __init__(self):
            self.llm = ByzerLLM()
            self.llm.setup_template(model="sparkdesk_chat",template="auto")
            self.llm.setup_default_model_name("sparkdesk_chat")

        @byzerllm.prompt(lambda self: self.llm,render="simple")
        def generate_answer(self,context:str,question:str)->str:
            '''
            Answer the question based on only the following context:
            {context}
            Question: {question}
            Answer:
            '''
            pass

    t = RAG()
    print(t.generate_answer(context=context,question="Byzer SQL是什么？"))
    # fmt: on
    printed = capsys.readouterr().out
    assert printed.strip()
    assert "Answer the question based on only the following context" not in printed, (
        "the prompt was printed: the model was not asked"
    )


def test_prompt_class_without_an_llm_returns_the_prompt(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    # fmt: off
    import ray
    from byzer_agents import ByzerLLM
    import byzer_agents as byzerllm

    ray.init(address="auto",namespace="default",ignore_reinit_error=True)

    class RAG():
        def __init__(self):
            self.llm = ByzerLLM()
            self.llm.setup_template(model="sparkdesk_chat",template="auto")
            self.llm.setup_default_model_name("sparkdesk_chat")

        @byzerllm.prompt(render="simple")
        def generate_answer(self,context:str,question:str)->str:
            '''
            Answer the question based on only the following context:
            {context}
            Question: {question}
            Answer:
            '''
            pass

    t = RAG()
    print(t.generate_answer(context=context,question="Byzer SQL是什么？"))
    # fmt: on
    printed = capsys.readouterr().out
    assert printed.startswith("Answer the question based on only the following context:\n")
    assert context.strip() in printed
    assert printed.endswith("Question: Byzer SQL是什么？\nAnswer:\n")


def test_prompt_class_answers_a_pydantic_class(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    # fmt: off
    import ray
    import functools
    import inspect
    import byzer_agents as byzerllm
    import pydantic

    ray.init(address="auto",namespace="default",ignore_reinit_error=True)

    class ByzerProductDesc(pydantic.BaseModel):
        byzer_retrieval: str
        byzer_llm: str
        byzer_agent: str
        byzer_perf: str
        byzer_evaluation: str
        byzer_sql: str

    class RAG():
        def __init__(self):
            self.llm = ByzerLLM()
            self.llm.setup_template(model="sparkdesk_chat",template="auto")
            self.llm.setup_default_model_name("sparkdesk_chat")

        @byzerllm.prompt(lambda self: self.llm,render="simple")
        def generate_answer(self,context:str,question:str)->ByzerProductDesc:
            '''
            Answer the question based on only the following context:
            {context}
            Question: {question}
            Answer:
            '''
            pass

    t = RAG()

    byzer_product = t.generate_answer(context=context,question="Byzer 产品列表")
    print(byzer_product.byzer_sql)
    # fmt: on
    assert isinstance(byzer_product, ByzerProductDesc)
    assert capsys.readouterr().out == byzer_product.byzer_sql + "\n"


def test_prompt_class_renders_jinja2(seed: Seed, capsys: pytest.CaptureFixture[str]) -> None:
    # fmt: off
    import ray
    import functools
    import inspect
    import byzer_agents as byzerllm
    import pydantic
    from byzer_agents import ByzerLLM

    ray.init(address="auto",namespace="default",ignore_reinit_error=True)

    class RAG():
        def __init__(self):
            self.llm = ByzerLLM()
            self.llm.setup_template(model="sparkdesk_chat",template="auto")
            self.llm.setup_default_model_name("sparkdesk_chat")

        @byzerllm.prompt(lambda self:self.llm,render="jinja2")
        def generate_answer(self,name,task_count,tasks)->str:
            '''
            Hello {{ name }},

            This is a reminder that you have {{ task_count }} pending tasks:
            {% for task in tasks %}
            - Task: {{ task.name }} | Due: {{ task.due_date }}
            {% endfor %}

            Best regards,
            Your Reminder System
            '''
            pass

    t = RAG()

    response = t.generate_answer(**data)
    print(response)
    # fmt: on
    assert isinstance(response, str) and response.strip()
    assert capsys.readouterr().out == response + "\n"
    rendered = t.generate_answer.prompt(**data)  # what the model was asked
    assert "Hello Jane Doe," in rendered and "- Task: Reply to emails | Due: 2024-03-08" in rendered


def test_prompt_class_body_returns_template_variables(
    seed: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    # fmt: off
    import byzer_agents as byzerllm

    byzerllm.connect_cluster()

    data = {
        'name': 'Jane Doe',
        'task_count': 3,
        'tasks': [
            {'name': 'Submit report', 'due_date': '2024-03-10'},
            {'name': 'Finish project', 'due_date': '2024-03-15'},
            {'name': 'Reply to emails', 'due_date': '2024-03-08'}
        ]
    }


    class RAG():
        def __init__(self):
            self.llm = byzerllm.ByzerLLM()
            self.llm.setup_template(model="sparkdesk_chat",template="auto")
            self.llm.setup_default_model_name("sparkdesk_chat")

        @byzerllm.prompt(lambda self:self.llm,render="jinja2")
        def generate_answer(self,name,task_count,tasks)->str:
            '''
            Hello {{ name }},

            This is a reminder that you have {{ task_count }} pending tasks:

            {{ tasks }}

            Best regards,
            Your Reminder System
            '''

            tasks_str = "\n".join([f"- Task: {task['name']} | Due: { task['due_date'] }" for task in tasks])
            return {"tasks": tasks_str}

    t = RAG()

    response = t.generate_answer(**data)
    print(response)
    # fmt: on
    assert isinstance(response, str) and response.strip()
    assert capsys.readouterr().out == response + "\n"
    rendered = t.generate_answer.prompt(**data)  # the body's dict replaced `tasks`
    assert "- Task: Submit report | Due: 2024-03-10\n- Task: Finish project" in rendered
