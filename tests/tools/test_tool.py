"""The @tool decorator and Tool: forms of definition, calling, validating, invoking."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import pytest

from byzer_agents import Tool, ToolArgumentsError, ToolDefinitionError, tool


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current weather of a city.

    Reads the nearest station.

    Args:
        city: The city's name, e.g. Paris.
        unit: The temperature unit.
    """
    return f"{city}: 21 {unit}"


def test_bare_decorator_keeps_the_function_callable_as_before() -> None:
    weather = tool(get_weather)
    assert weather("Paris") == "Paris: 21 celsius"
    assert weather("Oslo", unit="fahrenheit") == "Oslo: 21 fahrenheit"
    assert weather.__name__ == "get_weather"
    assert weather.__doc__ == get_weather.__doc__


def test_decorator_with_options_sets_name_description_and_strict() -> None:
    @tool(name="weather_now", description="Weather, now.", strict=True)
    def weather(city: str, unit: str = "celsius") -> str:
        return city

    assert weather.name == "weather_now"
    assert weather.description == "Weather, now."
    assert weather.strict is True
    assert weather.parameters["required"] == ["city", "unit"]
    assert weather.to_openai()["function"]["strict"] is True


def test_description_is_summary_and_body_without_args_section() -> None:
    weather = tool(get_weather)
    assert weather.description == "Get the current weather of a city.\n\nReads the nearest station."
    assert "Args" not in weather.description
    assert weather.parameters["properties"]["city"]["description"] == "The city's name, e.g. Paris."


def test_to_openai_is_the_chat_completions_tools_entry() -> None:
    entry = tool(get_weather).to_openai()
    assert entry["type"] == "function"
    assert entry["function"]["name"] == "get_weather"
    assert entry["function"]["parameters"]["required"] == ["city"]
    assert "strict" not in entry["function"]
    json.dumps(entry)  # must be JSON-serialisable as is


def test_validate_accepts_a_dict_or_a_json_string_and_coerces() -> None:
    @tool
    def repeat(text: str, times: int) -> str:
        return text * times

    assert repeat.validate({"text": "a", "times": "3"}) == {"text": "a", "times": 3}
    assert repeat.validate('{"text": "a", "times": 2}') == {"text": "a", "times": 2}
    assert repeat.invoke('{"text": "ab", "times": 2}') == "abab"


def test_validate_fills_defaults() -> None:
    assert tool(get_weather).validate({"city": "Rome"}) == {"city": "Rome", "unit": "celsius"}


def test_bad_arguments_name_every_bad_field_and_what_was_expected() -> None:
    weather = tool(get_weather)
    with pytest.raises(ToolArgumentsError) as caught:
        weather.validate({"unit": "kelvin", "country": "FR"})
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.tool_name == "get_weather"
    fields = {e.field: e.message for e in error.errors}
    assert set(fields) == {"city", "unit", "country"}
    assert "missing" in fields["city"]
    assert "'celsius' or 'fahrenheit'" in fields["unit"] and "kelvin" in fields["unit"]
    assert "unexpected argument" in fields["country"] and "city, unit" in fields["country"]
    assert "get_weather" in str(error) and "kelvin" in str(error)


def test_malformed_json_arguments_are_refused_with_the_position() -> None:
    with pytest.raises(ToolArgumentsError, match=r"not valid JSON .*column 16"):
        tool(get_weather).validate('{"city": "Paris"')
    with pytest.raises(ToolArgumentsError, match=r"not valid JSON .*position 16"):
        Tool.from_schema({"name": "weather", "parameters": {}}).validate('{"city": "Paris"')


def test_non_object_arguments_are_refused() -> None:
    with pytest.raises(ToolArgumentsError, match="expected a JSON object"):
        tool(get_weather).validate("[1, 2]")


def test_function_never_sees_unvalidated_input() -> None:
    seen = []

    @tool
    def record(count: int) -> None:
        seen.append(count)

    with pytest.raises(ToolArgumentsError):
        record.invoke({"count": "many"})
    assert seen == []
    record.invoke({"count": "7"})
    assert seen == [7]


def test_annotated_enum_metadata_is_enforced_at_validation() -> None:
    @tool
    def compute_date_range(
        count: Annotated[int, "time span"],
        unit: Annotated[str, "time unit", {"enum": ["day", "week", "month", "year"]}],
    ) -> list[str]:
        return [str(count), unit]

    unit_schema = compute_date_range.parameters["properties"]["unit"]
    assert unit_schema == {
        "type": "string",
        "description": "time unit",
        "enum": ["day", "week", "month", "year"],
    }
    assert compute_date_range.invoke({"count": 2, "unit": "week"}) == ["2", "week"]
    with pytest.raises(ToolArgumentsError, match="unit: 'hour' is not one of"):
        compute_date_range.validate({"count": 2, "unit": "hour"})


def test_async_function_ainvoke_awaits_it() -> None:
    @tool
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert asyncio.run(add.ainvoke({"a": 1, "b": "2"})) == 3
    assert add.invoke({"a": 2, "b": 2}) == 4  # no loop running: invoke runs it


def test_sync_function_ainvoke_runs_in_a_worker_thread() -> None:
    import threading

    main = threading.get_ident()

    @tool
    def where() -> int:
        return threading.get_ident()

    assert asyncio.run(where.ainvoke({})) != main


def test_async_invoke_inside_a_running_loop_points_to_ainvoke() -> None:
    @tool
    async def ping() -> str:
        return "pong"

    async def main() -> None:
        with pytest.raises(RuntimeError, match="ainvoke"):
            ping.invoke({})

    asyncio.run(main())


class Thermostat:
    def __init__(self, offset: float) -> None:
        self.offset = offset

    @tool
    def adjust(self, degrees: float) -> float:
        """Move the set point by `degrees`."""
        return degrees + self.offset

    @tool
    @classmethod
    def units(cls, system: Literal["metric", "imperial"]) -> str:
        return f"{cls.__name__}:{system}"

    @tool
    @staticmethod
    def clamp(value: float) -> float:
        return max(0.0, min(30.0, value))


def test_method_tool_hides_self_and_binds_to_the_instance() -> None:
    assert "self" not in Thermostat.adjust.parameters["properties"]
    device = Thermostat(offset=0.5)
    assert device.adjust.invoke({"degrees": 2}) == 2.5
    assert device.adjust(1.0) == 1.5


def test_classmethod_and_staticmethod_tools() -> None:
    assert "cls" not in Thermostat.units.parameters["properties"]
    assert Thermostat.units.invoke({"system": "metric"}) == "Thermostat:metric"
    assert Thermostat.clamp.invoke({"value": 99}) == 30.0


def test_unbound_method_tool_refuses_invoke_with_a_hint() -> None:
    with pytest.raises(ToolDefinitionError, match="through an instance"):
        Thermostat.__dict__["adjust"].invoke({"degrees": 1})


def test_tool_of_a_bound_method() -> None:
    device = Thermostat(offset=1.0)

    def scale(self: Thermostat, factor: float) -> float:
        return factor * self.offset

    bound = tool(scale.__get__(device))
    assert list(bound.parameters["properties"]) == ["factor"]
    assert bound.invoke({"factor": 3}) == 3.0


def test_positional_only_parameters_are_passed_by_position() -> None:
    @tool
    def divide(a: float, b: float, /) -> float:
        return a / b

    assert divide.invoke({"a": 9, "b": 3}) == 3.0


def test_star_args_are_refused_at_decoration_naming_function_and_parameter() -> None:
    with pytest.raises(ToolDefinitionError, match=r"'total'.*'\*numbers'"):

        @tool
        def total(*numbers: int) -> int:
            return sum(numbers)


def test_star_kwargs_are_refused_at_decoration() -> None:
    with pytest.raises(ToolDefinitionError, match=r"'configure'.*'\*\*options'"):

        @tool
        def configure(name: str, **options: str) -> None: ...


def test_unserialisable_default_is_refused_naming_the_parameter() -> None:
    with pytest.raises(ToolDefinitionError, match=r"'connect'.*'timeout'"):

        @tool
        def connect(host: str, timeout: object = object()) -> None: ...


class Socket:
    pass


def test_type_without_schema_is_refused_naming_the_parameter() -> None:
    with pytest.raises(ToolDefinitionError, match=r"'send'.*'sock'"):

        @tool
        def send(sock: Socket, data: str) -> None: ...


def test_unannotated_parameter_accepts_any_json_value() -> None:
    @tool
    def echo(value):  # type: ignore[no-untyped-def]
        return value

    assert echo.parameters["properties"]["value"] == {}
    assert echo.invoke({"value": [1, {"a": None}]}) == [1, {"a": None}]


def test_parameter_names_that_shadow_basemodel_attributes_work() -> None:
    @tool
    def store(json: str, schema: int, model_config: bool = False) -> tuple:
        return json, schema, model_config

    assert list(store.parameters["properties"]) == ["json", "schema", "model_config"]
    assert store.invoke({"json": "x", "schema": 1}) == ("x", 1, False)


def test_from_schema_validates_with_jsonschema_and_calls_fn() -> None:
    definition = {
        "type": "function",
        "function": {
            "name": "math.factorial",
            "description": "Factorial of n.",
            "parameters": {
                "type": "dict",
                "properties": {"number": {"type": "integer", "minimum": 0}},
                "required": ["number"],
            },
        },
    }
    import math

    factorial = Tool.from_schema(definition, fn=lambda number: math.factorial(number))
    assert factorial.name == "math_factorial"
    assert factorial.original_name == "math.factorial"
    assert factorial.parameters["type"] == "object"
    assert factorial.invoke({"number": 5}) == 120
    with pytest.raises(ToolArgumentsError, match="number: -1 is less than the minimum of 0"):
        factorial.validate({"number": -1})


def test_schema_tool_without_fn_validates_but_refuses_to_run() -> None:
    lookup = Tool.from_schema({"name": "lookup", "parameters": {"type": "object"}})
    assert lookup.validate({"anything": 1}) == {"anything": 1}
    with pytest.raises(ToolDefinitionError, match="no function to run"):
        lookup.invoke({})


def test_from_schema_refuses_a_definition_without_name() -> None:
    with pytest.raises(ToolDefinitionError, match="needs a 'name'"):
        Tool.from_schema({"description": "nameless", "parameters": {}})


def test_from_schema_refuses_an_invalid_schema_naming_the_tool() -> None:
    with pytest.raises(ToolDefinitionError, match=r"'broken'.*not a valid JSON Schema"):
        Tool.from_schema(
            {"name": "broken", "parameters": {"type": "object", "properties": {"a": {"type": 5}}}}
        )


def test_repr_names_the_tool_and_its_parameters() -> None:
    assert repr(tool(get_weather)) == "Tool(name='get_weather', parameters=['city', 'unit'])"


def test_annotation_that_does_not_resolve_is_refused_with_the_name() -> None:
    def local_types() -> None:
        class Local:
            pass

        @tool
        def use(value: Local) -> None: ...

    with pytest.raises(ToolDefinitionError, match=r"'use'.*'Local' is not defined"):
        local_types()


# --- running once, or again when the tool says it is safe -------------------------------------


def test_a_tool_runs_once_by_default_and_its_error_is_raised_as_itself() -> None:
    runs = []

    @tool
    def send(to: str) -> None:
        runs.append(to)
        raise ConnectionError("refused")

    assert send.retries == 0
    with pytest.raises(ConnectionError, match="refused"):
        send.invoke({"to": "a@b.c"})
    assert runs == ["a@b.c"]


def test_retries_run_a_failing_tool_again_up_to_the_limit() -> None:
    runs = []

    @tool(retries=2)
    def flaky(n: int) -> int:
        runs.append(n)
        if len(runs) < 3:
            raise TimeoutError("busy")
        return n

    assert flaky.invoke({"n": "7"}) == 7 and runs == [7, 7, 7]


def test_retries_are_bounded_and_the_last_error_is_raised_as_itself() -> None:
    runs = []

    @tool(retries=2)
    async def always_busy() -> int:
        runs.append(1)
        raise TimeoutError(f"busy {len(runs)}")

    with pytest.raises(TimeoutError, match="busy 3"):
        asyncio.run(always_busy.ainvoke({}))
    assert len(runs) == 3


def test_retries_keep_positional_only_arguments_for_every_run() -> None:
    seen = []

    @tool(retries=1)
    def power(base: int, /, exponent: int) -> int:
        seen.append(base)
        if len(seen) == 1:
            raise OSError("transient")
        return base**exponent

    arguments = power.validate({"base": 2, "exponent": 3})
    assert power.call_validated(arguments) == 8 and seen == [2, 2]
    assert arguments == {"base": 2, "exponent": 3}  # the caller's validated arguments are kept


@pytest.mark.parametrize("retries", [-1, 1.5, "2", True, None])
def test_retries_must_be_a_whole_number_zero_or_more(retries: object) -> None:
    with pytest.raises(ToolDefinitionError, match=rf"retries must be a whole number.*{retries!r}"):
        tool(retries=retries)(get_weather)  # type: ignore[arg-type]


def test_schema_tools_take_retries_too() -> None:
    lookup = Tool.from_schema({"name": "lookup", "parameters": {"type": "object"}}, retries=3)
    assert lookup.retries == 3


# --- arguments nested too deeply --------------------------------------------------------------


def test_arguments_nested_too_deeply_are_a_bad_call_not_a_recursion_error() -> None:
    deep = '{"data": ' + "[" * 10_000 + "]" * 10_000 + "}"

    @tool
    def store(data: list) -> str:
        return "stored"

    raw = Tool.from_schema({"name": "raw", "parameters": {"type": "object"}}, fn=lambda **_: 1)
    for target in (store, raw):
        with pytest.raises(ToolArgumentsError, match=r"nested too deeply|recursion limit"):
            target.validate(deep)
    nested: list = []
    for _ in range(900):  # parses, and is too deep for jsonschema's recursive check
        nested = [nested]
    items = Tool.from_schema(
        {
            "name": "items",
            "parameters": {
                "type": "object",
                "properties": {"x": {"$ref": "#/$defs/tree"}},
                "$defs": {"tree": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
            },
        }
    )
    with pytest.raises(ToolArgumentsError, match="nested too deeply"):
        items.validate({"x": nested})


def test_parameters_nested_too_deep_are_refused_as_a_tool_definition_error() -> None:
    parameters: dict = {"type": "object", "properties": {}}
    innermost = parameters
    for _ in range(120):
        child: dict = {"type": "object", "properties": {}}
        innermost["properties"]["x"] = child
        innermost = child
    definition = {"name": "deep", "parameters": parameters}
    with pytest.raises(ToolDefinitionError, match="nested more than"):
        Tool.from_schema(definition)
