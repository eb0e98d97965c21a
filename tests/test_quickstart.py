"""The quickstart's honesty: each check reads what the model printed and calls a wrong answer
wrong, with the reason; the whole run against the shipped model prints a verdict per answer."""

from __future__ import annotations

import datetime
import io
import re

import pytest

from byzer_agents.quickstart import (
    MEETING_TEXT,
    Meeting,
    check_date_range,
    check_meeting,
    check_text_answer,
)

NOW = datetime.datetime(2026, 12, 2, 9, 30, 0)


def test_a_date_range_of_the_asked_length_ending_now_is_right() -> None:
    verdict = check_date_range("['2026-11-18 09:30:00', '2026-12-02 09:30:00']", 2, "week", now=NOW)
    assert verdict.right
    assert "right" in verdict.markup()


def test_a_date_range_of_the_wrong_length_is_wrong_and_says_how_long_it_is() -> None:
    # What copying the prompt's old example (count 1, unit day) produced.
    verdict = check_date_range("['2026-12-01 09:30:00', '2026-12-02 09:30:00']", 2, "week", now=NOW)
    assert not verdict.right
    assert "wrong" in verdict.markup()
    assert "spans 1 days, but the last 2 weeks span 14" in verdict.markup()


def test_a_range_of_the_right_length_that_does_not_end_today_is_wrong() -> None:
    verdict = check_date_range("from 2020-01-01 to 2020-01-15", 2, "week", now=NOW)
    assert not verdict.right
    assert "not today" in verdict.reasons[0]


def test_a_range_written_as_text_is_read_from_the_text() -> None:
    assert check_date_range("It runs from 2026-11-18 to 2026-12-02.", 14, "day", now=NOW).right


def test_an_answer_without_two_dates_is_wrong() -> None:
    verdict = check_date_range("2026-12-02 09:30:00", 2, "week", now=NOW)  # compute_now's answer
    assert not verdict.right
    assert "no date range" in verdict.reasons[0]


def test_a_text_answer_that_names_the_author_without_a_call_is_right() -> None:
    assert check_text_answer(
        [], "Pride and Prejudice was written by Jane Austen.", must_name="Jane Austen"
    ).right


def test_a_call_where_no_tool_fits_is_wrong() -> None:
    verdict = check_text_answer(["compute_now"], "", must_name="Jane Austen")
    assert not verdict.right
    assert "called compute_now" in verdict.markup()


def test_a_text_that_does_not_answer_is_not_counted_right() -> None:
    verdict = check_text_answer(
        [],
        "None of the tools I have can answer this, so I will not call one.",
        must_name="Jane Austen",
    )
    assert not verdict.right
    assert "does not say the answer (Jane Austen)" in verdict.markup()


def test_the_fields_the_text_gives_are_right() -> None:
    meeting = Meeting(topic="Budget review", day="Thursday", attendees=["Chen", "Alice", "Bob"])
    assert check_meeting(meeting, MEETING_TEXT).right


def test_a_description_copied_as_a_value_is_wrong_and_named() -> None:
    # What the shipped model answered when the prompt showed the schema's descriptions.
    meeting = Meeting(topic="What the meeting is about", day="Thursday", attendees=[])
    verdict = check_meeting(meeting, MEETING_TEXT)
    assert not verdict.right
    text = verdict.markup()
    assert "wrong" in text
    assert "topic 'What the meeting is about' is the field's description copied" in text
    assert "attendees is empty" in text


def test_a_value_not_in_the_text_is_wrong() -> None:
    meeting = Meeting(topic="budget review", day="Friday", attendees=["Alice", "Bob", "Dave"])
    verdict = check_meeting(meeting, MEETING_TEXT)
    assert not verdict.right
    assert "day 'Friday' is not in the text" in verdict.reasons
    assert "an attendee 'Dave' is not in the text" in verdict.reasons
    assert "attendees miss Chen" in verdict.reasons


def test_a_value_from_the_text_that_is_not_the_answer_is_wrong() -> None:
    meeting = Meeting(topic="numbers", day="Thursday", attendees=["Alice", "Bob", "Chen"])
    verdict = check_meeting(meeting, MEETING_TEXT)
    assert not verdict.right
    assert "topic 'numbers' is in the text, but the text says 'budget review'" in verdict.reasons


@pytest.mark.slow
def test_the_quickstart_prints_a_verdict_for_each_answer_and_what_to_try_next(
    ray_cluster: object,
) -> None:
    from rich.console import Console

    from byzer_agents.quickstart import run

    out = io.StringIO()
    run(Console(file=out, width=200, color_system=None))
    printed = out.getvalue()
    verdicts = re.findall(r"^verdict: (right|wrong): ", printed, re.M)
    assert len(verdicts) == 3
    assert f"{verdicts.count('right')} of 3 answers right" in printed
    assert "What to try next:" in printed and "byzer-agents serve" in printed
    if "wrong" in verdicts:
        assert "The shipped model got" in printed
