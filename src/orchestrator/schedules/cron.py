"""Cron expressions in a timezone: the ticks a schedule fires at.

Five fields (minute hour day month weekday), or six with seconds first, as Quartz, Hatchet and
node-cron write them. Across daylight-saving changes it does what cron users expect: a time
that does not exist that day (spring forward) fires at the first moment after the gap, and a
wall time that happens twice (fall back) fires once for a schedule that names its hours, while
one that runs every hour (`*` hours) keeps firing through both.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass

from croniter import CroniterError, croniter

from orchestrator.errors import Unprocessable

__all__ = ["CRON_PATTERN", "Cron", "cron_syntax", "known_timezone", "timezones"]


def _field(number: str, names: tuple[str, ...] = ()) -> str:
    """A cron field's values: `*`, a value or a range (which may wrap), each with a step, listed."""
    atom = f"(?:{number}" + "".join(f"|{name}|{name.lower()}" for name in names) + ")"
    item = rf"(?:\*|{atom}(?:-{atom})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


_SIXTY = _field(r"[0-5]?[0-9]")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Every cron this service takes, as a pattern the OpenAPI document states: [seconds] minute hour
# day month weekday, one space apart, each value in its range. A pattern cannot say that the
# 30th of February never comes: that one is refused by its computation (422).
CRON_PATTERN = (
    rf"^(?:{_SIXTY} )?{_SIXTY} {_field(r'(?:[01]?[0-9]|2[0-3])')} {_field(r'(?:0?[1-9]|[12][0-9]|3[01])')}"
    rf" {_field(r'(?:0?[1-9]|1[0-2])', _MONTHS)} {_field(r'[0-7]', _WEEKDAYS)}$"
)
_CRON = re.compile(CRON_PATTERN)
_SYNTAX = (
    "give five fields (minute hour day month weekday), or six with seconds first, one space apart:"
    " numbers in range (minute 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, weekday 0-7 or"
    " SUN-SAT), `*`, ranges `a-b`, steps `/n`, lists `a,b`"
)


# Every process reads the rules of the pinned tzdata package, never the host's files: two hosts
# with other rules (or another local zone) would compute other instants for one tick, and fire
# it twice or not at all.
zoneinfo.reset_tzpath(to=())
# Names that are no place's rules: the host's own zone, and tzdata's placeholders.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@functools.cache
def timezones() -> frozenset[str]:
    """The IANA names the pinned tzdata package holds."""
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def cron_syntax(expression: str) -> str:
    """`expression` if it is a cron this service takes; a ValueError saying what is, otherwise."""
    if not _CRON.fullmatch(expression):
        raise ValueError(_SYNTAX)
    return expression


def known_timezone(name: str) -> str:
    if name not in timezones():
        raise ValueError(f"{name!r} is not an IANA timezone name (such as Europe/Paris or UTC)")
    return name


# A tick further than this from the last: a schedule that never fires (the 30th of February).
_MAX_YEARS_BETWEEN_TICKS = 5
_SECOND = dt.timedelta(seconds=1)
# Hour fields that mean every hour: a schedule written so runs through a repeated hour too.
_EVERY_HOUR = frozenset({"*", "*/1", "0-23", "0-23/1"})


@dataclass(frozen=True)
class Cron:
    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: str, timezone: str) -> Cron:
        """The schedule's cron; Unprocessable naming the field that is wrong."""
        for field, check, value in (
            ("cron", cron_syntax, expression),
            ("timezone", known_timezone, timezone),
        ):
            try:
                check(value)
            except ValueError as exc:
                raise Unprocessable(f"{field}: {exc}", field=field) from None
        cron = cls(expression, timezone)
        try:
            cron.next_after(dt.datetime.now(dt.UTC))
        except (CroniterError, ValueError, KeyError) as exc:  # croniter's own messages are clear
            raise Unprocessable(f"cron: {exc}", field="cron") from None
        return cron

    @property
    def _zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def _with_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    @property
    def _names_its_hours(self) -> bool:
        hours = self.expression.split()[2 if self._with_seconds else 1]
        return hours not in _EVERY_HOUR

    def _ticks(self, start: dt.datetime, *, backwards: bool = False) -> croniter:
        return croniter(
            self.expression,
            start.astimezone(self._zone),
            second_at_beginning=self._with_seconds,
            max_years_between_matches=_MAX_YEARS_BETWEEN_TICKS,
            is_prev=backwards,
        )

    def _once(self, tick: dt.datetime) -> bool:
        """False for the second pass of a repeated wall time, for a schedule naming its hours."""
        if not self._names_its_hours:
            return True
        local = tick.astimezone(self._zone)
        first = local.replace(fold=0).utcoffset()
        return first == local.replace(fold=1).utcoffset() or local.utcoffset() == first

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first tick strictly after `moment` (aware), in UTC."""
        ticks = self._ticks(moment)
        while True:
            tick: dt.datetime = ticks.get_next(dt.datetime)
            if self._once(tick):
                return tick.astimezone(dt.UTC)

    def between(self, start: dt.datetime, end: dt.datetime, limit: int) -> list[dt.datetime]:
        """The ticks from `start` to `end`, both included; the first `limit` of them."""
        found: list[dt.datetime] = []
        tick = self.next_after(start - dt.timedelta(microseconds=1))
        while tick <= end and len(found) < limit:
            found.append(tick)
            tick = self.next_after(tick)
        return found

    def latest_until(self, moment: dt.datetime) -> dt.datetime:
        """The last tick at or before `moment` (aware), in UTC: the one a late round fires."""
        # Ticks fall on whole seconds: the ones at or before `moment` are before its next second.
        ticks = self._ticks(moment.replace(microsecond=0) + _SECOND, backwards=True)
        while True:
            tick: dt.datetime = ticks.get_prev(dt.datetime)
            if self._once(tick):
                return tick.astimezone(dt.UTC)
