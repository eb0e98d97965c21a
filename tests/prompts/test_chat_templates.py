"""Tests for byzer_agents/prompts/chat_templates.py: each family's layout of a tool-calling
conversation, its stop tokens, and the errors that name what was wrong."""

# The shipped templates below are kept verbatim, long lines included.
# ruff: noqa: E501

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from byzer_agents.exceptions import PromptTemplateError
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temp_c": 18}'},
    {"role": "assistant", "content": "18 °C."},
]

PLAIN_CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye"},
]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now, in <city>",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

ALL_NAMES = ("qwen", "llama2", "llama3", "chatml", "zephyr", "default")

# The templates the models ship in their tokenizer_config.json, to check ours against.
QWEN2_5_SHIPPED = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

LLAMA3_SHIPPED = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

LLAMA2_SHIPPED = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

ZEPHYR_SHIPPED = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


class FakeTokenizer:
    """Quacks like a transformers tokenizer, as far as chat templates go."""

    def __init__(
        self,
        chat_template: Any,
        eos_token: str | None = "</s>",
        bos_token: str | None = "<s>",
        name_or_path: str = "acme/tiny-chat",
    ) -> None:
        self.chat_template = chat_template
        self.eos_token = eos_token
        self.bos_token = bos_token
        self.name_or_path = name_or_path


def _shipped(source: str, template: ChatTemplate) -> ChatTemplate:
    """A tokenizer-shipped template with the same special tokens as ``template``."""
    return ChatTemplate(
        name="shipped",
        source=source,
        stop=template.stop,
        bos_token=template.bos_token,
        eos_token=template.eos_token,
    )


# --- each family's layout -----------------------------------------------------------------------


def test_qwen_renders_tool_call_and_result_in_its_own_tags() -> None:
    assert Templates.qwen().render(CONVERSATION, add_generation_prompt=False) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": '
        '"Paris"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp_c": 18}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n18 °C.<|im_end|>\n"
    )


def test_qwen_lists_the_tools_in_its_system_prompt() -> None:
    prompt = Templates.qwen().render(CONVERSATION, tools=[WEATHER_TOOL])

    system_turn = prompt[: prompt.index("<|im_end|>")]
    assert system_turn.startswith("<|im_start|>system\nYou are terse.\n\n# Tools\n")
    assert f"<tools>\n{json.dumps(WEATHER_TOOL, ensure_ascii=False)}\n</tools>" in system_turn


def test_qwen_without_a_system_message_uses_its_own() -> None:
    prompt = Templates.qwen().render([{"role": "user", "content": "Hi"}])

    assert prompt == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_qwen_groups_consecutive_tool_results_into_one_user_turn() -> None:
    messages = [
        {"role": "user", "content": "Two things"},
        {"role": "tool", "tool_call_id": "a", "content": "one"},
        {"role": "tool", "tool_call_id": "b", "content": "two"},
    ]

    prompt = Templates.qwen().render(messages, add_generation_prompt=False)

    assert prompt.endswith(
        "<|im_start|>user\n<tool_response>\none\n</tool_response>\n"
        "<tool_response>\ntwo\n</tool_response><|im_end|>\n"
    )


@pytest.mark.parametrize("tools", [None, [WEATHER_TOOL]], ids=["no tools", "tools"])
def test_qwen_renders_as_the_template_qwen2_5_ships(tools: list[dict[str, Any]] | None) -> None:
    ours = Templates.qwen()

    assert ours.render(CONVERSATION, tools=tools) == _shipped(QWEN2_5_SHIPPED, ours).render(
        CONVERSATION, tools=tools
    )


def test_chatml_renders_tool_results_in_a_tool_turn() -> None:
    assert Templates.chatml().render(CONVERSATION, add_generation_prompt=False) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": '
        '"Paris"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>tool\n<tool_response>\n{"temp_c": 18}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n18 °C.<|im_end|>\n"
    )


def test_chatml_without_system_message_or_tools_has_no_system_turn() -> None:
    prompt = Templates.chatml().render([{"role": "user", "content": "Hi"}])

    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_chatml_lists_the_tools_in_a_system_turn_of_its_own() -> None:
    prompt = Templates.chatml().render([{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL])

    assert prompt.startswith("<|im_start|>system\n# Tools\n")
    assert '"name": "get_weather"' in prompt[: prompt.index("<|im_end|>")]


def test_llama3_renders_tool_calls_as_json_and_results_in_ipython_turns() -> None:
    assert Templates.llama3().render(CONVERSATION, add_generation_prompt=False) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"temp_c": 18}<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n18 °C.<|eot_id|>"
    )


def test_llama3_lists_the_tools_in_its_system_turn() -> None:
    prompt = Templates.llama3().render(CONVERSATION, tools=[WEATHER_TOOL])

    system_turn = prompt[: prompt.index("<|eot_id|>")]
    assert system_turn.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.\n\n"
    )
    assert json.dumps(WEATHER_TOOL, indent=4) in system_turn


def test_llama3_renders_plain_chat_as_the_template_llama3_ships() -> None:
    ours = Templates.llama3()

    assert ours.render(PLAIN_CHAT) == _shipped(LLAMA3_SHIPPED, ours).render(PLAIN_CHAT)


def test_llama2_puts_the_system_prompt_in_the_first_inst_and_tool_results_in_their_own() -> None:
    assert Templates.llama2().render(CONVERSATION) == (
        "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nWeather in Paris? [/INST]"
        ' [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}] </s>'
        '<s>[INST] [TOOL_RESULTS] {"temp_c": 18} [/TOOL_RESULTS] [/INST]'
        " 18 °C. </s>"
    )


def test_llama2_renders_plain_chat_as_the_template_llama2_ships() -> None:
    ours = Templates.llama2()

    assert ours.render(PLAIN_CHAT) == _shipped(LLAMA2_SHIPPED, ours).render(PLAIN_CHAT)


def test_llama2_lists_the_tools_inside_the_system_block() -> None:
    prompt = Templates.llama2().render(CONVERSATION, tools=[WEATHER_TOOL])

    system_block = prompt[: prompt.index("<</SYS>>")]
    assert "[AVAILABLE_TOOLS] [" + json.dumps(WEATHER_TOOL, ensure_ascii=False) in system_block


def test_llama2_refuses_a_system_message_after_the_first() -> None:
    messages = [*PLAIN_CHAT, {"role": "system", "content": "Late rule."}]

    with pytest.raises(PromptTemplateError, match=r"'llama2'.*only as the first message"):
        Templates.llama2().render(messages)


def test_zephyr_ends_every_turn_with_eos() -> None:
    assert Templates.zephyr().render(CONVERSATION, add_generation_prompt=False) == (
        "<|system|>\nYou are terse.</s>\n"
        "<|user|>\nWeather in Paris?</s>\n"
        '<|assistant|>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "\n</tool_call></s>\n"
        '<|user|>\n<tool_response>\n{"temp_c": 18}\n</tool_response></s>\n'
        "<|assistant|>\n18 °C.</s>\n"
    )


def test_zephyr_renders_plain_chat_as_the_template_zephyr_ships() -> None:
    ours = Templates.zephyr()

    assert ours.render(PLAIN_CHAT) == _shipped(ZEPHYR_SHIPPED, ours).render(PLAIN_CHAT)


def test_default_writes_a_plain_transcript() -> None:
    assert Templates.default().render(CONVERSATION) == (
        "System: You are terse.\n\n"
        "User: Weather in Paris?\n\n"
        'Assistant: {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}\n\n'
        'Tool: {"temp_c": 18}\n\n'
        "Assistant: 18 °C.\n\n"
        "Assistant:"
    )


def test_default_lists_the_tools_after_the_system_message() -> None:
    prompt = Templates.default().render(CONVERSATION, tools=[WEATHER_TOOL])

    header = prompt[: prompt.index("User:")]
    assert header.startswith("System: You are terse.\n\nYou can call these tools.")
    assert json.dumps(WEATHER_TOOL, ensure_ascii=False) in header


def test_an_assistant_message_with_text_and_tool_calls_keeps_both_in_order() -> None:
    message = {**CONVERSATION[2], "content": "Let me look."}

    prompt = Templates.qwen().render([message], add_generation_prompt=False)

    assert "<|im_start|>assistant\nLet me look.\n<tool_call>\n" in prompt


# --- what every template shares ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("qwen", "<|im_start|>assistant\n"),
        ("chatml", "<|im_start|>assistant\n"),
        ("llama3", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("zephyr", "<|assistant|>\n"),
        ("default", "Assistant:"),
    ],
)
def test_add_generation_prompt_appends_the_assistant_header(name: str, header: str) -> None:
    template = Templates.get(name)
    messages = [{"role": "user", "content": "Hi"}]

    with_header = template.render(messages, add_generation_prompt=True)
    without = template.render(messages, add_generation_prompt=False)

    assert with_header == without + header
    assert not without.endswith(header)


def test_llama2_needs_no_generation_prompt_because_its_prompt_ends_with_inst() -> None:
    messages = [{"role": "user", "content": "Hi"}]

    prompt = Templates.llama2().render(messages, add_generation_prompt=True)

    assert prompt == "<s>[INST] Hi [/INST]"
    assert prompt == Templates.llama2().render(messages, add_generation_prompt=False)


@pytest.mark.parametrize(
    ("name", "stop"),
    [
        ("qwen", ("<|im_end|>", "<|endoftext|>")),
        ("chatml", ("<|im_end|>",)),
        ("llama3", ("<|eot_id|>", "<|end_of_text|>")),
        ("llama2", ("</s>",)),
        ("zephyr", ("</s>",)),
        ("default", ("\nUser:", "\nTool:")),
    ],
)
def test_each_template_declares_its_stop_tokens(name: str, stop: tuple[str, ...]) -> None:
    assert Templates.get(name).stop == stop


@pytest.mark.parametrize("name", ["qwen", "chatml", "llama3", "llama2", "zephyr"])
def test_each_chat_template_ends_an_assistant_turn_with_one_of_its_stop_tokens(name: str) -> None:
    template = Templates.get(name)
    answer = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]

    prompt = template.render(answer, add_generation_prompt=False)

    after_answer = prompt[prompt.rindex("Hello.") + len("Hello.") :]
    assert any(stop in after_answer for stop in template.stop)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_an_unknown_role_is_refused_naming_it_and_the_allowed_roles(name: str) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "critic", "content": "Meh"}]

    with pytest.raises(PromptTemplateError) as caught:
        Templates.get(name).render(messages)

    message = str(caught.value)
    assert f"{name!r}" in message
    assert "'critic'" in message
    assert "user, assistant, tool" in message


@pytest.mark.parametrize("name", ALL_NAMES)
def test_tool_results_and_calls_reach_the_prompt_in_every_template(name: str) -> None:
    prompt = Templates.get(name).render(CONVERSATION)

    assert prompt.index("get_weather") < prompt.index('{"temp_c": 18}') < prompt.index("18 °C.")
    assert '"city": "Paris"' in prompt


@pytest.mark.parametrize("name", ALL_NAMES)
def test_json_in_the_prompt_is_not_html_escaped(name: str) -> None:
    prompt = Templates.get(name).render(CONVERSATION, tools=[WEATHER_TOOL])

    assert "Weather now, in <city>" in prompt
    assert "\\u003c" not in prompt


def test_a_user_message_without_content_is_refused_naming_it() -> None:
    messages = [{"role": "system", "content": "Hi"}, {"role": "user"}]

    with pytest.raises(PromptTemplateError, match=r"message 1 \(user\) needs 'content'"):
        Templates.chatml().render(messages)


def test_an_assistant_message_with_neither_content_nor_tool_calls_is_refused() -> None:
    messages = [{"role": "assistant", "content": None, "tool_calls": None}]

    with pytest.raises(PromptTemplateError, match="neither 'content' nor 'tool_calls'"):
        Templates.qwen().render(messages)


def test_a_message_without_a_role_is_refused() -> None:
    with pytest.raises(PromptTemplateError, match=r"message 0 needs a 'role' string, got None"):
        Templates.qwen().render([{"content": "Hi"}])


def test_a_tool_call_without_a_function_name_is_refused() -> None:
    messages = [{"role": "assistant", "tool_calls": [{"id": "x", "function": {"arguments": "{}"}}]}]

    with pytest.raises(PromptTemplateError, match="tool call 0 needs a 'function' with a 'name'"):
        Templates.qwen().render(messages)


def test_text_parts_are_joined_into_the_content() -> None:
    parts = [{"type": "text", "text": "Weather in"}, {"type": "text", "text": "Paris?"}]

    prompt = Templates.chatml().render([{"role": "user", "content": parts}])

    assert "<|im_start|>user\nWeather in\nParis?<|im_end|>" in prompt


def test_an_image_part_is_refused_naming_its_type() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "http://x/cat.png"}}]

    with pytest.raises(PromptTemplateError, match="only text parts, got a 'image_url' part"):
        Templates.chatml().render([{"role": "user", "content": parts}])


def test_tool_call_arguments_that_are_not_json_are_shown_as_written() -> None:
    call = {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    messages = [{"role": "assistant", "content": None, "tool_calls": [call]}]

    prompt = Templates.qwen().render(messages, add_generation_prompt=False)

    assert '{"name": "f", "arguments": "{oops"}' in prompt


def test_rendering_leaves_the_messages_untouched() -> None:
    messages = copy.deepcopy(CONVERSATION)

    Templates.qwen().render(messages, tools=[WEATHER_TOOL])

    assert messages == CONVERSATION


def test_a_template_that_does_not_compile_is_refused_with_its_name() -> None:
    with pytest.raises(PromptTemplateError, match=r"'broken' does not compile.*line 1"):
        ChatTemplate(name="broken", source="{% for m in messages %}", stop=())


# --- tokenizers and names -----------------------------------------------------------------------


def test_from_tokenizer_prefers_the_template_the_tokenizer_ships() -> None:
    tokenizer = FakeTokenizer("{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}")

    template = Templates.from_tokenizer(tokenizer)

    assert template is not None
    assert template.render([{"role": "user", "content": "Hi"}]) == "[user] Hi"
    assert template.stop == ("</s>",)
    assert template.name == "tokenizer:acme/tiny-chat"


def test_from_tokenizer_renders_a_shipped_qwen_template_as_ours_does() -> None:
    tokenizer = FakeTokenizer(QWEN2_5_SHIPPED, eos_token="<|im_end|>", bos_token=None)

    template = Templates.from_tokenizer(tokenizer)

    assert template is not None
    assert template.stop == ("<|im_end|>",)
    assert template.render(CONVERSATION, tools=[WEATHER_TOOL]) == Templates.qwen().render(
        CONVERSATION, tools=[WEATHER_TOOL]
    )


@pytest.mark.parametrize("chat_template", [None, ""])
def test_from_tokenizer_gives_none_when_the_tokenizer_ships_no_template(
    chat_template: str | None,
) -> None:
    assert Templates.from_tokenizer(FakeTokenizer(chat_template)) is None


def test_from_tokenizer_gives_none_for_an_object_without_a_chat_template() -> None:
    assert Templates.from_tokenizer(object()) is None


def test_from_tokenizer_uses_the_default_of_several_named_templates() -> None:
    named = {"default": "default:{{ messages[0].content }}", "tool_use": "tools!"}

    template = Templates.from_tokenizer(FakeTokenizer(named))

    assert template is not None
    assert template.render([{"role": "user", "content": "Hi"}]) == "default:Hi"


def test_from_tokenizer_reads_the_list_form_of_named_templates() -> None:
    named = [
        {"name": "default", "template": "plain"},
        {"name": "tool_use", "template": "tools:{{ tools | length }}"},
    ]

    template = Templates.from_tokenizer(FakeTokenizer(named), template_name="tool_use")

    assert template is not None
    assert template.render([{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL]) == "tools:1"


def test_from_tokenizer_refuses_a_missing_named_template_listing_the_ones_it_has() -> None:
    tokenizer = FakeTokenizer({"tool_use": "a", "rag": "b"})

    with pytest.raises(
        PromptTemplateError, match=r"no chat template called 'default'.*tool_use, rag"
    ):
        Templates.from_tokenizer(tokenizer)


def test_a_tokenizer_template_can_use_what_hugging_face_templates_rely_on() -> None:
    source = (
        "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
        "{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
        "|{{ strftime_now('%Y') | length }}|{{ enable_thinking }}"
    )
    template = Templates.from_tokenizer(FakeTokenizer(source))

    assert template is not None
    assert template.render(PLAIN_CHAT, enable_thinking=False) == "HiHello.Bye|4|False"


def test_raise_exception_in_a_tokenizer_template_becomes_a_prompt_template_error() -> None:
    template = Templates.from_tokenizer(
        FakeTokenizer("{{ raise_exception('roles must alternate') }}")
    )

    assert template is not None
    with pytest.raises(
        PromptTemplateError, match=r"'tokenizer:acme/tiny-chat'.*roles must alternate"
    ):
        template.render(PLAIN_CHAT)


def test_a_type_error_inside_a_tokenizer_template_names_the_template() -> None:
    template = Templates.from_tokenizer(FakeTokenizer("{{ messages[0].content + 1 }}"))

    assert template is not None
    with pytest.raises(PromptTemplateError, match="'tokenizer:acme/tiny-chat' cannot render"):
        template.render(PLAIN_CHAT)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_get_finds_each_built_in_template_by_name(name: str) -> None:
    assert Templates.get(name) == getattr(Templates, name)()
    assert Templates.get(name).name == name


def test_get_ignores_case_and_surrounding_space() -> None:
    assert Templates.get(" Qwen ") == Templates.qwen()


def test_get_refuses_an_unknown_name_listing_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="'mistral'") as caught:
        Templates.get("mistral")

    assert "qwen, llama2, llama3, chatml, zephyr, default" in str(caught.value)
