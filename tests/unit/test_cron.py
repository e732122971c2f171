"""Cron ticks in a timezone, across daylight-saving changes, and the refusals naming a field."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.errors import Unprocessable
from orchestrator.schedules.cron import Cron

UTC = dt.UTC


def ticks(cron: Cron, start: dt.datetime, count: int) -> list[dt.datetime]:
    found = []
    for _ in range(count):
        start = cron.next_after(start)
        found.append(start)
    return found


def test_a_daily_time_inside_the_spring_gap_fires_once_just_after_it():
    # Paris, 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    cron = Cron.parse("30 2 * * *", "Europe/Paris")
    assert ticks(cron, dt.datetime(2026, 3, 27, 12, tzinfo=UTC), 3) == [
        dt.datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST, the first moment after the gap
        dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_a_daily_time_the_autumn_repeats_fires_once():
    # Paris, 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    cron = Cron.parse("30 2 * * *", "Europe/Paris")
    assert ticks(cron, dt.datetime(2026, 10, 23, 12, tzinfo=UTC), 3) == [
        dt.datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 only
        dt.datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_an_hourly_schedule_keeps_firing_every_hour_through_the_repeated_hour():
    cron = Cron.parse("30 * * * *", "Europe/Paris")
    assert ticks(cron, dt.datetime(2026, 10, 24, 23, tzinfo=UTC), 4) == [
        dt.datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 again, an hour later
        dt.datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize("hours", ["*/1", "0-23"])
def test_every_hour_written_another_way_still_fires_through_the_repeated_hour(hours):
    cron = Cron.parse(f"30 {hours} * * *", "Europe/Paris")
    assert ticks(cron, dt.datetime(2026, 10, 25, 0, tzinfo=UTC), 2) == [
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]


def test_six_fields_count_seconds_first():
    cron = Cron.parse("*/20 * * * * *", "UTC")
    assert ticks(cron, dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC), 3) == [
        dt.datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 0, 0, 40, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC),
    ]


def test_the_latest_tick_until_a_moment_includes_the_moment_itself():
    cron = Cron.parse("* * * * * *", "UTC")
    assert cron.latest_until(dt.datetime(2026, 1, 1, 0, 0, 5, 500_000, tzinfo=UTC)) == dt.datetime(
        2026, 1, 1, 0, 0, 5, tzinfo=UTC
    )
    assert cron.latest_until(dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)) == dt.datetime(
        2026, 1, 1, 0, 0, 5, tzinfo=UTC
    )
    nightly = Cron.parse("0 3 * * *", "Europe/Paris")
    # A week away: the latest missed night, not the first.
    assert nightly.latest_until(dt.datetime(2026, 6, 8, 12, tzinfo=UTC)) == dt.datetime(
        2026, 6, 8, 1, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("cron", "timezone", "field", "says"),
    [
        ("* * *", "UTC", "cron", "five fields"),
        ("* * * * * * *", "UTC", "cron", "five fields"),
        ("61 * * * *", "UTC", "cron", "minute 0-59"),
        ("0 0 31 2 *", "UTC", "cron", ""),  # the 31st of February never comes
        ("* * * * *", "Mars/Olympus", "timezone", "IANA"),
        ("* * * * *", "../../etc/passwd", "timezone", "IANA"),
        ("* * * * *", "", "timezone", "IANA"),
    ],
)
def test_a_wrong_cron_or_timezone_is_refused_naming_the_field(cron, timezone, field, says):
    with pytest.raises(Unprocessable) as refused:
        Cron.parse(cron, timezone)
    assert refused.value.extra["field"] == field
    assert says in refused.value.detail
