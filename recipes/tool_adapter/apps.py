"""Twelve small synthetic apps whose tools really run, and the requests users make of them.

Each app is a few ``@tool`` functions over fixed tables (no network, no clock, no state) and one
request maker per tool: a function of a seeded ``random.Random`` returning a user's sentence and
the one call that answers it, with the arguments exactly as the tool's schema wants them. Phrasings
vary by template and slot; numbers are sometimes written in words, enum members paraphrased where
the mapping is unambiguous, optional arguments given only when the sentence says them (a model is
trained to leave out what the user did not ask for). ``build_case`` composes these into the five
BFCL categories. What is fragile: a maker's sentence and its expected call must say the same
thing; ``tests/recipes`` checks that every expected call validates and runs, not that it is what a
reader would infer, so read a maker's templates when you change its tool.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics as stats
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from byzer_agents.finetune.bfcl_data import NO_CALL_ANSWER
from byzer_agents.tools import Tool, tool

__all__ = [
    "APPS",
    "CATEGORIES",
    "NO_CALL_ANSWER",
    "App",
    "Call",
    "Category",
    "Request",
    "SyntheticCase",
    "build_case",
    "number_words",
]

Category = Literal["simple", "multiple", "parallel", "parallel_multiple", "irrelevance"]
CATEGORIES: tuple[Category, ...] = (
    "simple",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
)
Call = tuple[str, dict[str, Any]]
"""One expected call: the tool's API-safe name and its arguments as JSON values."""


@dataclass(frozen=True)
class Request:
    """A user's sentence and the one call that answers it."""

    text: str
    call: Call


RequestMaker = Callable[[random.Random], Request]


@dataclass(frozen=True, kw_only=True)
class App:
    """A synthetic app: its tools, a request maker per tool, and questions none of them answers."""

    name: str
    tools: tuple[Tool[..., Any], ...]
    makers: Mapping[str, RequestMaker]
    """Tool name -> a maker of requests that call it."""
    near_misses: tuple[str, ...]
    """Questions in the app's domain that none of its tools answers."""
    system_prompt: str

    def tool(self, name: str) -> Tool[..., Any]:
        return next(tool for tool in self.tools if tool.name == name)


@dataclass(frozen=True, kw_only=True)
class SyntheticCase:
    """One user request, the tools offered with it, and the calls that answer it."""

    id: str
    app: str
    category: Category
    messages: list[dict[str, str]]
    """An optional system message, then the user's message."""
    tools: list[Tool[..., Any]] = field(repr=False)
    expected: list[Call]
    """The calls that answer the request, in the order asked; empty for irrelevance."""

    @property
    def user_message(self) -> str:
        return self.messages[-1]["content"]


# --- phrasing ---------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ONES = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS = _words("_ _ twenty thirty forty fifty sixty seventy eighty ninety")


def number_words(number: int) -> str:
    """``number`` (0 to 999,999) in English words: 25 -> "twenty-five"."""
    if not 0 <= number < 1_000_000:
        raise ValueError(f"number_words spells 0 to 999,999, got {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")


def _say(rng: random.Random, number: float, words: float = 0.35) -> str:
    """A number as digits, or (for whole numbers, with probability ``words``) in words."""
    if float(number).is_integer() and 0 <= number < 1000 and rng.random() < words:
        return number_words(int(number))
    return _digits(number)


def _digits(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


_MONTHS = _words(
    "January February March April May June July August September October November December"
)


def _random_date(rng: random.Random) -> str:
    day = Date(2025, 1, 1) + timedelta(days=rng.randrange(540))
    return day.isoformat()


def _say_date(rng: random.Random, iso: str) -> str:
    day = Date.fromisoformat(iso)
    month = _MONTHS[day.month - 1]
    suffix = "th" if 11 <= day.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    return rng.choice(
        [
            iso,
            f"{month} {day.day}, {day.year}",
            f"{day.day} {month} {day.year}",
            f"{month} {day.day}{suffix}, {day.year}",
        ]
    )


def _say_time(rng: random.Random, hhmm: str) -> str:
    hour, minute = map(int, hhmm.split(":"))
    twelve = hour % 12 or 12
    half = "am" if hour < 12 else "pm"
    spoken = f"{twelve}{'' if minute == 0 else f':{minute:02d}'}"
    choices = [hhmm, f"{spoken} {half}", f"{spoken}{half}"]
    if minute == 0:
        part = "in the morning" if hour < 12 else "in the afternoon" if hour < 18 else "at night"
        if hour >= 18:
            part = "in the evening"
        choices.append(f"{number_words(twelve)} {part}")
    return rng.choice(choices)


def _random_time(rng: random.Random, first: int = 8, last: int = 21) -> str:
    return f"{rng.randint(first, last):02d}:{rng.choice([0, 0, 15, 30, 45]):02d}"


def _money(rng: random.Random, amount: float, unit: str = "dollars") -> str:
    """``amount`` of ``unit`` as "$25", "25 dollars" or "twenty-five dollars"."""
    if unit == "dollars" and rng.random() < 0.4:
        return f"${_digits(amount)}"
    return f"{_say(rng, amount)} {unit}"


def _pick(rng: random.Random, table: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """A value of an enum and one of its phrasings."""
    value = rng.choice(sorted(table))
    return value, rng.choice(table[value])


def _stable_int(*parts: object) -> int:
    """A number from the text of ``parts``, the same in every process (``hash`` is salted)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _check_date(value: str, name: str = "date") -> Date:
    try:
        return Date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be a date written YYYY-MM-DD, got {value!r}") from None


def _check_time(value: str, name: str) -> datetime:
    try:
        return datetime.strptime(value, "%H:%M")
    except ValueError:
        raise ValueError(f"{name} must be a time written HH:MM (24-hour), got {value!r}") from None


# --- restaurants ------------------------------------------------------------------------------

Cuisine = Literal["italian", "japanese", "mexican", "indian", "french", "thai"]
_RESTAURANTS = (
    ("Trattoria Roma", "Boston", "italian", 2),
    ("Sakura House", "Boston", "japanese", 3),
    ("Casa Azul", "Austin", "mexican", 1),
    ("Le Petit Zinc", "Chicago", "french", 4),
    ("Spice Route", "Seattle", "indian", 2),
    ("Baan Thai", "Seattle", "thai", 1),
    ("Osteria Blu", "Chicago", "italian", 3),
    ("Taqueria Sol", "Boston", "mexican", 1),
    ("Maison Claire", "Austin", "french", 3),
    ("Umami Bar", "Seattle", "japanese", 2),
    ("Curry Leaf", "Chicago", "indian", 1),
    ("Lotus Garden", "Austin", "thai", 2),
)
_CITIES = ("Boston", "Austin", "Chicago", "Seattle", "Denver", "Portland")


@tool
def search_restaurants(
    city: Annotated[str, "The city to search in, e.g. Boston"],
    cuisine: Annotated[Cuisine, "The kind of food"],
    max_price_level: Annotated[
        int, "The most expensive price level to include, 1 (cheap) to 4", {"minimum": 1}
    ] = 4,
) -> list[dict[str, Any]]:
    """Find restaurants in a city serving a cuisine, cheapest first."""
    found = [
        {"name": name, "city": town, "cuisine": kind, "price_level": level}
        for name, town, kind, level in _RESTAURANTS
        if town.lower() == city.lower() and kind == cuisine and level <= max_price_level
    ]
    return sorted(found, key=lambda row: (row["price_level"], row["name"]))


@tool
def book_table(
    restaurant: Annotated[str, "The restaurant's name"],
    date: Annotated[str, "The day, as YYYY-MM-DD"],
    time: Annotated[str, "The time, as HH:MM (24-hour)"],
    party_size: Annotated[int, "How many people", {"minimum": 1}],
    special_request: Annotated[str, "A note for the restaurant, e.g. window seat"] = "",
) -> dict[str, Any]:
    """Reserve a table at a restaurant and return the confirmation."""
    _check_date(date)
    _check_time(time, "time")
    code = f"R{_stable_int(restaurant, date, time, party_size) % 1_000_000:06d}"
    booking = {"confirmation": code, "restaurant": restaurant, "date": date, "time": time}
    return {**booking, "party_size": party_size, "special_request": special_request or None}


_CUISINE_WORDS = {
    "italian": ("Italian", "Italian", "pizza"),
    "japanese": ("Japanese", "Japanese", "sushi"),
    "mexican": ("Mexican", "Mexican", "taco"),
    "indian": ("Indian",),
    "french": ("French",),
    "thai": ("Thai",),
}


def _ask_search_restaurants(rng: random.Random) -> Request:
    city = rng.choice(_CITIES)
    cuisine, said = _pick(rng, _CUISINE_WORDS)
    arguments: dict[str, Any] = {"city": city, "cuisine": cuisine}
    price = ""
    if rng.random() < 0.4:
        level = rng.randint(1, 3)
        arguments["max_price_level"] = level
        price = rng.choice(
            [
                f", price level {_say(rng, level)} or lower",
                f" with a price level of at most {_say(rng, level)}",
            ]
        )
    text = rng.choice(
        [
            f"Find {said} restaurants in {city}{price}.",
            f"any good {said} places in {city}{price}?",
            f"I'm in {city} tonight. Which {said} restaurants are there{price}?",
            f"Please look up {said} restaurants{price} in {city}.",
        ]
    )
    return Request(_capitalize(text), ("search_restaurants", arguments))


_REQUESTS = ("window seat", "high chair", "quiet table", "birthday cake", "wheelchair access")


def _ask_book_table(rng: random.Random) -> Request:
    restaurant = rng.choice(_RESTAURANTS)[0]
    day, time = _random_date(rng), _random_time(rng, 11, 21)
    size = rng.randint(1, 10)
    arguments: dict[str, Any] = {
        "restaurant": restaurant,
        "date": day,
        "time": time,
        "party_size": size,
    }
    note = ""
    if rng.random() < 0.3:
        arguments["special_request"] = rng.choice(_REQUESTS)
        note = f" Please note: {arguments['special_request']}."
    people = _say(rng, size)
    on, at = _say_date(rng, day), _say_time(rng, time)
    text = rng.choice(
        [
            f"Book a table for {people} at {restaurant} on {on} at {at}.{note}",
            f"Can you reserve {restaurant} for {on}, {at}, party of {people}?{note}",
            f"We are {people} people. Get us a table at {restaurant} on {on} at {at}.{note}",
            f"I'd like a reservation at {restaurant}: {people} guests, {on} at {at}.{note}",
        ]
    )
    return Request(text, ("book_table", arguments))


# --- units ------------------------------------------------------------------------------------

LengthUnit = Literal["millimeter", "centimeter", "meter", "kilometer", "inch", "foot", "mile"]
_METERS = {
    "millimeter": 0.001,
    "centimeter": 0.01,
    "meter": 1.0,
    "kilometer": 1000.0,
    "inch": 0.0254,
    "foot": 0.3048,
    "mile": 1609.344,
}


class TemperatureScale(str, Enum):
    """A temperature scale."""

    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"
    KELVIN = "kelvin"


WeightUnit = Literal["gram", "kilogram", "ounce", "pound"]
_GRAMS = {"gram": 1.0, "kilogram": 1000.0, "ounce": 28.349523125, "pound": 453.59237}


@tool
def convert_length(
    value: Annotated[float, "The length to convert"],
    from_unit: Annotated[LengthUnit, "The unit of the value"],
    to_unit: Annotated[LengthUnit, "The unit to convert to"],
    decimals: Annotated[int, "Decimal places to round to", {"minimum": 0}] = 2,
) -> float:
    """Convert a length between metric and imperial units."""
    return round(value * _METERS[from_unit] / _METERS[to_unit], decimals)


@tool
def convert_temperature(
    value: Annotated[float, "The temperature to convert"],
    from_scale: Annotated[TemperatureScale, "The scale of the value"],
    to_scale: Annotated[TemperatureScale, "The scale to convert to"],
) -> float:
    """Convert a temperature between Celsius, Fahrenheit and Kelvin, to two decimals."""
    celsius = {
        TemperatureScale.CELSIUS: value,
        TemperatureScale.FAHRENHEIT: (value - 32) * 5 / 9,
        TemperatureScale.KELVIN: value - 273.15,
    }[from_scale]
    result = {
        TemperatureScale.CELSIUS: celsius,
        TemperatureScale.FAHRENHEIT: celsius * 9 / 5 + 32,
        TemperatureScale.KELVIN: celsius + 273.15,
    }[to_scale]
    return round(result, 2)


@tool
def convert_weight(
    value: Annotated[float, "The weight to convert"],
    from_unit: Annotated[WeightUnit, "The unit of the value"],
    to_unit: Annotated[WeightUnit, "The unit to convert to"],
) -> float:
    """Convert a weight (mass) between grams, kilograms, ounces and pounds, to three decimals."""
    return round(value * _GRAMS[from_unit] / _GRAMS[to_unit], 3)


_LENGTH_WORDS = {
    "millimeter": ("millimeters", "mm"),
    "centimeter": ("centimeters", "cm"),
    "meter": ("meters", "metres"),
    "kilometer": ("kilometers", "km"),
    "inch": ("inches",),
    "foot": ("feet",),
    "mile": ("miles",),
}
_SCALE_WORDS = {
    "celsius": ("Celsius", "degrees Celsius", "°C"),
    "fahrenheit": ("Fahrenheit", "degrees Fahrenheit", "°F"),
    "kelvin": ("Kelvin", "kelvins"),
}
_WEIGHT_WORDS = {
    "gram": ("grams", "g"),
    "kilogram": ("kilograms", "kg"),
    "ounce": ("ounces", "oz"),
    "pound": ("pounds", "lbs"),
}


def _conversion(
    rng: random.Random, table: Mapping[str, Sequence[str]], value_for: Callable[[str], float]
) -> tuple[str, str, float, str]:
    """A conversion request: source and target units, the value (plausible in the source unit)
    and the sentence."""
    source, target = rng.sample(sorted(table), 2)
    value = value_for(source)
    said = _say(rng, value)
    from_word, to_word = rng.choice(table[source]), rng.choice(table[target])
    text = rng.choice(
        [
            f"Convert {said} {from_word} to {to_word}.",
            f"How much is {said} {from_word} in {to_word}?",
            f"what is {said} {from_word} expressed in {to_word}?",
            f"I need {said} {from_word} converted into {to_word}.",
        ]
    )
    return source, target, value, _capitalize(text)


def _ask_convert_length(rng: random.Random) -> Request:
    def value_for(_: str) -> float:
        return float(rng.choice([rng.randint(1, 500), round(rng.uniform(0.5, 99), 1)]))

    source, target, value, text = _conversion(rng, _LENGTH_WORDS, value_for)
    arguments: dict[str, Any] = {"value": value, "from_unit": source, "to_unit": target}
    if rng.random() < 0.3:
        arguments["decimals"] = rng.choice([0, 1, 3, 4])
        text = text[:-1] + f", rounded to {_say(rng, arguments['decimals'])} decimal places."
    return Request(text, ("convert_length", arguments))


def _ask_convert_temperature(rng: random.Random) -> Request:
    def value_for(scale: str) -> float:
        return float(rng.randint(250, 320) if scale == "kelvin" else rng.randint(-20, 110))

    source, target, value, text = _conversion(rng, _SCALE_WORDS, value_for)
    arguments = {"value": value, "from_scale": source, "to_scale": target}
    return Request(text, ("convert_temperature", arguments))


def _ask_convert_weight(rng: random.Random) -> Request:
    def value_for(_: str) -> float:
        return float(rng.choice([rng.randint(1, 250), round(rng.uniform(0.2, 20), 2)]))

    source, target, value, text = _conversion(rng, _WEIGHT_WORDS, value_for)
    arguments = {"value": value, "from_unit": source, "to_unit": target}
    return Request(text, ("convert_weight", arguments))


# --- calendar ---------------------------------------------------------------------------------

_EVENT_KINDS = ("Team sync", "Dentist", "Lunch with Sam", "Budget review", "Yoga", "1:1 with Priya")


def _agenda(date: str) -> list[dict[str, str]]:
    """The fixed agenda of a day: two or three events, chosen from the date's text."""
    seed = _stable_int("agenda", date)
    starts = ("09:00", "11:00", "14:00", "16:00")
    count = 2 + seed % 2
    return [
        {
            "title": _EVENT_KINDS[(seed >> (4 * i)) % len(_EVENT_KINDS)],
            "start": starts[i + (seed >> 20) % (5 - count)],
            "minutes": "60",
        }
        for i in range(count)
    ]


@tool
def create_event(
    title: Annotated[str, "The event's title"],
    date: Annotated[str, "The day, as YYYY-MM-DD"],
    start_time: Annotated[str, "When it starts, as HH:MM (24-hour)"],
    duration_minutes: Annotated[int, "How long it lasts, in minutes", {"minimum": 1}] = 60,
    attendees: Annotated[list[str] | None, "Names of the people invited"] = None,
    location: Annotated[str | None, "Where it takes place"] = None,
) -> dict[str, Any]:
    """Add an event to the user's calendar and return it with its end time."""
    _check_date(date)
    end = _check_time(start_time, "start_time") + timedelta(minutes=duration_minutes)
    return {
        "event_id": f"E{_stable_int(title, date, start_time) % 100_000:05d}",
        "title": title,
        "date": date,
        "start_time": start_time,
        "end_time": end.strftime("%H:%M"),
        "attendees": attendees or [],
        "location": location,
    }


@tool
def list_events(date: Annotated[str, "The day, as YYYY-MM-DD"]) -> list[dict[str, str]]:
    """List the events on the user's calendar for one day."""
    _check_date(date)
    return _agenda(date)


@tool
def find_free_slot(
    date: Annotated[str, "The day, as YYYY-MM-DD"],
    duration_minutes: Annotated[int, "How long the slot must be, in minutes", {"minimum": 1}],
    earliest: Annotated[str, "Earliest start, as HH:MM"] = "09:00",
    latest: Annotated[str, "Latest end, as HH:MM"] = "17:00",
) -> dict[str, str] | None:
    """Find the first gap in the user's calendar that fits a meeting of the given length."""
    _check_date(date)
    cursor, end = _check_time(earliest, "earliest"), _check_time(latest, "latest")
    busy = sorted(
        (_check_time(e["start"], "start"), timedelta(minutes=int(e["minutes"])))
        for e in _agenda(date)
    )
    need = timedelta(minutes=duration_minutes)
    for start, length in busy:
        if start - cursor >= need:
            break
        cursor = max(cursor, start + length)
    if end - cursor < need:
        return None
    return {
        "date": date,
        "start": cursor.strftime("%H:%M"),
        "end": (cursor + need).strftime("%H:%M"),
    }


_EVENT_TITLES = (
    "Team sync",
    "Dentist appointment",
    "Lunch with Sam",
    "Budget review",
    "Yoga class",
    "Call with the bank",
    "Sprint planning",
)
_PEOPLE = ("Alice", "Bob", "Priya", "Tomás", "Mei", "Jonas", "Fatima", "Leo")
_PLACES = ("Room 4B", "the main office", "Café Lumen", "Zoom", "the library")


def _say_minutes(rng: random.Random, minutes: int) -> str:
    if minutes == 60 and rng.random() < 0.5:
        return "an hour"
    if minutes % 60 == 0 and rng.random() < 0.5:
        return f"{_say(rng, minutes // 60)} hours"
    return f"{_say(rng, minutes)} minutes"


def _ask_create_event(rng: random.Random) -> Request:
    title = rng.choice(_EVENT_TITLES)
    day, time = _random_date(rng), _random_time(rng)
    arguments: dict[str, Any] = {"title": title, "date": day, "start_time": time}
    extras = []
    if rng.random() < 0.5:
        arguments["duration_minutes"] = rng.choice([15, 30, 45, 60, 90, 120])
        extras.append(f"for {_say_minutes(rng, arguments['duration_minutes'])}")
    if rng.random() < 0.35:
        arguments["attendees"] = rng.sample(_PEOPLE, rng.randint(1, 3))
        names = arguments["attendees"]
        extras.append("with " + (" and ".join(names) if len(names) < 3 else ", ".join(names)))
    if rng.random() < 0.3:
        arguments["location"] = rng.choice(_PLACES)
        extras.append(f"at {arguments['location']}")
    rest = (" " + " ".join(extras)) if extras else ""
    on, at = _say_date(rng, day), _say_time(rng, time)
    text = rng.choice(
        [
            f'Schedule "{title}" on {on} at {at}{rest}.',
            f'Add an event called "{title}" to my calendar, {on} starting {at}{rest}.',
            f'Please put "{title}" in my calendar on {on} at {at}{rest}.',
        ]
    )
    return Request(text, ("create_event", arguments))


def _ask_list_events(rng: random.Random) -> Request:
    day = _random_date(rng)
    on = _say_date(rng, day)
    text = rng.choice(
        [
            f"What's on my calendar on {on}?",
            f"Show me my events for {on}.",
            f"do I have any meetings on {on}?",
            f"List everything scheduled for {on}.",
        ]
    )
    return Request(_capitalize(text), ("list_events", {"date": day}))


def _ask_find_free_slot(rng: random.Random) -> Request:
    day = _random_date(rng)
    minutes = rng.choice([30, 45, 60, 90])
    arguments: dict[str, Any] = {"date": day, "duration_minutes": minutes}
    window = ""
    if rng.random() < 0.4:
        first, last = rng.randint(8, 12), rng.randint(15, 19)
        arguments["earliest"], arguments["latest"] = f"{first:02d}:00", f"{last:02d}:00"
        start, end = _say_time(rng, arguments["earliest"]), _say_time(rng, arguments["latest"])
        window = f" between {start} and {end}"
    on, length = _say_date(rng, day), _say_minutes(rng, minutes)
    text = rng.choice(
        [
            f"Find me a free slot of {length} on {on}{window}.",
            f"When am I free for {length} on {on}{window}?",
            f"I need {length} for a meeting on {on}{window}; when is there a gap?",
        ]
    )
    return Request(text, ("find_free_slot", arguments))


# --- expenses ---------------------------------------------------------------------------------

Currency = Literal["USD", "EUR", "GBP", "JPY", "CAD", "CHF"]
_PER_USD = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.0, "CAD": 1.36, "CHF": 0.88}


class ExpenseCategory(str, Enum):
    """What an expense was for."""

    FOOD = "food"
    TRANSPORT = "transport"
    LODGING = "lodging"
    ENTERTAINMENT = "entertainment"
    OFFICE = "office"


@tool
def convert_currency(
    amount: Annotated[float, "The amount of money"],
    from_currency: Annotated[Currency, "The currency of the amount, ISO code"],
    to_currency: Annotated[Currency, "The currency to convert to, ISO code"],
) -> float:
    """Convert money between currencies at today's fixed reference rates, to two decimals."""
    return round(amount / _PER_USD[from_currency] * _PER_USD[to_currency], 2)


@tool
def log_expense(
    amount: Annotated[float, "How much was spent", {"exclusiveMinimum": 0}],
    category: Annotated[ExpenseCategory, "What the money was spent on"],
    currency: Annotated[Currency, "The currency, ISO code"] = "USD",
    note: Annotated[str, "A short note"] = "",
) -> dict[str, Any]:
    """Record an expense and return the entry with its value in US dollars."""
    return {
        "entry_id": f"X{_stable_int(amount, category.value, currency, note) % 100_000:05d}",
        "amount": amount,
        "currency": currency,
        "category": category.value,
        "usd": round(amount / _PER_USD[currency], 2),
        "note": note,
    }


@tool
def split_bill(
    total: Annotated[float, "The bill's total", {"minimum": 0}],
    people: Annotated[int, "How many people share it", {"minimum": 1}],
    tip_percent: Annotated[float, "Tip to add, in percent of the total"] = 0.0,
) -> dict[str, float]:
    """Split a bill evenly, tip included, and return each person's share."""
    with_tip = total * (1 + tip_percent / 100)
    return {"total_with_tip": round(with_tip, 2), "per_person": round(with_tip / people, 2)}


_CURRENCY_WORDS = {
    "USD": ("US dollars", "USD"),
    "EUR": ("euros", "EUR"),
    "GBP": ("British pounds", "GBP"),
    "JPY": ("Japanese yen", "yen"),
    "CAD": ("Canadian dollars", "CAD"),
    "CHF": ("Swiss francs", "CHF"),
}
_SPENDING = {
    "food": ("lunch", "groceries", "a team dinner", "coffee"),
    "transport": ("a taxi", "train tickets", "a bus pass", "parking"),
    "lodging": ("the hotel", "two nights at a B&B"),
    "entertainment": ("concert tickets", "the cinema", "a museum visit"),
    "office": ("printer paper", "a new keyboard", "office supplies"),
}


def _ask_convert_currency(rng: random.Random) -> Request:
    source, target = rng.sample(sorted(_CURRENCY_WORDS), 2)
    amount = float(rng.choice([rng.randint(5, 900), rng.randint(1, 99) * 100]))
    said = f"{_say(rng, amount)} {rng.choice(_CURRENCY_WORDS[source])}"
    into = rng.choice(_CURRENCY_WORDS[target])
    text = rng.choice(
        [
            f"How much is {said} in {into}?",
            f"Convert {said} to {into}.",
            f"what do I get in {into} for {said}?",
        ]
    )
    arguments = {"amount": amount, "from_currency": source, "to_currency": target}
    return Request(_capitalize(text), ("convert_currency", arguments))


def _ask_log_expense(rng: random.Random) -> Request:
    category, thing = _pick(rng, _SPENDING)
    amount = float(rng.choice([rng.randint(3, 400), round(rng.uniform(2, 80), 2)]))
    arguments: dict[str, Any] = {"amount": amount, "category": category}
    if rng.random() < 0.5:
        currency = rng.choice(sorted(_CURRENCY_WORDS))
        arguments["currency"] = currency
        spent = f"{_say(rng, amount)} {rng.choice(_CURRENCY_WORDS[currency])}"
    else:
        spent = _digits(amount)
    note = ""
    if rng.random() < 0.3:
        arguments["note"] = rng.choice(("client visit", "conference trip", "reimbursable"))
        note = f' Add the note "{arguments["note"]}".'
    text = rng.choice(
        [
            f"Log an expense: {spent} for {thing}, category {category}.{note}",
            f"I spent {spent} on {thing}. Record it under {category}.{note}",
            f"Add {spent} to my {category} expenses ({thing}).{note}",
        ]
    )
    return Request(text, ("log_expense", arguments))


def _ask_split_bill(rng: random.Random) -> Request:
    total = float(rng.choice([rng.randint(20, 400), round(rng.uniform(20, 300), 2)]))
    people = rng.randint(2, 9)
    arguments: dict[str, Any] = {"total": total, "people": people}
    tip = ""
    if rng.random() < 0.5:
        arguments["tip_percent"] = float(rng.choice([10, 12, 15, 18, 20]))
        tip = f" with a tip of {_say(rng, arguments['tip_percent'])} percent"
    bill, who = _money(rng, total), _say(rng, people)
    text = rng.choice(
        [
            f"Split a bill of {bill} between {who} people{tip}.",
            f"We're {who} friends and dinner came to {bill}. How much each{tip}?",
            f"Divide {bill}{tip} evenly among {who} of us.",
        ]
    )
    return Request(text, ("split_bill", arguments))


# --- smart home -------------------------------------------------------------------------------

Room = Literal["living_room", "bedroom", "kitchen", "office", "bathroom"]
_ROOM_WORDS = {
    "living_room": ("living room", "lounge"),
    "bedroom": ("bedroom",),
    "kitchen": ("kitchen",),
    "office": ("office", "study"),
    "bathroom": ("bathroom",),
}


@tool
def set_thermostat(
    room: Annotated[Room, "The room"],
    temperature: Annotated[float, "Target temperature in degrees Celsius"],
    mode: Annotated[Literal["heat", "cool", "auto"], "Heat, cool, or pick automatically"] = "auto",
) -> dict[str, Any]:
    """Set a room's thermostat; returns the new setting."""
    if not 10 <= temperature <= 30:
        raise ValueError(
            f"temperature must be between 10 and 30 degrees Celsius, got {temperature}"
        )
    return {"room": room, "target_celsius": temperature, "mode": mode}


@tool
def set_lights(
    room: Annotated[Room, "The room"],
    on: Annotated[bool, "True to switch the lights on, false to switch them off"],
    brightness: Annotated[int, "Brightness in percent", {"minimum": 1, "maximum": 100}] = 100,
) -> dict[str, Any]:
    """Switch a room's lights on (at a brightness) or off."""
    return {"room": room, "on": on, "brightness": brightness if on else 0}


@tool
def lock_door(
    door: Annotated[Literal["front", "back", "garage"], "Which door"],
    locked: Annotated[bool, "True to lock, false to unlock"],
) -> dict[str, Any]:
    """Lock or unlock one of the house's doors."""
    return {"door": door, "locked": locked}


def _ask_set_thermostat(rng: random.Random) -> Request:
    room, said = _pick(rng, _ROOM_WORDS)
    degrees = float(rng.randint(16, 26))
    arguments: dict[str, Any] = {"room": room, "temperature": degrees}
    heat = _say(rng, degrees)
    roll = rng.random()
    if roll < 0.25:
        arguments["mode"] = "heat"
        text = rng.choice(
            [f"Heat the {said} to {heat} degrees.", f"Warm up the {said} to {heat}°C."]
        )
    elif roll < 0.5:
        arguments["mode"] = "cool"
        text = rng.choice(
            [
                f"Cool the {said} down to {heat} degrees.",
                f"Turn on cooling in the {said}, {heat}°C.",
            ]
        )
    else:
        text = rng.choice(
            [
                f"Set the {said} thermostat to {heat} degrees.",
                f"make it {heat} degrees in the {said}.",
                f"Can you change the {said} temperature to {heat}°C?",
            ]
        )
    return Request(_capitalize(text), ("set_thermostat", arguments))


def _ask_set_lights(rng: random.Random) -> Request:
    room, said = _pick(rng, _ROOM_WORDS)
    roll = rng.random()
    if roll < 0.3:
        arguments: dict[str, Any] = {"room": room, "on": False}
        text = rng.choice([f"Turn off the {said} lights.", f"switch the lights off in the {said}."])
    elif roll < 0.6:
        arguments = {"room": room, "on": True}
        text = rng.choice(
            [f"Turn on the lights in the {said}.", f"Lights on in the {said}, please."]
        )
    else:
        level = rng.choice([10, 20, 25, 30, 40, 50, 60, 75, 80])
        arguments = {"room": room, "on": True, "brightness": level}
        percent = _say(rng, level)
        text = rng.choice(
            [
                f"Dim the {said} lights to {percent} percent.",
                f"Set the {said} lights on at {percent}% brightness.",
            ]
        )
    return Request(_capitalize(text), ("set_lights", arguments))


def _ask_lock_door(rng: random.Random) -> Request:
    door = rng.choice(["front", "back", "garage"])
    locked = rng.random() < 0.6
    verb = "Lock" if locked else "Unlock"
    text = rng.choice(
        [
            f"{verb} the {door} door.",
            f"Please {verb.lower()} the {door} door for me.",
            f"can you {verb.lower()} the {door} door?",
        ]
    )
    return Request(_capitalize(text), ("lock_door", {"door": door, "locked": locked}))


# --- shipping ---------------------------------------------------------------------------------


class Parcel(BaseModel):
    """A parcel's weight and outer size."""

    weight_kg: float = Field(description="Weight in kilograms", gt=0)
    length_cm: float = Field(description="Length in centimeters", gt=0)
    width_cm: float = Field(description="Width in centimeters", gt=0)
    height_cm: float = Field(description="Height in centimeters", gt=0)


class Address(BaseModel):
    """A street address."""

    street: str = Field(description="Street and number")
    city: str
    postal_code: str


_ZONES = {"United States": 1, "Canada": 1, "Mexico": 2, "Germany": 3, "France": 3, "Japan": 4}


@tool
def shipping_quote(
    parcel: Annotated[Parcel, "The parcel to ship"],
    destination_country: Annotated[str, "The country it goes to, e.g. Germany"],
    speed: Annotated[Literal["economy", "standard", "express"], "Delivery speed"] = "standard",
) -> dict[str, Any]:
    """Quote the price and delivery time of shipping a parcel abroad."""
    zone = _ZONES.get(destination_country, 5)
    volume_kg = parcel.length_cm * parcel.width_cm * parcel.height_cm / 5000
    billable = max(parcel.weight_kg, volume_kg)
    factor = {"economy": 0.7, "standard": 1.0, "express": 1.8}[speed]
    days = {"economy": 10, "standard": 5, "express": 2}[speed] + zone
    price = round((8 + 4.5 * billable) * (1 + zone / 4) * factor, 2)
    return {"price_usd": price, "billable_kg": round(billable, 2), "days": days}


@tool
def track_package(
    tracking_number: Annotated[str, "The tracking number, e.g. 1Z4821937"],
) -> dict[str, str]:
    """Where a package is now and its delivery status."""
    states = ("label created", "in transit", "out for delivery", "delivered")
    hubs = ("Memphis", "Louisville", "Leipzig", "Toronto", "Osaka")
    seed = _stable_int(tracking_number.upper())
    return {
        "tracking_number": tracking_number,
        "status": states[seed % len(states)],
        "last_seen": hubs[(seed >> 8) % len(hubs)],
    }


@tool
def schedule_pickup(
    address: Annotated[Address, "Where the courier collects"],
    date: Annotated[str, "The day, as YYYY-MM-DD"],
    parcels: Annotated[int, "How many parcels", {"minimum": 1}] = 1,
) -> dict[str, Any]:
    """Book a courier to collect parcels from an address."""
    _check_date(date)
    window = ("09:00-12:00", "12:00-15:00", "15:00-18:00")[_stable_int(address.city, date) % 3]
    code = f"P{_stable_int(address.street, date) % 100_000:05d}"
    return {"pickup_id": code, "date": date, "window": window, "parcels": parcels}


_SPEED_WORDS = {"economy": ("economy", "the cheapest"), "express": ("express", "the fastest")}
_STREETS = ("12 Oak Street", "480 Harbor Road", "7 Elm Avenue", "95 King Street West")
_TOWNS = (("Springfield", "62704"), ("Portland", "97205"), ("Madison", "53703"))


def _ask_shipping_quote(rng: random.Random) -> Request:
    weight = rng.choice([0.5, 1.0, 2.0, 2.5, 4.0, 7.5, 12.0])
    sides = sorted((float(rng.randint(10, 60)) for _ in range(3)), reverse=True)
    parcel = dict(
        zip(("weight_kg", "length_cm", "width_cm", "height_cm"), [weight, *sides], strict=True)
    )
    country = rng.choice(sorted(_ZONES))
    arguments: dict[str, Any] = {"parcel": parcel, "destination_country": country}
    how = ""
    if rng.random() < 0.5:
        arguments["speed"], said = _pick(rng, _SPEED_WORDS)
        how = f" with {said} shipping"
    size = "x".join(_digits(side) for side in sides)
    kilos = _say(rng, weight, words=0.5)
    text = rng.choice(
        [
            f"How much does it cost to ship a {kilos} kg box of {size} cm to {country}{how}?",
            f"Quote shipping{how} to {country} for a parcel weighing {kilos} kg, {size} cm.",
            f"I want to send a {size} cm package, {kilos} kilograms, to {country}{how}. Price?",
        ]
    )
    return Request(text, ("shipping_quote", arguments))


def _ask_track_package(rng: random.Random) -> Request:
    number = f"1Z{rng.randint(1_000_000, 9_999_999)}"
    text = rng.choice(
        [
            f"Where is my package {number}?",
            f"Track shipment {number}, please.",
            f"has parcel {number} been delivered yet?",
        ]
    )
    return Request(_capitalize(text), ("track_package", {"tracking_number": number}))


def _ask_schedule_pickup(rng: random.Random) -> Request:
    street = rng.choice(_STREETS)
    town, postal = rng.choice(_TOWNS)
    day = _random_date(rng)
    address = {"street": street, "city": town, "postal_code": postal}
    arguments: dict[str, Any] = {"address": address, "date": day}
    count = ""
    if rng.random() < 0.5:
        arguments["parcels"] = rng.randint(2, 6)
        count = f" for {_say(rng, arguments['parcels'])} parcels"
    where, on = f"{street}, {town} {postal}", _say_date(rng, day)
    text = rng.choice(
        [
            f"Schedule a courier pickup at {where} on {on}{count}.",
            f"Please have a courier collect{count} from {where} on {on}.",
        ]
    )
    return Request(text, ("schedule_pickup", arguments))


# --- library ----------------------------------------------------------------------------------

Media = Literal["book", "ebook", "audiobook", "dvd"]
_CATALOGUE = (
    ("BK-1001", "Pride and Prejudice", "Jane Austen", "book", True),
    ("EB-1002", "Pride and Prejudice", "Jane Austen", "ebook", True),
    ("AU-1003", "Emma", "Jane Austen", "audiobook", False),
    ("BK-1010", "Dune", "Frank Herbert", "book", False),
    ("EB-1011", "Dune", "Frank Herbert", "ebook", True),
    ("DV-2001", "Dune", "Denis Villeneuve", "dvd", True),
    ("BK-1020", "The Hobbit", "J. R. R. Tolkien", "book", True),
    ("AU-1021", "The Hobbit", "J. R. R. Tolkien", "audiobook", True),
    ("BK-1030", "Beloved", "Toni Morrison", "book", True),
    ("BK-1040", "Kindred", "Octavia E. Butler", "book", False),
    ("EB-1041", "Parable of the Sower", "Octavia E. Butler", "ebook", True),
    ("DV-2002", "Spirited Away", "Hayao Miyazaki", "dvd", False),
)
_QUERIES = ("Jane Austen", "Dune", "The Hobbit", "Octavia Butler", "Toni Morrison", "Miyazaki")


@tool
def search_catalogue(
    query: Annotated[str, "Words from the title or the author's name"],
    media: Annotated[Media, "The kind of item"] = "book",
    available_only: Annotated[bool, "Only items on the shelf now"] = False,
) -> list[dict[str, Any]]:
    """Search the library catalogue by title or author."""
    words = query.lower().replace(".", "").split()
    return [
        {"item_id": item, "title": title, "author": author, "available": available}
        for item, title, author, kind, available in _CATALOGUE
        if kind == media
        and (available or not available_only)
        and all(word in f"{title} {author}".lower().replace(".", "") for word in words)
    ]


@tool
def reserve_item(
    item_id: Annotated[str, "The catalogue id, e.g. BK-1001"],
    member_id: Annotated[str, "The library card number, e.g. M-1234"],
    pickup_branch: Annotated[
        Literal["central", "north", "riverside"], "The branch to collect it from"
    ] = "central",
) -> dict[str, Any]:
    """Place a hold on a catalogue item for a member."""
    position = 1 + _stable_int(item_id, member_id) % 4
    return {"item_id": item_id, "member_id": member_id, "branch": pickup_branch, "queue": position}


@tool
def renew_loans(
    member_id: Annotated[str, "The library card number, e.g. M-1234"],
    item_ids: Annotated[list[str], "The catalogue ids of the items to renew"],
) -> dict[str, str]:
    """Renew a member's loans by three weeks; returns each item's new due date."""
    base = Date(2025, 6, 1)
    return {
        item: (base + timedelta(days=21 + _stable_int(member_id, item) % 14)).isoformat()
        for item in item_ids
    }


_MEDIA_WORDS = {
    "book": ("books", "print books"),
    "ebook": ("ebooks", "e-books"),
    "audiobook": ("audiobooks",),
    "dvd": ("DVDs", "films on DVD"),
}
_BRANCH_WORDS = {"north": ("North",), "riverside": ("Riverside",), "central": ("Central",)}


def _member(rng: random.Random) -> str:
    return f"M-{rng.randint(1000, 9999)}"


def _ask_search_catalogue(rng: random.Random) -> Request:
    query = rng.choice(_QUERIES)
    arguments: dict[str, Any] = {"query": query}
    kind = "anything"
    if rng.random() < 0.6:
        arguments["media"], kind = _pick(rng, _MEDIA_WORDS)
    on_shelf = ""
    if rng.random() < 0.35:
        arguments["available_only"] = True
        on_shelf = rng.choice([" that are available right now", " currently on the shelf"])
    if kind == "anything":
        text = rng.choice(
            [f"Search the catalogue for {query}{on_shelf}.", f"Do you have {query}{on_shelf}?"]
        )
    else:
        text = rng.choice(
            [
                f"Do you have any {kind} by or about {query}{on_shelf}?",
                f"Search the library for {query} {kind}{on_shelf}.",
            ]
        )
    return Request(text, ("search_catalogue", arguments))


def _ask_reserve_item(rng: random.Random) -> Request:
    item, member = rng.choice(_CATALOGUE)[0], _member(rng)
    arguments: dict[str, Any] = {"item_id": item, "member_id": member}
    branch = ""
    if rng.random() < 0.5:
        arguments["pickup_branch"], said = _pick(rng, _BRANCH_WORDS)
        branch = f", to pick up at the {said} branch"
    text = rng.choice(
        [
            f"Reserve {item} for member {member}{branch}.",
            f"Please put a hold on item {item} for card {member}{branch}.",
            f"My card is {member}. I'd like to reserve {item}{branch}.",
        ]
    )
    return Request(text, ("reserve_item", arguments))


def _ask_renew_loans(rng: random.Random) -> Request:
    items = [row[0] for row in rng.sample(_CATALOGUE, rng.randint(1, 3))]
    member = _member(rng)
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"
    text = rng.choice(
        [
            f"Renew {listed} for member {member}.",
            f"Can you extend my loans {listed}? Card {member}.",
            f"please renew my items {listed} (library card {member}).",
        ]
    )
    arguments = {"member_id": member, "item_ids": items}
    return Request(_capitalize(text), ("renew_loans", arguments))


# --- weather ----------------------------------------------------------------------------------

_CLIMATE = {  # city: (mean temperature in Celsius, rainy days in ten)
    "Paris": (13, 4),
    "Oslo": (6, 4),
    "Cairo": (23, 0),
    "Tokyo": (16, 4),
    "Lima": (19, 1),
    "Denver": (10, 2),
    "Mumbai": (27, 5),
    "Sydney": (18, 3),
}


def _day_weather(city: str, day: Date) -> tuple[float, str]:
    mean, rainy = _CLIMATE.get(city, (15, 3))
    seed = _stable_int("weather", city, day.isoformat())
    season = -8 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365)
    if city in ("Lima", "Sydney"):
        season = -season
    temperature = round(mean + season + (seed % 7) - 3, 1)
    return temperature, "rain" if seed % 10 < rainy else ("cloudy", "sunny")[seed >> 5 & 1]


@tool
def get_weather(
    city: Annotated[str, "The city"],
    date: Annotated[str, "The day, as YYYY-MM-DD"],
    units: Annotated[
        Literal["metric", "imperial"], "metric: Celsius and km/h; imperial: Fahrenheit and mph"
    ] = "metric",
) -> dict[str, Any]:
    """The weather in a city on a day: temperature, sky and wind."""
    day = _check_date(date)
    celsius, sky = _day_weather(city, day)
    wind = 5 + _stable_int("wind", city, date) % 30
    if units == "imperial":
        return {"temperature_f": round(celsius * 9 / 5 + 32, 1), "sky": sky, "wind_mph": wind // 2}
    return {"temperature_c": celsius, "sky": sky, "wind_kmh": wind}


@tool
def get_forecast(
    city: Annotated[str, "The city"],
    days: Annotated[int, "How many days ahead, 1 to 7", {"minimum": 1, "maximum": 7}],
) -> list[dict[str, Any]]:
    """The daily forecast for a city, from tomorrow (the forecast service's date is fixed)."""
    today = Date(2025, 6, 1)
    forecast = []
    for offset in range(1, days + 1):
        celsius, sky = _day_weather(city, today + timedelta(days=offset))
        forecast.append({"day": offset, "temperature_c": celsius, "sky": sky})
    return forecast


@tool
def get_air_quality(city: Annotated[str, "The city"]) -> dict[str, Any]:
    """The current air quality index (AQI) of a city and what it means."""
    index = 15 + _stable_int("aqi", city) % 160
    level = "good" if index <= 50 else "moderate" if index <= 100 else "unhealthy"
    return {"city": city, "aqi": index, "level": level}


_UNIT_WORDS = {"imperial": ("in Fahrenheit", "in imperial units"), "metric": ("in Celsius",)}


def _ask_get_weather(rng: random.Random) -> Request:
    city, day = rng.choice(sorted(_CLIMATE)), _random_date(rng)
    arguments: dict[str, Any] = {"city": city, "date": day}
    units = ""
    if rng.random() < 0.35:
        arguments["units"], said = _pick(rng, _UNIT_WORDS)
        units = f" {said}"
    on = _say_date(rng, day)
    text = rng.choice(
        [
            f"What's the weather in {city} on {on}{units}?",
            f"how will the weather be in {city} on {on}{units}?",
            f"Tell me the weather for {city}, {on}{units}.",
            f"Is it going to rain in {city} on {on}? Answer{units or ' briefly'}.",
        ]
    )
    return Request(_capitalize(text), ("get_weather", arguments))


def _ask_get_forecast(rng: random.Random) -> Request:
    city, days = rng.choice(sorted(_CLIMATE)), rng.randint(1, 7)
    span = "tomorrow" if days == 1 else f"the next {_say(rng, days, words=0.6)} days"
    text = rng.choice(
        [
            f"Give me the forecast for {city} for {span}.",
            f"What's the weather going to be like in {city} over {span}?",
            f"forecast for {span} in {city}, please.",
        ]
    )
    return Request(_capitalize(text), ("get_forecast", {"city": city, "days": days}))


def _ask_get_air_quality(rng: random.Random) -> Request:
    city = rng.choice([*sorted(_CLIMATE), "Delhi", "Mexico City", "Berlin"])
    text = rng.choice(
        [
            f"How is the air quality in {city} right now?",
            f"What's the AQI in {city}?",
            f"is the air in {city} safe to go running today?",
        ]
    )
    return Request(_capitalize(text), ("get_air_quality", {"city": city}))


# --- recipes ----------------------------------------------------------------------------------


class Ingredient(BaseModel):
    """One line of a recipe."""

    name: str
    quantity: float = Field(gt=0)
    unit: str = Field(description="e.g. g, ml, cup, tbsp, tsp")


_NUTRITION = {  # per 100 g: kcal, protein g, carbohydrate g, fat g
    "banana": (89, 1.1, 23.0, 0.3),
    "avocado": (160, 2.0, 8.5, 14.7),
    "oats": (389, 16.9, 66.3, 6.9),
    "chicken breast": (165, 31.0, 0.0, 3.6),
    "rice": (130, 2.7, 28.0, 0.3),
    "almonds": (579, 21.2, 21.6, 49.9),
    "broccoli": (34, 2.8, 6.6, 0.4),
    "salmon": (208, 20.4, 0.0, 13.4),
}
_RECIPES = (
    ("Chickpea curry", "chickpeas", "vegan", 35),
    ("Hummus", "chickpeas", "vegan", 10),
    ("Falafel wrap", "chickpeas", "vegetarian", 40),
    ("Mushroom risotto", "mushrooms", "gluten_free", 45),
    ("Mushroom omelette", "mushrooms", "vegetarian", 15),
    ("Lemon chicken", "chicken", "gluten_free", 50),
    ("Chicken noodle soup", "chicken", "any", 60),
    ("Tofu stir-fry", "tofu", "vegan", 20),
    ("Spinach lasagne", "spinach", "vegetarian", 75),
    ("Spinach dal", "spinach", "vegan", 30),
)
_DIETS = {"any": (), "vegetarian": ("any", "vegetarian", "vegan"), "vegan": ("vegan",)}


@tool
def scale_recipe(
    ingredients: Annotated[list[Ingredient], "The recipe's ingredients"],
    original_servings: Annotated[int, "Servings the recipe makes", {"minimum": 1}],
    target_servings: Annotated[int, "Servings wanted", {"minimum": 1}],
) -> list[dict[str, Any]]:
    """Scale a recipe's ingredient quantities to a different number of servings."""
    factor = target_servings / original_servings
    return [
        {"name": item.name, "quantity": round(item.quantity * factor, 2), "unit": item.unit}
        for item in ingredients
    ]


@tool
def nutrition_facts(
    food: Annotated[str, "The food, e.g. banana"],
    grams: Annotated[float, "The portion in grams", {"exclusiveMinimum": 0}] = 100.0,
) -> dict[str, Any]:
    """Calories, protein, carbohydrate and fat in a portion of a food."""
    if food.lower() not in _NUTRITION:
        raise ValueError(f"no nutrition data for {food!r}; known foods: {sorted(_NUTRITION)}")
    kcal, protein, carbs, fat = (value * grams / 100 for value in _NUTRITION[food.lower()])
    return {
        "food": food,
        "grams": grams,
        "kcal": round(kcal),
        "protein_g": round(protein, 1),
        "carbs_g": round(carbs, 1),
        "fat_g": round(fat, 1),
    }


@tool
def find_recipes(
    ingredient: Annotated[str, "The main ingredient"],
    diet: Annotated[
        Literal["any", "vegetarian", "vegan", "gluten_free"], "A diet the recipes must fit"
    ] = "any",
    max_minutes: Annotated[int | None, "The longest total cooking time, in minutes"] = None,
) -> list[str]:
    """Find recipes built around an ingredient, optionally for a diet and a time limit."""
    return [
        name
        for name, main, fits, minutes in _RECIPES
        if main == ingredient.lower()
        and (diet == "any" or fits == diet or fits in _DIETS.get(diet, ()))
        and (max_minutes is None or minutes <= max_minutes)
    ]


_LINES = (
    ("flour", "g", (150, 200, 250, 500)),
    ("milk", "ml", (100, 250, 300)),
    ("sugar", "tbsp", (1, 2, 3)),
    ("salt", "tsp", (1, 2)),
    ("butter", "g", (50, 80, 125)),
    ("rice", "cup", (1, 2)),
    ("olive oil", "tbsp", (2, 3)),
)
_DIET_WORDS = {
    "vegan": ("vegan", "plant-based"),
    "vegetarian": ("vegetarian",),
    "gluten_free": ("gluten-free",),
}


def _ask_scale_recipe(rng: random.Random) -> Request:
    lines = rng.sample(_LINES, rng.randint(2, 3))
    ingredients = [
        {"name": name, "quantity": float(rng.choice(amounts)), "unit": unit}
        for name, unit, amounts in lines
    ]
    written = [f"{_digits(item['quantity'])} {item['unit']} {item['name']}" for item in ingredients]
    listed = ", ".join(written[:-1]) + f" and {written[-1]}"
    original, target = rng.sample([2, 4, 6, 8, 10, 12], 2)
    text = rng.choice(
        [
            f"My recipe serves {_say(rng, original)}: {listed}. "
            f"Scale it to {_say(rng, target)} servings.",
            f"Rescale this recipe from {original} to {_say(rng, target)} servings: {listed}.",
            f"I need to cook for {_say(rng, target)} instead of {_say(rng, original)}. "
            f"The ingredients are {listed}.",
        ]
    )
    arguments = {
        "ingredients": ingredients,
        "original_servings": original,
        "target_servings": target,
    }
    return Request(text, ("scale_recipe", arguments))


def _ask_nutrition_facts(rng: random.Random) -> Request:
    food = rng.choice(sorted(_NUTRITION))
    if rng.random() < 0.55:
        grams = float(rng.choice([30, 50, 150, 200, 250]))
        said = _say(rng, grams)
        text = rng.choice(
            [
                f"How many calories are in {said} grams of {food}?",
                f"Nutrition facts for {said} g of {food}, please.",
            ]
        )
        return Request(text, ("nutrition_facts", {"food": food, "grams": grams}))
    text = rng.choice([f"What are the nutrition facts of {food}?", f"How healthy is {food}?"])
    return Request(text, ("nutrition_facts", {"food": food}))


def _ask_find_recipes(rng: random.Random) -> Request:
    ingredient = rng.choice(("chickpeas", "mushrooms", "chicken", "tofu", "spinach"))
    arguments: dict[str, Any] = {"ingredient": ingredient}
    diet = ""
    if rng.random() < 0.5 and ingredient != "chicken":
        arguments["diet"], diet = _pick(rng, _DIET_WORDS)
        diet += " "
    limit = ""
    if rng.random() < 0.4:
        arguments["max_minutes"] = rng.choice([15, 20, 30, 45, 60])
        limit = f" that take at most {_say(rng, arguments['max_minutes'])} minutes"
    text = rng.choice(
        [
            f"Find {diet}recipes with {ingredient}{limit}.",
            f"What {diet}dishes can I make with {ingredient}{limit}?",
            f"give me some {diet}{ingredient} recipes{limit}.",
        ]
    )
    return Request(_capitalize(text), ("find_recipes", arguments))


# --- flights ----------------------------------------------------------------------------------

Cabin = Literal["economy", "premium_economy", "business", "first"]
_AIRPORTS = {
    "BOS": "Boston",
    "SFO": "San Francisco",
    "SEA": "Seattle",
    "DEN": "Denver",
    "MAD": "Madrid",
    "AMS": "Amsterdam",
    "DUB": "Dublin",
    "SYD": "Sydney",
}
_AIRLINES = ("BA", "LH", "UA", "DL", "IB", "KL", "EI", "QF")


@tool
def search_flights(
    origin: Annotated[str, "The departure airport's IATA code, e.g. BOS"],
    destination: Annotated[str, "The arrival airport's IATA code, e.g. MAD"],
    date: Annotated[str, "The day of departure, as YYYY-MM-DD"],
    passengers: Annotated[int, "How many travellers", {"minimum": 1, "maximum": 9}] = 1,
    cabin: Annotated[Cabin, "The cabin class"] = "economy",
    nonstop_only: Annotated[bool, "Only flights without a stop"] = False,
) -> list[dict[str, Any]]:
    """Search one-way flights and return the options with their total prices."""
    _check_date(date)
    multiplier = {"economy": 1.0, "premium_economy": 1.6, "business": 3.5, "first": 6.0}[cabin]
    options = []
    for index in range(3):
        seed = _stable_int(origin, destination, date, index)
        stops = 0 if index == 0 else seed % 2
        if nonstop_only and stops:
            continue
        fare = (120 + seed % 500) * multiplier * (0.85 if stops else 1.0)
        options.append(
            {
                "flight": f"{_AIRLINES[seed % len(_AIRLINES)]}{100 + seed % 900}",
                "departs": f"{6 + (seed >> 8) % 16:02d}:{(seed >> 16) % 4 * 15:02d}",
                "stops": stops,
                "total_usd": round(fare * passengers, 2),
            }
        )
    return options


@tool
def flight_status(
    flight_number: Annotated[str, "The flight number, e.g. BA117"],
    date: Annotated[str, "The day of the flight, as YYYY-MM-DD"],
) -> dict[str, Any]:
    """Whether a flight is on time, delayed or cancelled, and its gate."""
    _check_date(date)
    seed = _stable_int(flight_number.upper(), date)
    status = ("on time", "on time", "delayed", "cancelled")[seed % 4]
    delay = 15 * (1 + (seed >> 4) % 8) if status == "delayed" else 0
    return {
        "flight": flight_number,
        "status": status,
        "delay_minutes": delay,
        "gate": f"B{seed % 40}",
    }


_CABIN_WORDS = {
    "business": ("business class", "business"),
    "first": ("first class",),
    "premium_economy": ("premium economy",),
    "economy": ("economy", "coach"),
}


def _airport(rng: random.Random, code: str) -> str:
    return rng.choice([code, f"{_AIRPORTS[code]} ({code})"])


def _ask_search_flights(rng: random.Random) -> Request:
    origin, destination = rng.sample(sorted(_AIRPORTS), 2)
    day = _random_date(rng)
    arguments: dict[str, Any] = {"origin": origin, "destination": destination, "date": day}
    extras = []
    if rng.random() < 0.4:
        arguments["passengers"] = rng.randint(2, 6)
        extras.append(f"for {_say(rng, arguments['passengers'])} passengers")
    if rng.random() < 0.35:
        arguments["cabin"], said = _pick(rng, _CABIN_WORDS)
        extras.append(f"in {said}")
    if rng.random() < 0.25:
        arguments["nonstop_only"] = True
        extras.append(rng.choice(["nonstop only", "direct flights only"]))
    rest = (", " + ", ".join(extras)) if extras else ""
    source, target, on = _airport(rng, origin), _airport(rng, destination), _say_date(rng, day)
    text = rng.choice(
        [
            f"Find flights from {source} to {target} on {on}{rest}.",
            f"I need to fly {source} to {target} on {on}{rest}. What are my options?",
            f"Search one-way flights {source} → {target}, departing {on}{rest}.",
        ]
    )
    return Request(text, ("search_flights", arguments))


def _ask_flight_status(rng: random.Random) -> Request:
    number = f"{rng.choice(_AIRLINES)}{rng.randint(100, 999)}"
    day = _random_date(rng)
    on = _say_date(rng, day)
    text = rng.choice(
        [
            f"Is flight {number} on {on} on time?",
            f"What's the status of {number} on {on}?",
            f"check whether {number} is delayed on {on}.",
        ]
    )
    arguments = {"flight_number": number, "date": day}
    return Request(_capitalize(text), ("flight_status", arguments))


# --- to-do list -------------------------------------------------------------------------------

Priority = Literal["low", "medium", "high"]
_TASKS = (
    (1, "Renew passport", "open", "admin"),
    (2, "Buy groceries", "open", "home"),
    (3, "Send invoice to ACME", "done", "work"),
    (4, "Fix the bike", "open", "home"),
    (5, "Prepare slides", "open", "work"),
    (6, "Call the plumber", "done", "home"),
    (7, "Book dentist", "done", "health"),
)


@tool
def add_task(
    title: Annotated[str, "What needs doing"],
    due_date: Annotated[str | None, "The due day, as YYYY-MM-DD"] = None,
    priority: Annotated[Priority, "How urgent it is"] = "medium",
    tags: Annotated[list[str] | None, "Labels to file it under, e.g. work"] = None,
) -> dict[str, Any]:
    """Add a task to the user's to-do list and return it with its id."""
    if due_date is not None:
        _check_date(due_date, "due_date")
    task_id = 100 + _stable_int(title, due_date) % 900
    task = {"task_id": task_id, "title": title, "due_date": due_date}
    return {**task, "priority": priority, "tags": tags or []}


@tool
def complete_task(task_id: Annotated[int, "The task's number", {"minimum": 1}]) -> dict[str, Any]:
    """Mark a task on the to-do list as done."""
    title = next((row[1] for row in _TASKS if row[0] == task_id), f"Task {task_id}")
    return {"task_id": task_id, "title": title, "status": "done"}


@tool
def list_tasks(
    status: Annotated[Literal["open", "done", "all"], "Which tasks to list"] = "open",
    tag: Annotated[str | None, "Only tasks with this label"] = None,
) -> list[dict[str, Any]]:
    """List the tasks on the user's to-do list."""
    return [
        {"task_id": number, "title": title, "status": state, "tag": label}
        for number, title, state, label in _TASKS
        if status in ("all", state) and (tag is None or tag.lower() == label)
    ]


_TODO_TITLES = (
    "buy milk",
    "water the plants",
    "email the landlord",
    "pay the electricity bill",
    "pick up dry cleaning",
    "update my CV",
)
_PRIORITY_WORDS = {"high": ("high", "urgent"), "low": ("low",), "medium": ("medium",)}
_STATUS_WORDS = {"done": ("completed", "finished"), "all": ("all",), "open": ("open", "unfinished")}


def _ask_add_task(rng: random.Random) -> Request:
    title = rng.choice(_TODO_TITLES)
    arguments: dict[str, Any] = {"title": title}
    extras = []
    if rng.random() < 0.5:
        arguments["due_date"] = _random_date(rng)
        extras.append(f"due {_say_date(rng, arguments['due_date'])}")
    if rng.random() < 0.4:
        arguments["priority"], said = _pick(rng, _PRIORITY_WORDS)
        extras.append(f"{said} priority" if said != "urgent" else "it's urgent")
    if rng.random() < 0.3:
        arguments["tags"] = rng.sample(["home", "work", "errands", "money"], rng.randint(1, 2))
        extras.append("tagged " + " and ".join(arguments["tags"]))
    rest = (", " + ", ".join(extras)) if extras else ""
    text = rng.choice(
        [
            f'Add "{title}" to my to-do list{rest}.',
            f'Create a task "{title}"{rest}.',
            f'remind me to "{title}" — put it on my list{rest}.',
        ]
    )
    return Request(_capitalize(text), ("add_task", arguments))


def _ask_complete_task(rng: random.Random) -> Request:
    number = rng.randint(1, 60)
    said = _say(rng, number)
    text = rng.choice(
        [
            f"Mark task {said} as done.",
            f"I finished task number {said}; tick it off.",
            f"Task #{number} is complete.",
        ]
    )
    return Request(text, ("complete_task", {"task_id": number}))


def _ask_list_tasks(rng: random.Random) -> Request:
    arguments: dict[str, Any] = {}
    kind = ""
    if rng.random() < 0.6:
        arguments["status"], kind = _pick(rng, _STATUS_WORDS)
        kind += " "
    tagged = ""
    if rng.random() < 0.4:
        arguments["tag"] = rng.choice(["home", "work", "health", "admin"])
        tagged = f" tagged {arguments['tag']}"
    text = rng.choice(
        [
            f"Show me my {kind}tasks{tagged}.",
            f"List {kind}to-dos{tagged}.",
            f"What are my {kind}tasks{tagged}?",
        ]
    )
    return Request(text, ("list_tasks", arguments))


# --- statistics -------------------------------------------------------------------------------

Statistic = Literal["mean", "median", "stdev", "min", "max", "sum"]
_STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "mean": stats.fmean,
    "median": stats.median,
    "stdev": stats.stdev,
    "min": min,
    "max": max,
    "sum": math.fsum,
}


@tool
def describe_numbers(
    numbers: Annotated[list[float], "The data"],
    statistics: Annotated[list[Statistic], "The statistics to compute, in order"],
) -> dict[str, float]:
    """Compute summary statistics of a list of numbers, each rounded to four decimals."""
    if len(numbers) < 2:
        raise ValueError(f"give at least two numbers, got {numbers}")
    return {name: round(_STATISTICS[name](numbers), 4) for name in statistics}


@tool
def percentage_change(
    old_value: Annotated[float, "The value before"],
    new_value: Annotated[float, "The value after"],
) -> float:
    """The change from an old value to a new one, in percent (two decimals)."""
    if old_value == 0:
        raise ValueError("old_value is 0: a change from zero has no percentage")
    return round((new_value - old_value) / abs(old_value) * 100, 2)


@tool
def loan_payment(
    principal: Annotated[float, "The amount borrowed"],
    annual_rate_percent: Annotated[float, "The yearly interest rate in percent, e.g. 5.5"],
    years: Annotated[int, "The loan's term in years", {"minimum": 1}],
) -> float:
    """The fixed monthly payment of an amortised loan, to the cent."""
    months, rate = years * 12, annual_rate_percent / 1200
    if rate == 0:
        return round(principal / months, 2)
    return round(principal * rate / (1 - (1 + rate) ** -months), 2)


_STAT_WORDS = {
    "mean": ("mean", "average"),
    "median": ("median",),
    "stdev": ("standard deviation",),
    "min": ("minimum", "smallest value"),
    "max": ("maximum", "largest value"),
    "sum": ("sum", "total"),
}


def _ask_describe_numbers(rng: random.Random) -> Request:
    numbers = [float(rng.randint(1, 99)) for _ in range(rng.randint(3, 7))]
    chosen = rng.sample(sorted(_STAT_WORDS), rng.randint(1, 3))
    said = [rng.choice(_STAT_WORDS[name]) for name in chosen]
    wanted = said[0] if len(said) == 1 else ", ".join(said[:-1]) + f" and {said[-1]}"
    data = ", ".join(_digits(number) for number in numbers)
    text = rng.choice(
        [
            f"What is the {wanted} of {data}?",
            f"Compute the {wanted} for these numbers: {data}.",
            f"Here are my scores: {data}. Give me the {wanted}.",
        ]
    )
    return Request(text, ("describe_numbers", {"numbers": numbers, "statistics": chosen}))


def _ask_percentage_change(rng: random.Random) -> Request:
    old = float(rng.randint(10, 500))
    new = float(max(1, old + rng.randint(-60, 120)))
    if new == old:
        new += 5
    first, second = _say(rng, old), _say(rng, new)
    text = rng.choice(
        [
            f"What's the percentage change from {first} to {second}?",
            f"The price went from {first} to {second}. By what percent did it change?",
            f"Sales moved from {first} units to {second} units; give me the percent change.",
        ]
    )
    return Request(text, ("percentage_change", {"old_value": old, "new_value": new}))


def _ask_loan_payment(rng: random.Random) -> Request:
    principal = float(rng.choice([5_000, 12_000, 25_000, 180_000, 250_000, 400_000]))
    rate = rng.choice([3.5, 4.25, 5.0, 6.5, 7.9])
    years = rng.choice([3, 5, 10, 15, 20, 30])
    amount = rng.choice([f"${principal:,.0f}", f"{principal:,.0f} dollars"])
    term = f"{_say(rng, years, words=0.5)} years"
    text = rng.choice(
        [
            f"What's the monthly payment on a loan of {amount} at {rate}% over {term}?",
            f"I'm borrowing {amount} for {term} at {rate} percent a year. Monthly payment?",
            f"Calculate the monthly installment for {amount}, {rate}% annual interest, {term}.",
        ]
    )
    arguments = {"principal": principal, "annual_rate_percent": rate, "years": years}
    return Request(text, ("loan_payment", arguments))


# --- the apps ---------------------------------------------------------------------------------


def _app(
    name: str,
    makers: Mapping[Tool[..., Any], RequestMaker],
    near_misses: Sequence[str],
    system_prompt: str,
) -> App:
    return App(
        name=name,
        tools=tuple(makers),
        makers={tool.name: maker for tool, maker in makers.items()},
        near_misses=tuple(near_misses),
        system_prompt=system_prompt,
    )


APPS: tuple[App, ...] = (
    _app(
        "restaurants",
        {search_restaurants: _ask_search_restaurants, book_table: _ask_book_table},
        (
            "Cancel my reservation at Trattoria Roma for tonight.",
            "Leave a five-star review for Sakura House.",
            "What's the secret ingredient in Casa Azul's salsa?",
            "How many Michelin stars does Le Petit Zinc have?",
        ),
        "You are the concierge of a restaurant guide.",
    ),
    _app(
        "units",
        {
            convert_length: _ask_convert_length,
            convert_temperature: _ask_convert_temperature,
            convert_weight: _ask_convert_weight,
        },
        (
            "How many people live in Canada?",
            "Convert this PDF into a Word document.",
            "How many teaspoons of sugar are in a can of soda?",
            "What is the speed of light?",
        ),
        "You are a unit conversion assistant.",
    ),
    _app(
        "calendar",
        {
            create_event: _ask_create_event,
            list_events: _ask_list_events,
            find_free_slot: _ask_find_free_slot,
        },
        (
            "Delete every meeting I have with Bob.",
            "Send an email to Alice saying I'm running late.",
            "What time is it in Tokyo right now?",
            "Which public holidays does Ireland have?",
        ),
        "You manage the user's calendar.",
    ),
    _app(
        "expenses",
        {
            convert_currency: _ask_convert_currency,
            log_expense: _ask_log_expense,
            split_bill: _ask_split_bill,
        },
        (
            "What will the euro be worth in dollars next year?",
            "What's my credit score?",
            "Open a savings account for me.",
            "Is it better to rent or to buy a house?",
        ),
        "You are a personal finance assistant.",
    ),
    _app(
        "smart_home",
        {
            set_thermostat: _ask_set_thermostat,
            set_lights: _ask_set_lights,
            lock_door: _ask_lock_door,
        },
        (
            "Order a new smart bulb for the kitchen.",
            "Play some jazz in the living room.",
            "Is the oven still on?",
            "Why does my fridge make a buzzing noise?",
        ),
        "You control the user's smart home.",
    ),
    _app(
        "shipping",
        {
            shipping_quote: _ask_shipping_quote,
            track_package: _ask_track_package,
            schedule_pickup: _ask_schedule_pickup,
        },
        (
            "Which items am I not allowed to send by air?",
            "File a damage claim for my broken vase.",
            "What is the capital of Japan?",
            "How do I wrap a painting for shipping?",
        ),
        "You are the assistant of a parcel courier.",
    ),
    _app(
        "library",
        {
            search_catalogue: _ask_search_catalogue,
            reserve_item: _ask_reserve_item,
            renew_loans: _ask_renew_loans,
        },
        (
            "Write me a summary of Moby Dick.",
            "Pay my late fee of three dollars.",
            "Who was the first librarian of Alexandria?",
            "What are the library's opening hours on Sunday?",
        ),
        "You help members of the city library.",
    ),
    _app(
        "weather",
        {
            get_weather: _ask_get_weather,
            get_forecast: _ask_get_forecast,
            get_air_quality: _ask_get_air_quality,
        },
        (
            "Why is the sky blue?",
            "How do hurricanes form?",
            "Which is bigger, Lyon or Marseille?",
            "What causes a rainbow?",
        ),
        "You are a weather assistant.",
    ),
    _app(
        "recipes",
        {
            scale_recipe: _ask_scale_recipe,
            nutrition_facts: _ask_nutrition_facts,
            find_recipes: _ask_find_recipes,
        },
        (
            "Order a large pizza for delivery.",
            "What wine goes well with salmon?",
            "How long can I keep cooked rice in the fridge?",
            "Who invented the sandwich?",
        ),
        "You are a cooking assistant.",
    ),
    _app(
        "flights",
        {search_flights: _ask_search_flights, flight_status: _ask_flight_status},
        (
            "Cancel my flight booking.",
            "What's the baggage allowance on Delta?",
            "Book me a hotel in Madrid for next weekend.",
            "Do I need a visa to visit Australia?",
        ),
        "You are a travel assistant for flights.",
    ),
    _app(
        "todo",
        {add_task: _ask_add_task, complete_task: _ask_complete_task, list_tasks: _ask_list_tasks},
        (
            "Delete the task about the passport.",
            "How many days are left until Christmas?",
            "Share my to-do list with my sister.",
            "What's a good way to beat procrastination?",
        ),
        "You manage the user's to-do list.",
    ),
    _app(
        "statistics",
        {
            describe_numbers: _ask_describe_numbers,
            percentage_change: _ask_percentage_change,
            loan_payment: _ask_loan_payment,
        },
        (
            "Prove that the square root of two is irrational.",
            "Plot these numbers as a bar chart: 3, 5, 9.",
            "What is the derivative of x squared?",
            "Explain what a p-value is.",
        ),
        "You are a calculator assistant.",
    ),
)

_GENERAL_QUESTIONS = (
    "Tell me a joke about penguins.",
    "Who painted the Mona Lisa?",
    "Translate 'good morning' into Italian.",
    "Write a haiku about autumn.",
    "What does the word 'ephemeral' mean?",
    "How do I tie a bowline knot?",
    "Who won the 2018 World Cup?",
    "Summarize the plot of Hamlet in one sentence.",
    "Hi! How are you today?",
    "What's the tallest mountain in Africa?",
)
_GENERIC_SYSTEM = (
    "You are a helpful assistant with access to tools.",
    "Use the tools when they help; otherwise answer directly.",
)

# --- composing cases --------------------------------------------------------------------------


def build_case(
    app: App, category: Category, rng: random.Random, apps: Sequence[App] = APPS
) -> tuple[list[dict[str, str]], list[Tool[..., Any]], list[Call]]:
    """One case of ``category`` for ``app``: its messages, the tools offered (shuffled), and the
    expected calls. ``apps`` are where distractor tools and off-topic requests come from."""
    others = [other for other in apps if other.name != app.name]
    if category == "simple":
        chosen = rng.choice(app.tools)
        request = app.makers[chosen.name](rng)
        text, tools, calls = request.text, [chosen], [request.call]
    elif category == "multiple":
        request = app.makers[rng.choice(app.tools).name](rng)
        tools = [*app.tools, *_distractors(rng, others, rng.randint(0, 2))]
        text, calls = request.text, [request.call]
    elif category == "parallel":
        chosen = rng.choice(app.tools)
        requests = _distinct(rng, [app.makers[chosen.name]] * rng.choice((2, 2, 3)))
        text, tools, calls = _join(rng, [r.text for r in requests]), [chosen], _calls(requests)
    elif category == "parallel_multiple":
        names = [tool.name for tool in app.tools]
        picked = rng.sample(names, 2) + ([rng.choice(names)] if rng.random() < 0.3 else [])
        requests = _distinct(rng, [app.makers[name] for name in picked])
        tools = [*app.tools, *_distractors(rng, others, rng.randint(0, 2))]
        text, calls = _join(rng, [r.text for r in requests]), _calls(requests)
    else:
        tools = rng.sample(app.tools, rng.randint(1, len(app.tools)))
        text, calls = _off_topic(rng, app, others), []
    messages = [{"role": "user", "content": text}]
    if rng.random() < 0.2:
        system = rng.choice((app.system_prompt, *_GENERIC_SYSTEM))
        messages.insert(0, {"role": "system", "content": system})
    rng.shuffle(tools)
    return messages, tools, calls


def _distractors(rng: random.Random, others: Sequence[App], count: int) -> list[Tool[..., Any]]:
    pool = [tool for other in others for tool in other.tools]
    return rng.sample(pool, count)


def _distinct(rng: random.Random, makers: Sequence[RequestMaker]) -> list[Request]:
    """One request from each maker, with no two alike (the same call twice is no parallel)."""
    requests: list[Request] = []
    for maker in makers:
        for _ in range(50):
            request = maker(rng)
            if all(request.call != seen.call for seen in requests):
                requests.append(request)
                break
        else:  # pragma: no cover - every maker has far more than 50 distinct calls
            raise RuntimeError(f"{maker.__name__} made the same call 50 times")
    return requests


def _calls(requests: Sequence[Request]) -> list[Call]:
    return [request.call for request in requests]


def _off_topic(rng: random.Random, app: App, others: Sequence[App]) -> str:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(app.near_misses)
    if roll < 0.6:
        return rng.choice(_GENERAL_QUESTIONS)
    other = rng.choice(others)  # a request of another app, whose tools are not offered
    return other.makers[rng.choice(other.tools).name](rng).text


def _join(rng: random.Random, texts: Sequence[str]) -> str:
    """Several requests as one message."""
    if len(texts) == 2:
        first, second = texts
        return rng.choice(
            [
                f"{first} Also, {_lower_first(second)}",
                f"{first} And {_lower_first(second)}",
                f"Two things. {first} {second}",
                f"{first}\n{second}",
            ]
        )
    head = " ".join(texts[:-1])
    return rng.choice(
        [f"{head} Finally, {_lower_first(texts[-1])}", " ".join(texts), "\n".join(texts)]
    )


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    # "I", "I'm", "DVDs", "Book" in a title-like first word: only plain words lose their capital.
    if first == "I" or first.startswith("I'") or not first[1:].islower():
        return text
    return text[0].lower() + text[1:]


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]
