"""`rarewatch sources check`: is each live source reachable, and are its pages still in a shape rarewatch reads?

For each source: discover the latest release due (stepping back a little when it is not out yet),
fetch the smallest file of it and parse it, writing nothing anywhere. The report says, per
source: reachable, layout recognised, latest release seen and its date, what is due next. The
monthly flow runs the same checks before a live run and stops at once when a layout is unknown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import requests

from flows.catalogue import Catalogue
from flows.errors import FetchError, LayoutError, NotPublished, RarewatchError, ReleaseFileError
from flows.httpclient import session
from flows.periods import Month, Period, Year
from flows.settings import Settings
from flows.sources import READ_ONLY, Source, registry

STEPS_BACK = 3  # periods tried before the one due, when it is not published yet


@dataclass
class SourceCheck:
    source: str
    reachable: bool
    recognised: bool
    latest: str | None = None  # latest release period seen
    published: str | None = None  # its publication date, when the source states it
    due_next: str | None = None
    files: int = 0
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.recognised


def _back(period: Period, n: int) -> Period:
    return Year(period.year - n) if isinstance(period, Year) else period.shift(-n)


def _start(source: Source, now: dt.datetime) -> Period:
    due = source.due(now)
    if due is not None:
        return due
    return Month(2020, 12) if source.name == "meti" else Month(now.year, now.month).shift(-1)  # METI ended in 2020


def check_source(settings: Settings, source: Source, now: dt.datetime,
                 http: requests.Session | None = None, period: Period | None = None) -> SourceCheck:
    """Discovery and one sample file of a source's latest release (or of `period`), parsed, nothing written."""
    http = http or session(settings, source.name)
    token = READ_ONLY.set(True)
    try:
        start = period or _start(source, now)
        last_miss: Exception | None = None
        for n in range(STEPS_BACK + 1):
            period = _back(start, n)
            try:
                refs = source.discover(settings, http, period)
            except LayoutError as e:
                return SourceCheck(source.name, True, False, problem=str(e))
            except NotPublished as e:
                last_miss = e  # not out yet: try the period before
                continue
            except FetchError as e:
                return SourceCheck(source.name, False, False, problem=str(e))
            if not refs:
                last_miss = FetchError(source.name, "-", f"nothing listed for {period}")
                continue
            sample = refs[0]
            try:
                data = source.fetch(settings, http, sample)
                parsed = source.parse(sample, data, "0" * 64, Catalogue.load())
            except (ReleaseFileError, LayoutError) as e:
                return SourceCheck(source.name, True, False, str(period), files=len(refs), problem=str(e))
            except FetchError as e:
                return SourceCheck(source.name, False, False, str(period), files=len(refs), problem=str(e))
            published = max((r.published for r in refs if r.published), default=None) or parsed.vintage
            nxt = Year(period.year + 1) if isinstance(period, Year) else period.shift(1)
            due_next = None if source.name == "meti" else str(nxt)
            return SourceCheck(source.name, True, True, str(period), str(published) if published else None,
                               due_next, len(refs))
        return SourceCheck(source.name, True, True, None, None, str(start), 0,
                           problem=f"no release found in the last {STEPS_BACK + 1} periods: {last_miss}")
    except RarewatchError as e:
        return SourceCheck(source.name, False, False, problem=str(e))
    finally:
        READ_ONLY.reset(token)


def check_sources(settings: Settings, names: list[str] | None = None,
                  now: dt.datetime | None = None) -> list[SourceCheck]:
    known = registry()
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known: {sorted(known)}")
    now = now or dt.datetime.now(dt.UTC)
    return [check_source(settings, known[n], now) for n in (names or list(known))]


def report(checks: list[SourceCheck]) -> str:
    """The checks as a Markdown table (console and Prefect artifact alike)."""
    lines = ["| source | reachable | layout recognised | latest release | published | due next | problem |",
             "|---|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.source} | {'yes' if c.reachable else 'NO'} | {'yes' if c.recognised else 'NO'} | "
                     f"{c.latest or '-'} | {c.published or '-'} | {c.due_next or '-'} | "
                     f"{(c.problem or '').replace('|', '/')[:300]} |")
    return "\n".join(lines)


def as_dicts(checks: list[SourceCheck]) -> list[dict]:
    return [asdict(c) | {"ok": c.ok} for c in checks]
