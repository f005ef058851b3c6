"""Dates as letters write them (``2026. 3. 2.``, ``2026.03.02.``, ``2026-03-02``, ``2026년 3월 2일``,
``5 March 2026``, ``March 5, 2026``) → ISO ``YYYY-MM-DD``."""

from __future__ import annotations

import datetime as dt
import re

MONTHS = {
    name: index
    for index, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"

KO_DATE = re.compile(
    r"(?P<y>(?:19|20)\d\d)\s*(?:[.\-/]|년)\s*(?P<m>\d{1,2})\s*(?:[.\-/]|월)\s*(?P<d>\d{1,2})\s*(?:일|\.)?"
)
EN_DMY = re.compile(
    rf"(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<mon>{_MONTH})\s*,?\s+(?P<y>(?:19|20)\d\d)", re.I
)
EN_MDY = re.compile(
    rf"(?P<mon>{_MONTH})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s+(?P<y>(?:19|20)\d\d)", re.I
)
ANY_DATE = (KO_DATE, EN_DMY, EN_MDY)


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def match_iso(match: re.Match[str]) -> str | None:
    groups = match.groupdict()
    month = MONTHS[groups["mon"].lower().rstrip(".")] if "mon" in groups else int(groups["m"])
    return _iso(int(groups["y"]), month, int(groups["d"]))


def find_date(text: str, start: int = 0, end: int | None = None) -> tuple[str, int, int] | None:
    """The first valid date in ``text[start:end]``: (ISO date, span start, span end)."""
    end = len(text) if end is None else end
    best: tuple[str, int, int] | None = None
    for pattern in ANY_DATE:
        for match in pattern.finditer(text, start, end):
            iso = match_iso(match)
            if iso is None:
                continue
            if best is None or match.start() < best[1]:
                best = (iso, match.start(), match.end())
            break
    return best
