"""Months: parsing `YYYY-MM`, month arithmetic, and which month's release is due."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Month":
        m = _MONTH.match(text.strip())
        if not m:
            raise ValueError(f"not a month: {text!r} (expected YYYY-MM)")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shift(self, months: int) -> "Month":
        i = self.year * 12 + (self.month - 1) + months
        return Month(i // 12, i % 12 + 1)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])


@dataclass(frozen=True, order=True)
class Year:
    """A calendar year, for sources published annually (Comtrade annual data)."""

    year: int

    def __str__(self) -> str:
        return f"{self.year:04d}"

    @property
    def months(self) -> list[Month]:
        return [Month(self.year, m) for m in range(1, 13)]


@dataclass(frozen=True, order=True)
class MonthSpan:
    """Months first..last inclusive (a backfill's range)."""

    first: Month
    last: Month

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"

    def __contains__(self, m: object) -> bool:
        return isinstance(m, Month) and self.first <= m <= self.last


Period = Month | Year


def parse_period(text: str) -> Period:
    """`YYYY-MM` (a month) or `YYYY` (a year)."""
    t = text.strip()
    if re.match(r"^\d{4}$", t):
        return Year(int(t))
    return Month.parse(t)


def covers(period: Period | MonthSpan, months: list[Month]) -> bool:
    """Does a release carrying `months` carry `period` (a month, or any month of a year)?"""
    if isinstance(period, Year):
        return any(m.year == period.year for m in months)
    if isinstance(period, MonthSpan):
        return any(m in period for m in months)
    return period in months


def month_range(start: Month, end: Month) -> list[Month]:
    """Every month from start to end inclusive."""
    out, m = [], start
    while m <= end:
        out.append(m)
        m = m.shift(1)
    return out


def latest_gacc_month(now: datetime | date) -> Month:
    """Latest month whose China Customs preliminary release is out: around the 7th-10th of the
    following month (docs/sources.md §2), so month m is due from the 10th of m+1."""
    today = now.date() if isinstance(now, datetime) else now
    m = Month(today.year, today.month).shift(-1)
    return m if today.day >= 10 else m.shift(-1)


def latest_japan_customs_month(now: datetime | date) -> Month:
    """Latest month whose 9-digit import release is out at `now`.

    Japan Customs publishes the first 9-digit x country imports (輸入9桁速報) around the end of
    the following month (docs/sources.md §1.4), so month m is due once the last day of m+1 has come.
    """
    today = now.date() if isinstance(now, datetime) else now
    m = Month(today.year, today.month).shift(-1)  # m + 1 == this month
    if today < m.shift(1).last_day:
        m = m.shift(-1)
    return m
