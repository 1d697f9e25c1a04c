"""Which release stage each month of a Japan Customs file is (docs/sources.md, "Japan Customs: release calendar").

Release calendar (customs yougo_e.htm and the MOF FAQ):
- 輸入9桁速報 9-digit provisional: around the end of the month after the reference month;
- 輸入確報 detailed: one month later (none for December);
- 確々報 revised: March of the next year (whole year replaced, from 2020 data);
- 確定 fixed: November of the next year (final; whole year replaced).

One file carries several stages: a file published at the end of August holds July as 9-digit
provisional and January to June as detailed. e-Stat's file title says so
(`1-6月：確報、7月：輸入9桁速報`, `parse_title_stages`); without a title (an inbox file) the stage
of every month is inferred from the calendar (`infer_stages`).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from flows.periods import Month

STAGES = ("provisional_9digit", "detailed", "revised", "fixed")  # in publication order
# Slack after the nominal 9-digit date before a month counts as the detailed release.
_DETAILED_AFTER_DAYS = 20

# Stage words in e-Stat titles, longest first (確々報 contains 確報, 輸入9桁速報 contains 速報).
# 速報 alone (the export files' first stage) is the first stage with 9-digit x country figures.
_STAGE_WORDS = (("確々報", "revised"), ("確定", "fixed"), ("9桁速報", "provisional_9digit"),
                ("確報", "detailed"), ("速報", "provisional_9digit"))
_SEGMENT = re.compile(r"(\d{1,2})\s*(?:[-~〜～]\s*(\d{1,2}))?\s*月\s*[:：]?\s*([^、,，)）\s]+)")


def stage_of_word(text: str) -> str | None:
    for word, stage in _STAGE_WORDS:
        if word in text:
            return stage
    return None


def parse_title_stages(title: str) -> dict[int, str]:
    """{month: stage} from an e-Stat file title such as `2026年7月分 品別国別表 (輸入 1-6月：確報、7月：輸入9桁速報)`.

    A title naming one stage and no months (`2025年分 ... (確定)`) gives that stage to every
    month 1..12. Months the title does not name are absent (the caller infers them)."""
    t = unicodedata.normalize("NFKC", title)
    inner = re.findall(r"[(（]([^()（）]*)[)）]", t)
    text = inner[-1] if inner else t
    out: dict[int, str] = {}
    for first, last, word in _SEGMENT.findall(text):
        stage = stage_of_word(word)
        if stage is None:
            continue
        a, b = int(first), int(last or first)
        if 1 <= a <= b <= 12:
            out.update({m: stage for m in range(a, b + 1)})
    if not out:
        stage = stage_of_word(text)
        if stage is not None:
            out = {m: stage for m in range(1, 13)}
    return out


def nominal_provisional_date(year: int, last_month: int) -> dt.date:
    """The nominal 9-digit provisional date: last day of the month after the last month."""
    return Month(year, last_month).shift(1).last_day


def infer_stages(year: int, last_month: int, published: dt.date | None) -> tuple[dt.date, dict[int, str]]:
    """(vintage date, {month: stage}) of a file holding months 1..last_month of `year`.

    Without a stated publication date, the vintage is the nominal 9-digit provisional date of
    the last month (so re-ingesting a file changes nothing): the last month is provisional, the
    earlier ones detailed (their detailed release came a month after their provisional one).
    """
    months = range(1, last_month + 1)
    if published is None:
        vintage = nominal_provisional_date(year, last_month)
        return vintage, {m: ("provisional_9digit" if m == last_month else "detailed") for m in months}
    if last_month == 12 and published >= dt.date(year + 1, 11, 1):
        return published, {m: "fixed" for m in months}
    if last_month == 12 and published >= dt.date(year + 1, 3, 1):
        return published, {m: "revised" for m in months}
    stages = {}
    for m in months:
        detailed_from = nominal_provisional_date(year, m) + dt.timedelta(days=_DETAILED_AFTER_DAYS)
        stages[m] = "detailed" if published > detailed_from else "provisional_9digit"
    return published, stages


def file_stages(year: int, last_month: int, published: dt.date | None,
                stated: dict[int, str] | None) -> tuple[dt.date, dict[int, str]]:
    """Stages of every month carried: as the title states them, the calendar filling the rest."""
    vintage, inferred = infer_stages(year, last_month, published)
    if stated:
        inferred.update({m: s for m, s in stated.items() if m <= last_month})
    return vintage, inferred
