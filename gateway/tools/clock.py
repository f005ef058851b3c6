"""The ``datetime`` tool: the current time in an IANA time zone, date arithmetic and differences,
weekdays, and conversion between zones (:mod:`zoneinfo`, the system's tz database).

Arithmetic follows the calendar for ``years``/``months``/``weeks``/``days`` (local wall time:
``2024-01-31 + 1 month`` is ``2024-02-29``; a day across a DST change is still a calendar day)
and elapsed time for ``hours``/``minutes``/``seconds``. A date or datetime without an offset is
read in ``timezone``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from gateway.tools.base import ToolError, parse_arguments, schema_of

_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: Literal["now", "add", "diff", "weekday", "convert"] = Field(
        description="now: current time; add: date/datetime + an offset; diff: end - start; "
        "weekday: the day of the week of a date; convert: a datetime into to_timezone"
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone, e.g. Asia/Seoul")
    start: str | None = Field(
        default=None, max_length=64, description="ISO 8601 date or datetime (add, diff, weekday, convert)"
    )
    end: str | None = Field(default=None, max_length=64, description="ISO 8601 date or datetime (diff)")
    to_timezone: str | None = Field(default=None, max_length=64, description="IANA time zone (convert)")
    years: int = Field(default=0, ge=-10_000, le=10_000)
    months: int = Field(default=0, ge=-120_000, le=120_000)
    weeks: int = Field(default=0, ge=-600_000, le=600_000)
    days: int = Field(default=0, ge=-4_000_000, le=4_000_000)
    hours: int = Field(default=0, ge=-100_000_000, le=100_000_000)
    minutes: int = Field(default=0, ge=-(10**10), le=10**10)
    seconds: int = Field(default=0, ge=-(10**12), le=10**12)


class Clock:
    name = "datetime"
    description = (
        "Dates and times: the current time in an IANA time zone (e.g. Asia/Seoul), adding years/"
        "months/weeks/days/hours/minutes/seconds to a date, the difference between two dates, "
        "the weekday of a date, and converting a time between zones."
    )

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self.parameters = schema_of(_Arguments)

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        args = parse_arguments(_Arguments, arguments)
        zone = zone_of(args.timezone)
        try:
            if args.operation == "now":
                return {"operation": "now", **describe(self._now().astimezone(zone))}
            start = _moment(_required(args.start, "start"), zone)
            if args.operation == "weekday":
                return {"operation": "weekday", **describe(start)}
            if args.operation == "convert":
                target = zone_of(_required(args.to_timezone, "to_timezone"))
                return {"operation": "convert", **describe(start.astimezone(target))}
            if args.operation == "add":
                return {"operation": "add", **describe(_add(start, args))}
            end = _moment(_required(args.end, "end"), zone)
            return {"operation": "diff", **difference(start, end)}
        except OverflowError:
            raise ToolError("execution_error", "the result is outside the years 1 to 9999") from None


def zone_of(name: str) -> ZoneInfo:
    if not _ZONE_NAME.match(name):
        raise ToolError("invalid_arguments", f"{name[:64]!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError("execution_error", f"unknown time zone {name!r}") from None


def _required(value: str | None, field: str) -> str:
    if value is None:
        raise ToolError("invalid_arguments", f"{field} is required for this operation")
    return value


def _moment(text: str, zone: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolError("invalid_arguments", f"{text[:64]!r} is not an ISO 8601 date or datetime") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _add(start: datetime, args: _Arguments) -> datetime:
    month_index = start.year * 12 + (start.month - 1) + args.years * 12 + args.months
    year, month = divmod(month_index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    wall = start.replace(year=year, month=month + 1, day=day) + timedelta(weeks=args.weeks, days=args.days)
    elapsed = timedelta(hours=args.hours, minutes=args.minutes, seconds=args.seconds)
    return (wall.astimezone(UTC) + elapsed).astimezone(start.tzinfo)


def describe(moment: datetime) -> dict[str, Any]:
    offset = moment.utcoffset() or timedelta(0)
    return {
        "datetime": moment.isoformat(),
        "date": moment.date().isoformat(),
        "time": moment.strftime("%H:%M:%S"),
        "weekday": calendar.day_name[moment.weekday()],
        "iso_weekday": moment.isoweekday(),
        "iso_week": moment.isocalendar().week,
        "timezone": str(moment.tzinfo),
        "abbreviation": moment.tzname(),
        "utc_offset": _offset_text(offset),
        "unix_seconds": int(moment.timestamp()),
    }


def difference(start: datetime, end: datetime) -> dict[str, Any]:
    """``end - start``: elapsed seconds, whole calendar days, and years/months/days on the calendar
    of ``start``'s zone."""
    elapsed = end.astimezone(UTC) - start.astimezone(UTC)
    sign = -1 if elapsed < timedelta(0) else 1
    early, late = (start, end) if sign > 0 else (end, start)
    late_local = late.astimezone(early.tzinfo)
    months = (late_local.year - early.year) * 12 + late_local.month - early.month
    if (late_local.day, late_local.time()) < (early.day, early.time()):
        months -= 1
    anchor_index = early.year * 12 + early.month - 1 + months
    anchor_year, anchor_month = divmod(anchor_index, 12)
    anchor_day = min(early.day, calendar.monthrange(anchor_year, anchor_month + 1)[1])
    anchor: date = date(anchor_year, anchor_month + 1, anchor_day)
    days = (late_local.date() - anchor).days - (1 if late_local.time() < early.time() else 0)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total_seconds": int(elapsed.total_seconds()),
        "total_days": sign
        * ((late_local.date() - early.date()).days - (1 if late_local.time() < early.time() else 0)),
        "years": sign * (months // 12),
        "months": sign * (months % 12),
        "days": sign * max(days, 0),
    }


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
