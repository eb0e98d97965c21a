"""Time building a tool from a function, and validating one call's arguments, against two peers.

Compares ``byzer_agents.tools.tool`` with openai-agents' ``function_tool`` and pydantic-ai's
``Tool`` on the same ten functions, checks that the three agree on each schema's property names,
required list and property descriptions and on the validated values, prints markdown tables, and
writes its section of ``benchmarks/RESULTS.md``.

Run: ``.venv/bin/python benchmarks/bench_schema.py``

What is timed, per library (each is what the library itself does, nothing more):

- build: ours ``tool(fn)``; openai-agents ``function_tool(fn, strict_mode=False)`` (eager: it calls
  ``function_schema`` which creates the pydantic model and its JSON schema); pydantic-ai
  ``Tool(fn, takes_ctx=False)`` (eager: its ``__init__`` calls ``_function_schema.function_schema``,
  which builds the core validator, the JSON schema, and the return schema).
- validate, from the JSON string a model sends: ours ``Tool.validate(text)``; openai-agents what
  its ``on_invoke_tool`` does before calling the function (``json.loads``,
  ``params_pydantic_model(**data)``, ``FuncSchema.to_call_args``); pydantic-ai what its
  ``ToolManager`` does
  (``function_schema.validator.validate_json(text, allow_partial="off")``).

Both peers are non-strict here because ours is by default, and because openai-agents' strict mode
refuses ``dict[str, T]`` parameters (open objects cannot be strict).
"""

import dataclasses
import datetime as dt
import enum
import functools
import json
import math
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import agents
import pydantic_ai
from agents.function_schema import function_schema as openai_function_schema
from pydantic import BaseModel, Field

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import RESULTS_PATH, library_versions, write_section  # noqa: E402

from byzer_agents.tools import tool  # noqa: E402

VERSIONED = ("pydantic", "pydantic-core", "openai-agents", "pydantic-ai-slim", "docstring-parser")
SECTION_HEADING = "## Tool schema: build and validate (bench_schema.py)"
REPEAT = 7
SECONDS_PER_REPEAT = 0.03
"""Each repeat runs the statement enough times to last about this long; the best repeat counts."""


# --- the ten functions ------------------------------------------------------------------------
# No `from __future__ import annotations`: the libraries see evaluated annotations, as in most
# user code. Each function takes two or more parameters, since pydantic-ai treats a lone model-like
# parameter specially (its schema becomes the tool's), which would make the schemas incomparable.


class CabinClass(str, enum.Enum):
    ECONOMY = "economy"
    PREMIUM = "premium"
    BUSINESS = "business"


class Priority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class GeoPoint(BaseModel):
    lat: float
    lon: float


class Address(BaseModel):
    street: str
    city: str
    postal_code: str
    country: str = "US"
    location: GeoPoint | None = None


class OrderItem(BaseModel):
    sku: str
    quantity: int = Field(ge=1)
    unit_price: float


@dataclasses.dataclass
class MeetingRoom:
    building: str
    floor: int
    capacity: int = 6


class DateRange(BaseModel):
    start: dt.date
    end: dt.date


def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int = 1
) -> str:
    """Get the weather forecast for a city.

    Args:
        city: Name of the city, e.g. "Paris".
        unit: Temperature unit of the answer.
        days: Number of days to forecast, from 1 to 7.
    """
    raise NotImplementedError


def search_products(
    query: str,
    max_price: float | None = None,
    in_stock: bool = True,
    tags: list[str] | None = None,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Search the product catalogue.

    Args:
        query: Free-text search terms.
        max_price: Highest price to include, in dollars; no limit when omitted.
        in_stock: Only return products that can ship today.
        tags: Keep products carrying all of these tags.
        limit: Most results to return.
    """
    raise NotImplementedError


def book_flight(
    origin: str,
    destination: str,
    departure: dt.datetime,
    cabin: CabinClass = CabinClass.ECONOMY,
    passengers: int = 1,
) -> dict[str, str]:
    """Book a one-way flight.

    Parameters
    ----------
    origin : str
        IATA code of the departure airport.
    destination : str
        IATA code of the arrival airport.
    departure : datetime
        Local date and time of departure, ISO 8601.
    cabin : CabinClass
        Cabin to book.
    passengers : int
        Number of adult passengers.
    """
    raise NotImplementedError


def create_order(
    customer_id: int, items: list[OrderItem], shipping: Address, note: str | None = None
) -> str:
    """Place an order for a customer.

    Args:
        customer_id: The customer's account number.
        items: Products and quantities to order.
        shipping: Where to ship the order.
        note: Instructions for the courier.
    """
    raise NotImplementedError


def schedule_meeting(
    title: str,
    start: dt.datetime,
    duration_minutes: int,
    attendees: list[str],
    room: MeetingRoom | None = None,
) -> str:
    """Put a meeting in the attendees' calendars.

    Args:
        title: Subject shown in the invitation.
        start: When the meeting starts, with its time zone.
        duration_minutes: Length of the meeting.
        attendees: Email addresses of the people to invite.
        room: Room to book; a video call when omitted.
    """
    raise NotImplementedError


def update_settings(
    user_id: str,
    settings: dict[str, str],
    limits: dict[str, int] | None = None,
    dry_run: bool = False,
) -> dict[str, str]:
    """Change a user's settings.

    Parameters
    ----------
    user_id : str
        The user whose settings change.
    settings : dict
        Setting name to its new value.
    limits : dict, optional
        Quota name to its new limit.
    dry_run : bool
        Report what would change without changing it.
    """
    raise NotImplementedError


def send_email(
    to: Annotated[str, Field(description="Recipient's email address.")],
    subject: Annotated[str, Field(description="Subject line.")],
    body: str,
    priority: Priority = Priority.NORMAL,
    cc: list[str] | None = None,
) -> bool:
    """Send an email on the user's behalf.

    Args:
        body: Plain-text body of the message.
        priority: How the mail client should flag it.
        cc: Addresses to copy.
    """
    raise NotImplementedError


def run_sql(
    query: str,
    database: Literal["analytics", "billing"],
    timeout_s: float = 30.0,
    params: list[int | str] | None = None,
    read_only: bool = True,
) -> list[list[Any]]:
    """Run a SQL query and return its rows.

    Args:
        query: The SQL statement, with ``?`` placeholders.
        database: Which database to run it in.
        timeout_s: Seconds before the query is cancelled.
        params: Values for the placeholders, in order.
        read_only: Refuse statements that write.
    """
    raise NotImplementedError


def convert_currency(
    amount: float,
    from_currency: str,
    to_currency: str,
    on_date: dt.date | None = None,
    decimals: int = 2,
) -> float:
    """Convert an amount between currencies at a day's reference rate.

    Parameters
    ----------
    amount : float
        The amount to convert.
    from_currency : str
        ISO 4217 code of the amount's currency.
    to_currency : str
        ISO 4217 code to convert to.
    on_date : date, optional
        Day of the rate; today when omitted.
    decimals : int
        Digits to round the result to.
    """
    raise NotImplementedError


def summarize_documents(
    topic: str,
    period: DateRange,
    style: Literal["bullets", "paragraph", "headline"] = "bullets",
    max_words: int = 200,
    include_sources: bool = False,
    authors: list[str] | None = None,
) -> str:
    """Summarize the documents on a topic written in a period.

    Args:
        topic: What the documents should be about.
        period: Dates the documents were written between.
        style: Shape of the summary.
        max_words: Length limit of the summary.
        include_sources: Append the list of documents used.
        authors: Only documents by these authors.
    """
    raise NotImplementedError


CASES: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (get_weather, {"city": "Paris", "unit": "fahrenheit"}),
    (search_products, {"query": "usb-c hub", "max_price": 49.5, "tags": ["4k", "hdmi"]}),
    (
        book_flight,
        {
            "origin": "SFO",
            "destination": "NRT",
            "departure": "2025-03-14T09:30:00",
            "cabin": "business",
        },
    ),
    (
        create_order,
        {
            "customer_id": 1042,
            "items": [
                {"sku": "A-100", "quantity": 2, "unit_price": 9.99},
                {"sku": "B-7", "quantity": 1, "unit_price": 120.0},
            ],
            "shipping": {
                "street": "1 Main St",
                "city": "Springfield",
                "postal_code": "12345",
                "location": {"lat": 39.8, "lon": -89.6},
            },
        },
    ),
    (
        schedule_meeting,
        {
            "title": "Quarterly review",
            "start": "2025-04-01T15:00:00+02:00",
            "duration_minutes": 45,
            "attendees": ["ana@example.com", "bo@example.com", "cy@example.com"],
            "room": {"building": "HQ", "floor": 3},
        },
    ),
    (
        update_settings,
        {
            "user_id": "u-881",
            "settings": {"theme": "dark", "language": "fr"},
            "limits": {"storage_gb": 50},
        },
    ),
    (
        send_email,
        {
            "to": "ana@example.com",
            "subject": "Slides",
            "body": "Attached are the slides from today.",
            "priority": "high",
            "cc": ["bo@example.com"],
        },
    ),
    (
        run_sql,
        {
            "query": "select * from events where kind = ? and day > ?",
            "database": "analytics",
            "params": ["click", 20250101],
        },
    ),
    (convert_currency, {"amount": 125.5, "from_currency": "EUR", "to_currency": "JPY"}),
    (
        summarize_documents,
        {
            "topic": "solar storage",
            "period": {"start": "2024-01-01", "end": "2024-06-30"},
            "style": "paragraph",
            "authors": ["Lee", "Okafor"],
        },
    ),
]


# --- building each library's tool and validator -----------------------------------------------


def build_ours(fn: Callable[..., Any]) -> Any:
    return tool(fn)


def build_openai_agents(fn: Callable[..., Any]) -> Any:
    return agents.function_tool(fn, strict_mode=False)


def build_pydantic_ai(fn: Callable[..., Any]) -> Any:
    return pydantic_ai.Tool(fn, takes_ctx=False)


BUILDERS: dict[str, Callable[[Callable[..., Any]], Any]] = {
    "ours": build_ours,
    "openai-agents": build_openai_agents,
    "pydantic-ai": build_pydantic_ai,
}


def validators(fn: Callable[..., Any]) -> dict[str, Callable[[str], dict[str, Any]]]:
    """Per library, a function from the arguments' JSON text to the validated arguments by name."""
    ours = tool(fn)
    openai_schema = openai_function_schema(fn, strict_json_schema=False)
    openai_model = openai_schema.params_pydantic_model
    parameter_names = list(openai_schema.signature.parameters)
    pydantic_ai_validator = pydantic_ai.Tool(fn, takes_ctx=False).function_schema.validator

    def validate_openai_agents(text: str) -> dict[str, Any]:
        # As FunctionTool.on_invoke_tool prepares a call (agents/tool.py, _prepare_arguments).
        data = json.loads(text) if text else {}
        parsed = openai_model(**data) if data else openai_model()
        args, kwargs = openai_schema.to_call_args(parsed)
        return {**dict(zip(parameter_names, args, strict=False)), **kwargs}

    def validate_pydantic_ai(text: str) -> dict[str, Any]:
        # As ToolManager validates a call's string arguments (pydantic_ai/tool_manager.py).
        return pydantic_ai_validator.validate_json(text or "{}", allow_partial="off")  # type: ignore[no-any-return]

    return {
        "ours": ours.validate,
        "openai-agents": validate_openai_agents,
        "pydantic-ai": validate_pydantic_ai,
    }


def parameters_schema(library: str, built: Any) -> dict[str, Any]:
    if library == "ours":
        return built.parameters  # type: ignore[no-any-return]
    if library == "openai-agents":
        return built.params_json_schema  # type: ignore[no-any-return]
    return built.function_schema.json_schema  # type: ignore[no-any-return]


# --- measuring --------------------------------------------------------------------------------


def best_microseconds(statements: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Per library, the best-of-REPEAT time of one call in microseconds.

    The libraries take turns within each repeat, so a slow spell of the machine hits all of them
    rather than whichever happened to be running; each repeat lasts about SECONDS_PER_REPEAT.
    """
    timers = {library: timeit.Timer(statement) for library, statement in statements.items()}
    numbers = {
        library: max(1, int(SECONDS_PER_REPEAT / max(min(timer.repeat(number=1, repeat=3)), 1e-7)))
        for library, timer in timers.items()
    }
    best = dict.fromkeys(timers, math.inf)
    for _ in range(REPEAT):
        for library, timer in timers.items():
            best[library] = min(best[library], timer.timeit(numbers[library]) / numbers[library])
    return {library: seconds * 1e6 for library, seconds in best.items()}


def schema_disagreements(fn: Callable[..., Any]) -> list[str]:
    """Where the three schemas differ on property names, the required list, or a property's
    description (the text the model reads to fill the argument in)."""
    schemas = {
        library: parameters_schema(library, build(fn)) for library, build in BUILDERS.items()
    }
    reference = schemas["ours"]
    found = []
    for library, schema in schemas.items():
        for key in ("properties", "required"):
            if sorted(schema.get(key, [])) != sorted(reference.get(key, [])):
                found.append(
                    f"`{fn.__name__}` {key}: {library} has {sorted(schema.get(key, []))}, "
                    f"ours has {sorted(reference.get(key, []))}"
                )
        for name, ours in reference.get("properties", {}).items():
            theirs = schema.get("properties", {}).get(name, {})
            if theirs.get("description") != ours.get("description"):
                found.append(
                    f"`{fn.__name__}` description of `{name}`: {library} has "
                    f"{theirs.get('description')!r}, ours has {ours.get('description')!r}"
                )
    return found


def value_disagreements(fn: Callable[..., Any], text: str) -> list[str]:
    """Where the three libraries validate the same arguments to different values."""
    results = {library: validate(text) for library, validate in validators(fn).items()}
    reference = results["ours"]
    return [
        f"`{fn.__name__}` values: {library} validated to {result!r}, ours to {reference!r}"
        for library, result in results.items()
        if result != reference
    ]


def measure() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], list[str]]:
    build_us: dict[str, dict[str, float]] = {}
    validate_us: dict[str, dict[str, float]] = {}
    disagreements: list[str] = []
    for fn, arguments in CASES:
        name = fn.__name__
        text = json.dumps(arguments)
        disagreements += schema_disagreements(fn) + value_disagreements(fn, text)
        build_us[name] = best_microseconds(
            {library: functools.partial(build, fn) for library, build in BUILDERS.items()}
        )
        validate_us[name] = best_microseconds(
            {
                library: functools.partial(validate, text)
                for library, validate in validators(fn).items()
            }
        )
        print(
            f"{name:<22} build "
            + " ".join(f"{lib}={us:8.1f}us" for lib, us in build_us[name].items())
            + " | validate "
            + " ".join(f"{lib}={us:6.2f}us" for lib, us in validate_us[name].items()),
            flush=True,
        )
    return build_us, validate_us, disagreements


# --- reporting --------------------------------------------------------------------------------

PEERS = ("openai-agents", "pydantic-ai")


def markdown_table(title: str, timings: dict[str, dict[str, float]], digits: int) -> str:
    header = (
        f"| {title} | ours µs | openai-agents µs | pydantic-ai µs "
        "| ours / openai-agents | ours / pydantic-ai |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for name, row in timings.items():
        ratios = " | ".join(f"{row['ours'] / row[peer]:.2f}" for peer in PEERS)
        times = " | ".join(f"{row[lib]:.{digits}f}" for lib in ("ours", *PEERS))
        lines.append(f"| `{name}` | {times} | {ratios} |")
    geomeans = " | ".join(
        f"**{geometric_mean([row['ours'] / row[peer] for row in timings.values()]):.2f}**"
        for peer in PEERS
    )
    lines.append(f"| **geometric mean** | | | | {geomeans} |")
    return "\n".join(lines)


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(value) for value in values) / len(values))


def section_text(build_table: str, validate_table: str, disagreements: list[str]) -> str:
    if disagreements:
        agreement = "Checked, not timed: the libraries differed on\n\n" + "\n".join(
            f"- {line}" for line in disagreements
        )
    else:
        agreement = (
            "Checked, not timed: all three libraries agreed, for every function, on the property\n"
            "names, the required list and the property descriptions, and validated each call's\n"
            "arguments to equal values."
        )
    return f"""{SECTION_HEADING}

Command: `.venv/bin/python benchmarks/bench_schema.py`; run on {dt.date.today().isoformat()};
{library_versions(*VERSIONED)}.

Microseconds per operation, best of {REPEAT} repeats; ratio < 1 means ours is faster. Ten functions
mixing str/int/float/bool, Optional with defaults, Literal, Enum, list and dict parameters, nested
pydantic models, a dataclass, datetime/date, Google and NumPy docstrings, and
`Annotated[str, Field(description=...)]`.

**Build** a tool from a function, up to the point its JSON schema exists: ours `tool(fn)`;
`agents.function_tool(fn, strict_mode=False)`; `pydantic_ai.Tool(fn, takes_ctx=False)` (both peers
build eagerly in these calls; pydantic-ai also builds the return schema there).

{build_table}

**Validate** one call's arguments, given as the JSON string a model sends (function not called):
ours `Tool.validate(text)`; openai-agents `json.loads` + `params_pydantic_model(**data)` +
`FuncSchema.to_call_args` (what `FunctionTool.on_invoke_tool` does first); pydantic-ai
`function_schema.validator.validate_json(text)` (what its `ToolManager` does).

{validate_table}

Both peers run non-strict, like ours by default: openai-agents' strict mode refuses `dict[str, T]`
parameters.

{agreement}
"""


def main() -> None:
    print(
        f"timing {len(CASES)} functions x {len(BUILDERS)} libraries, best of {REPEAT}", flush=True
    )
    build_us, validate_us, disagreements = measure()
    build_table = markdown_table("build", build_us, digits=0)
    validate_table = markdown_table("validate", validate_us, digits=2)
    print(f"\n{build_table}\n\n{validate_table}\n")
    for line in disagreements:
        print(f"DISAGREEMENT {line}")
    write_section(SECTION_HEADING, section_text(build_table, validate_table, disagreements))
    print(f"wrote {RESULTS_PATH.relative_to(_REPO_ROOT)}")


if __name__ == "__main__":
    main()
