"""Tools the MCP tests serve (``byzer-agents mcp serve tests.mcp.demo_tools:tools``)."""

from __future__ import annotations

from typing import Literal

from byzer_agents import tool

WEATHER = {"paris": 18.5, "tokyo": 24.0}


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@tool
def get_weather(city: str) -> dict[str, object]:
    """Today's temperature in a city, in degrees Celsius."""
    try:
        return {"city": city, "celsius": WEATHER[city.lower()]}
    except KeyError:
        raise LookupError(f"no weather for {city!r}; known: {sorted(WEATHER)}") from None


@tool
def convert_temperature(celsius: float, to: Literal["fahrenheit", "kelvin"]) -> float:
    """Convert degrees Celsius to another unit."""
    return celsius * 9 / 5 + 32 if to == "fahrenheit" else celsius + 273.15


tools = [divide, get_weather, convert_temperature]
