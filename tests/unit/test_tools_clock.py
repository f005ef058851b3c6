"""The datetime tool: time zones (IANA, DST), calendar arithmetic, differences, weekdays."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.tools.base import ToolError
from gateway.tools.clock import Clock

FIXED = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # a Sunday; 01:30 EST, just before the US DST change
CLOCK = Clock(now=lambda: FIXED)


async def call(**arguments: Any) -> dict[str, Any]:
    return await CLOCK.run(arguments)


async def test_now_in_seoul() -> None:
    out = await call(operation="now", timezone="Asia/Seoul")
    assert out["datetime"] == "2026-03-08T15:30:00+09:00"
    assert out["weekday"] == "Sunday" and out["iso_weekday"] == 7
    assert out["utc_offset"] == "+09:00" and out["abbreviation"] == "KST"
    assert out["unix_seconds"] == int(FIXED.timestamp())


async def test_now_uses_the_real_clock_by_default() -> None:
    before = datetime.now(UTC).timestamp()
    out = await Clock().run({"operation": "now"})
    assert before - 1 <= out["unix_seconds"] <= datetime.now(UTC).timestamp() + 1


async def test_add_months_clamps_to_the_end_of_the_month() -> None:
    out = await call(operation="add", start="2024-01-31", months=1)
    assert out["date"] == "2024-02-29"
    out = await call(operation="add", start="2023-01-31", months=1)
    assert out["date"] == "2023-02-28"
    out = await call(operation="add", start="2024-02-29", years=1)
    assert out["date"] == "2025-02-28"


async def test_days_follow_the_calendar_and_hours_the_clock_across_dst() -> None:
    start = "2026-03-07T12:00:00"  # New York, the day before clocks go forward
    by_day = await call(operation="add", start=start, timezone="America/New_York", days=1)
    assert by_day["datetime"] == "2026-03-08T12:00:00-04:00"
    by_hours = await call(operation="add", start=start, timezone="America/New_York", hours=24)
    assert by_hours["datetime"] == "2026-03-08T13:00:00-04:00"


async def test_difference_in_days_and_calendar_units() -> None:
    out = await call(operation="diff", start="2024-01-31", end="2025-03-01")
    assert (out["years"], out["months"], out["days"], out["total_days"]) == (1, 1, 1, 395)
    back = await call(operation="diff", start="2025-03-01", end="2024-01-31")
    assert back["total_days"] == -395 and back["total_seconds"] == -out["total_seconds"]


async def test_difference_across_zones() -> None:
    out = await call(operation="diff", start="2026-01-01T00:00:00+09:00", end="2026-01-01T00:00:00+00:00")
    assert out["total_seconds"] == 9 * 3600


async def test_weekday_and_convert() -> None:
    out = await call(operation="weekday", start="2026-12-25")
    assert out["weekday"] == "Friday" and out["iso_week"] == 52
    converted = await call(
        operation="convert", start="2026-12-25T09:00:00", timezone="Asia/Seoul", to_timezone="Europe/London"
    )
    assert converted["datetime"] == "2026-12-25T00:00:00+00:00"


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        ({"operation": "now", "timezone": "Mars/Olympus"}, "execution_error", "unknown time zone"),
        ({"operation": "now", "timezone": "../../etc/passwd"}, "invalid_arguments", "not an IANA time zone"),
        ({"operation": "now", "timezone": "/etc/localtime"}, "invalid_arguments", "not an IANA time zone"),
        ({"operation": "add", "start": "tomorrow"}, "invalid_arguments", "not an ISO 8601"),
        ({"operation": "add"}, "invalid_arguments", "start is required"),
        ({"operation": "diff", "start": "2024-01-01"}, "invalid_arguments", "end is required"),
        ({"operation": "convert", "start": "2024-01-01"}, "invalid_arguments", "to_timezone is required"),
        ({"operation": "add", "start": "9999-12-31", "days": 1}, "execution_error", "years 1 to 9999"),
        ({"operation": "add", "start": "2024-01-01", "years": 9000}, "execution_error", "years 1 to 9999"),
        ({"operation": "sleep"}, "invalid_arguments", "operation"),
        ({"operation": "now", "extra": 1}, "invalid_arguments", "extra"),
    ],
)
async def test_errors_are_clear(arguments: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(ToolError) as caught:
        await CLOCK.run(arguments)
    assert caught.value.code == code
    assert message in caught.value.message
