"""Property tests: any value built from a tool's schema validates, and an invalid value in any one
field is refused with that field named."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import BaseModel, Field

from byzer_agents import Tool, ToolArgumentsError, tool


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Attendee(BaseModel):
    name: str
    email: str | None = None
    optional_seat: int = Field(default=0, ge=0)


@dataclasses.dataclass
class Room:
    building: str
    floor: int


def schedule_meeting(
    title: Annotated[str, "Title", {"minLength": 1}],
    start: datetime.datetime,
    minutes: Annotated[int, Field(ge=5, le=480)],
    attendees: list[Attendee],
    room: Room | None = None,
    priority: Priority = Priority.LOW,
    kind: Literal["call", "in-person"] = "call",
    tags: set[str] | None = None,
) -> None:
    """Schedule a meeting."""


def convert(
    amount: float,
    currency: Annotated[str, {"enum": ["EUR", "USD", "JPY"]}],
    on: datetime.date,
    rates: dict[str, float],
    request_id: uuid.UUID,
    at: datetime.time | None = None,
    confirm: bool = False,
) -> None:
    """Convert money."""


TOOLS = [tool(schedule_meeting), tool(convert), tool(schedule_meeting, strict=True)]
# hypothesis-jsonschema generates any string for formats it does not know; uuid is one of them.
FORMATS = {"uuid": st.uuids().map(str)}
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("made", TOOLS, ids=lambda t: f"{t.name}-strict{t.strict}")
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_value_built_from_the_schema_validates(made: Tool, data: st.DataObject) -> None:
    arguments = data.draw(from_schema(made.parameters, custom_formats=FORMATS))
    made.validate(arguments)


def _wrong_value(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values no JSON-Schema reading of ``prop`` accepts, and pydantic cannot coerce."""
    kinds = {prop.get("type")} | {branch.get("type") for branch in prop.get("anyOf", [])}
    if kinds & {"object", "array"} or "$ref" in prop or "allOf" in prop:
        return st.just(True) if "boolean" not in kinds else st.just(12.5)
    return st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), min_size=1)


@pytest.mark.parametrize("made", TOOLS, ids=lambda t: f"{t.name}-strict{t.strict}")
@PROPERTY_SETTINGS
@given(data=st.data())
def test_an_invalid_field_is_refused_with_the_field_named(made: Tool, data: st.DataObject) -> None:
    arguments = data.draw(from_schema(made.parameters, custom_formats=FORMATS))
    properties = made.parameters["properties"]
    field = data.draw(st.sampled_from(sorted(properties)))
    arguments[field] = data.draw(_wrong_value(properties[field]))
    with pytest.raises(ToolArgumentsError) as caught:
        made.validate(arguments)
    assert field in {error.field.split(".")[0] for error in caught.value.errors}
