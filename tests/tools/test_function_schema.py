"""Function signatures and docstrings -> JSON Schema, and the validation that matches it."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Annotated, Literal, Optional

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from byzer_agents import ToolArgumentsError, tool


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    """A postal address."""

    city: str = Field(description="City name")
    zip_code: str | None = None


@dataclasses.dataclass
class Point:
    """A point on the map.

    Attributes:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
    """

    lat: float
    lon: float


class Window(TypedDict):
    start: datetime.datetime
    end: datetime.datetime


def _props(fn):
    return tool(fn).parameters["properties"]


def test_scalars_map_to_json_types() -> None:
    def f(s: str, i: int, x: float, b: bool) -> None: ...

    assert {name: p["type"] for name, p in _props(f).items()} == {
        "s": "string",
        "i": "integer",
        "x": "number",
        "b": "boolean",
    }


def test_optional_and_defaults_are_not_required_and_keep_the_default() -> None:
    def f(a: int, b: Optional[str] = None, c: int = 3) -> None: ...  # noqa: UP045

    schema = tool(f).parameters
    assert schema["required"] == ["a"]
    assert schema["properties"]["c"]["default"] == 3
    assert schema["properties"]["b"]["default"] is None
    assert {"type": "null"} in schema["properties"]["b"]["anyOf"]


def test_literal_and_enum_become_enums() -> None:
    def f(mode: Literal["fast", "slow"], color: Color) -> None: ...

    tool_ = tool(f)
    assert tool_.parameters["properties"]["mode"]["enum"] == ["fast", "slow"]
    color_schema = tool_.parameters["$defs"]["Color"]
    assert color_schema["enum"] == ["red", "green"]
    assert tool_.validate({"mode": "fast", "color": "green"})["color"] is Color.GREEN
    with pytest.raises(ToolArgumentsError, match="color"):
        tool_.validate({"mode": "fast", "color": "blue"})


def test_containers_map_to_arrays_and_objects() -> None:
    def f(
        names: list[str], scores: dict[str, float], pair: tuple[int, str], tags: set[str]
    ) -> None: ...

    props = _props(f)
    assert props["names"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["tags"]["uniqueItems"] is True
    validated = tool(f).validate(
        {"names": ["a"], "scores": {"x": 1}, "pair": [1, "b"], "tags": ["t", "t"]}
    )
    assert validated["pair"] == (1, "b") and validated["tags"] == {"t"}


def test_nested_model_dataclass_and_typeddict_are_described_and_built() -> None:
    def f(address: Address, where: Point, window: Window) -> None: ...

    tool_ = tool(f)
    defs = tool_.parameters["$defs"]
    assert defs["Address"]["description"] == "A postal address."
    assert defs["Address"]["properties"]["city"]["description"] == "City name"
    assert defs["Point"]["description"] == "A point on the map."
    assert defs["Point"]["properties"]["lat"]["description"] == "Latitude in degrees."
    validated = tool_.validate(
        {
            "address": {"city": "Lyon"},
            "where": {"lat": "45.7", "lon": 4.8},
            "window": {"start": "2024-01-01T00:00:00", "end": "2024-01-02T00:00:00"},
        }
    )
    assert isinstance(validated["address"], Address)
    assert validated["where"] == Point(lat=45.7, lon=4.8)
    assert validated["window"]["end"] == datetime.datetime(2024, 1, 2)


def test_nested_errors_name_the_dotted_field() -> None:
    def f(address: Address, where: list[Point]) -> None: ...

    with pytest.raises(ToolArgumentsError) as caught:
        tool(f).validate({"address": {}, "where": [{"lat": 1, "lon": "east"}]})
    assert {e.field for e in caught.value.errors} == {"address.city", "where.0.lon"}


def test_time_types_and_uuid_have_string_formats() -> None:
    def f(
        at: datetime.datetime, day: datetime.date, clock: datetime.time, ident: uuid.UUID
    ) -> None: ...

    props = _props(f)
    assert {name: (p["type"], p["format"]) for name, p in props.items()} == {
        "at": ("string", "date-time"),
        "day": ("string", "date"),
        "clock": ("string", "time"),
        "ident": ("string", "uuid"),
    }
    validated = tool(f).validate(
        {
            "at": "2024-05-01T10:00:00Z",
            "day": "2024-05-01",
            "clock": "10:30",
            "ident": "12345678-1234-5678-1234-567812345678",
        }
    )
    assert validated["day"] == datetime.date(2024, 5, 1)
    assert isinstance(validated["ident"], uuid.UUID)


def test_google_numpy_rest_and_epydoc_docstrings_give_descriptions() -> None:
    def google(a: int) -> None:
        """Summary.

        Args:
            a: from google.
        """

    def numpy(a: int) -> None:
        """Summary.

        Parameters
        ----------
        a : int
            from numpy.
        """

    def rest(a: int) -> None:
        """Summary.

        :param a: from rest.
        """

    def epydoc(a: int) -> None:
        """Summary.

        @param a: from epydoc.
        """

    for fn, expected in [
        (google, "from google."),
        (numpy, "from numpy."),
        (rest, "from rest."),
        (epydoc, "from epydoc."),
    ]:
        made = tool(fn)
        assert made.description == "Summary."
        assert made.parameters["properties"]["a"]["description"] == expected


def test_description_precedence_field_then_annotated_then_docstring() -> None:
    def f(
        a: Annotated[int, Field(description="from field")],
        b: Annotated[int, "from annotated"],
        c: int,
    ) -> None:
        """Summary.

        Args:
            a: from doc a.
            b: from doc b.
            c: from doc c.
        """

    props = _props(f)
    assert [props[name]["description"] for name in "abc"] == [
        "from field",
        "from annotated",
        "from doc c.",
    ]


def test_field_constraints_are_kept_and_enforced() -> None:
    def f(n: Annotated[int, Field(ge=1, le=10)], code: Annotated[str, Field(pattern="^[A-Z]{3}$")]):
        return n

    props = _props(f)
    assert (props["n"]["minimum"], props["n"]["maximum"]) == (1, 10)
    assert props["code"]["pattern"] == "^[A-Z]{3}$"
    with pytest.raises(ToolArgumentsError) as caught:
        tool(f).validate({"n": 11, "code": "usd"})
    assert {e.field for e in caught.value.errors} == {"n", "code"}


def test_annotated_schema_dict_on_optional_keeps_none_allowed() -> None:
    def f(unit: Annotated[Optional[str], "unit", {"enum": ["m", "ft"]}] = None) -> None: ...  # noqa: UP045

    made = tool(f)
    branches = made.parameters["properties"]["unit"]["anyOf"]
    assert {"type": "string", "enum": ["m", "ft"]} in branches
    assert made.validate({"unit": None}) == {"unit": None}
    assert made.validate({"unit": "ft"}) == {"unit": "ft"}
    with pytest.raises(ToolArgumentsError, match="'yd' is not one of"):
        made.validate({"unit": "yd"})


def test_annotated_schema_dict_with_numeric_bounds_is_enforced() -> None:
    def f(count: Annotated[int, {"minimum": 0, "maximum": 5}]) -> None: ...

    with pytest.raises(ToolArgumentsError, match="6 is greater than the maximum of 5"):
        tool(f).validate({"count": 6})


def test_invalid_annotated_schema_dict_is_refused_at_decoration() -> None:
    from byzer_agents import ToolDefinitionError

    with pytest.raises(ToolDefinitionError, match="not valid JSON Schema"):

        @tool
        def f(count: Annotated[int, {"minimum": "zero"}]) -> None: ...


def test_titles_are_left_out_of_properties() -> None:
    def f(a: int, address: Address) -> None: ...

    made = tool(f)
    assert "title" not in made.parameters
    assert "title" not in made.parameters["properties"]["a"]
    assert "title" not in made.parameters["$defs"]["Address"]["properties"]["city"]
