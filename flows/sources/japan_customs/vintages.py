"""Which Japan Customs release a file is, from its year, last month and publication date.

Release calendar (REFERENCE 1.4, customs yougo_e.htm and the MOF FAQ):
- 輸入9桁速報 9-digit provisional: around the end of the month after the reference month;
- 輸入確報 detailed: one month later (none for December);
- 確々報 revised: March of the next year (whole year replaced, from 2020 data);
- 確定 fixed: November of the next year (final; whole year replaced).
"""

from __future__ import annotations

import datetime as dt

from flows.periods import Month

# Slack after the nominal 9-digit date before a file counts as the detailed release.
_DETAILED_AFTER_DAYS = 20


def nominal_provisional_date(year: int, last_month: int) -> dt.date:
    """The nominal 9-digit provisional date: last day of the month after the last month."""
    return Month(year, last_month).shift(1).last_day


def infer_release(year: int, last_month: int, published: dt.date | None) -> tuple[dt.date, str]:
    """(vintage date, release kind) of a file holding months 1..last_month of `year`.

    Without a stated publication date, the vintage is the nominal 9-digit provisional date:
    the same file always gets the same vintage, so re-ingesting it changes nothing.
    """
    if published is None:
        return nominal_provisional_date(year, last_month), "provisional_9digit"
    if last_month == 12 and published >= dt.date(year + 1, 11, 1):
        return published, "fixed"
    if last_month == 12 and published >= dt.date(year + 1, 3, 1):
        return published, "revised"
    if published > nominal_provisional_date(year, last_month) + dt.timedelta(days=_DETAILED_AFTER_DAYS):
        return published, "detailed"
    return published, "provisional_9digit"
