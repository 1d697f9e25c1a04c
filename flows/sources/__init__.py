"""Sources: one sub-package each, all of the same shape.

A source finds releases (`discover` online, `inbox` offline), fetches their bytes, parses them
to a clean frame and names the pandera model that frame must satisfy. Everything else (raw zone,
validation, quarantine, publishing, indicators) is shared and lives in `flows.pipeline`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import polars as pl

from flows.periods import Month

if TYPE_CHECKING:
    import pandera.polars as pa
    import requests

    from flows.catalogue import Catalogue
    from flows.settings import Settings
    from flows.warehouse import PartitionSpec


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release, before it is fetched."""

    source: str
    name: str  # file name as published (or as dropped in the inbox)
    url: str  # http(s) URL, or file URI for an inbox file
    published: dt.date | None = None  # publication date when the source states it
    period: Month | None = None  # reference month when known before parsing


@dataclass
class Parsed:
    """A release file parsed to clean rows, or the reasons it cannot be."""

    frame: pl.DataFrame  # clean rows (not yet checked against the dataset's model)
    failures: pl.DataFrame  # line, column, check, value: empty when the file is sound
    vintage: dt.date | None = None
    release: str | None = None
    months: list[Month] = field(default_factory=list)  # months the file carries
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out on purpose, by reason


FAILURE_SCHEMA = {"line": pl.Int64, "column": pl.String, "check": pl.String, "value": pl.String}


def no_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILURE_SCHEMA)


class Source(Protocol):
    """What every source provides.

    Optional hooks, used when a source has them:
    - `due(now) -> Period | None`: its latest release due at a scheduled time (None: nothing due);
    - `suffixes`: file endings it accepts from the inbox;
    - `latest_key`: columns within which the newest vintage wins;
    - `vintage_fallback = "first_seen"`: files without a publication date get the day first seen;
    - `overlapping_requests = True`: one record may answer two requests (de-duplicated on landing);
    - `trade(clean, catalogue)` + `value_unit` (+ `windows(clean)`): Japan's imports by partner,
      for partner_shares and import_dependency;
    - `derive(latest)`: the source's own derived datasets; `revisions(clean, catalogue)`.
    """

    name: str  # e.g. "japan_customs"
    dataset: str  # clean dataset name, e.g. "japan_customs_trade"
    spec: "PartitionSpec"
    model: "type[pa.DataFrameModel]"
    replace_key: tuple[str, ...]  # rows of an incoming file replace stored rows with the same key values

    def discover(self, settings: "Settings", http: "requests.Session", period: Month) -> list[ReleaseFile]: ...

    def fetch(self, settings: "Settings", http: "requests.Session", ref: ReleaseFile) -> bytes: ...

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: "Catalogue") -> Parsed: ...

    def trade(self, clean: pl.DataFrame, catalogue: "Catalogue") -> pl.DataFrame: ...


_VINTAGE_IN_NAME = re.compile(r"(?:^|[_\-.])v(?:intage[=_-]?)?(\d{4})-?(\d{2})-?(\d{2})(?=[_\-.]|$)")


def inbox_files(source: str, inbox: Path, suffixes: tuple[str, ...]) -> list[ReleaseFile]:
    """Files dropped in `<inbox>/<source>/`, sorted by name.

    A publication date may be given in the file name as `_vYYYYMMDD` (or `_vintage=YYYY-MM-DD`),
    since a file on disk no longer says when it was published.
    """
    folder = inbox / source
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in suffixes:
            continue
        published = None
        m = _VINTAGE_IN_NAME.search(p.stem)
        if m:
            published = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        out.append(ReleaseFile(source=source, name=p.name, url=p.resolve().as_uri(), published=published))
    return out


def registry() -> dict[str, Source]:
    """Every source, by name."""
    from flows.sources.comtrade import Comtrade
    from flows.sources.gacc import Gacc
    from flows.sources.japan_customs import JapanCustoms
    from flows.sources.meti import Meti

    sources: list[Source] = [JapanCustoms(), Gacc(), Comtrade(), Meti()]
    return {s.name: s for s in sources}
