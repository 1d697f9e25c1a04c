"""Sources: one sub-package each, all of the same shape.

A source finds releases (`discover` online, `inbox` offline), fetches their bytes, parses them
to a clean frame and names the pandera model that frame must satisfy. Everything else (raw zone,
validation, quarantine, publishing, indicators) is shared and lives in `flows.pipeline`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from flows.periods import Month, Period

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
    # release stage of each month when the source states it (e-Stat file titles): ((7, "provisional_9digit"), ...)
    stages: tuple[tuple[int, str], ...] = ()
    note: str | None = None  # what discovery knows of the file (e.g. its chapter block)


@dataclass
class Parsed:
    """A release file parsed to clean rows, or the reasons it cannot be."""

    frame: pl.DataFrame  # clean rows (not yet checked against the dataset's model)
    failures: pl.DataFrame  # line, column, check, value: empty when the file is sound
    vintage: dt.date | None = None
    release: str | None = None
    months: list[Month] = field(default_factory=list)  # months the file carries
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out on purpose, by reason
    stages: dict[int, str] = field(default_factory=dict)  # month -> release stage, when months differ
    # A file the source recognises but does not read (e.g. a China Customs table other than its
    # own): never a failure, recorded as skipped with this reason.
    skip: str | None = None
    # Rows refused on their own (line, column, check, value) while the rest of the file lands:
    # kept in quarantine with the reason and counted, e.g. Comtrade records that contradict each other.
    rejected: pl.DataFrame | None = None
    # Source-specific rows for `Source.check_rows`, which checks a whole batch of files at once
    # (pandera's cost is per call: once per batch, not once per file).
    rows: object | None = None

    @property
    def release_text(self) -> str | None:
        """The file's release for the manifest: its stages month by month when they differ."""
        if self.stages and len(set(self.stages.values())) > 1:
            return month_runs(self.stages)
        return self.release


def month_runs(labels: dict[int, str]) -> str:
    """`1-6:detailed,7:provisional_9digit`: consecutive months with the same label, as one run."""
    runs: list[list[int]] = []
    for m in sorted(labels):
        if runs and runs[-1][-1] == m - 1 and labels[runs[-1][-1]] == labels[m]:
            runs[-1].append(m)
        else:
            runs.append([m])
    return ",".join(f"{r[0]}-{r[-1]}:{labels[r[0]]}" if len(r) > 1 else f"{r[0]}:{labels[r[0]]}" for r in runs)


def skipped_file(reason: str) -> Parsed:
    """A file recognised and deliberately not read (see `Parsed.skip`)."""
    return Parsed(frame=pl.DataFrame(), failures=no_failures(), skip=reason)


FAILURE_SCHEMA = {"line": pl.Int64, "column": pl.String, "check": pl.String, "value": pl.String}


def no_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILURE_SCHEMA)


class Source:
    """What every source is: a name, its clean dataset and model, and the steps find, fetch, parse.

    Optional capabilities are declared, never discovered: a subclass overrides the class
    attributes below and the hooks it offers; the defaults mean "not offered".
    """

    name: str  # e.g. "japan_customs"
    dataset: str  # clean dataset name, e.g. "japan_customs_trade"
    spec: "PartitionSpec"
    model: "type[pa.DataFrameModel]"
    replace_key: tuple[str, ...] = ("vintage", "source_file")  # incoming rows replace stored rows with these values

    # --- declared capabilities ----------------------------------------------------------------
    suffixes: tuple[str, ...] = (".csv",)  # file endings accepted from the inbox
    inbox_folder: str | None = None  # inbox sub-folder when not the source's name (sources sharing one)
    latest_key: tuple[str, ...] = ()  # columns within which the newest vintage wins
    # columns of latest_key compared normalised (case, spaces, punctuation): a page republished
    # with "Rare earth" for "Rare Earth" replaces the earlier row instead of standing beside it
    label_columns: tuple[str, ...] = ()
    vintage_fallback: str | None = None  # "first_seen": files without a publication date get the day first seen
    overlapping_requests: bool = False  # one record may answer two requests (de-duplicated on landing)
    value_unit: str | None = None  # unit of `trade` values, when the source offers `trade`
    # columns of the clean dataset its indicators read (trade, windows, derive, revisions); None: all
    indicator_columns: tuple[str, ...] | None = None

    def own_host(self, settings: "Settings") -> str | None:
        """The one host the source may fetch from (a redirect elsewhere is refused); None: any."""
        return None

    def due(self, now: dt.datetime) -> "Period | None":
        """Its latest release due at a scheduled time (None: nothing due)."""
        return None

    def discover(self, settings: "Settings", http: "requests.Session", period: "Period") -> list[ReleaseFile]:
        raise NotImplementedError

    def fetch(self, settings: "Settings", http: "requests.Session", ref: ReleaseFile) -> bytes:
        raise NotImplementedError

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: "Catalogue") -> Parsed:
        raise NotImplementedError

    def release_periods(self, months: "list[Month]") -> "list[tuple[Period, list[Month]]]":
        """The releases to fetch for a range of months, each with the months it carries; by
        default one release per month. A source whose release carries several months (a Japan
        Customs file holds its year so far) fetches each release once, not once per month."""
        return [(m, [m]) for m in months]

    def check_rows(self, parsed: "list[Parsed]") -> list[pl.DataFrame]:
        """Checks of a batch of parsed files beyond the clean model (e.g. a release's wide rows),
        run once for the batch; failures (line, column, check, value) per file, in order."""
        return [no_failures() for _ in parsed]

    def recognises(self, head: bytes, name: str) -> bool:
        """Is a file dropped at the inbox root one of this source's (by its first bytes)?"""
        return False

    def trade(self, clean: pl.DataFrame, catalogue: "Catalogue") -> pl.DataFrame | None:
        """Japan's imports by metal and partner for partner_shares and import_dependency; None: not offered."""
        return None

    def indicator_frame(self, scan: pl.LazyFrame, catalogue: "Catalogue") -> pl.DataFrame:
        """What `trade`, `windows` and `derive` read, from a lazy scan of the clean dataset
        (its `indicator_columns`): by default every row of the newest vintage. A source with a
        long history sums it lazily instead (Japan Customs: per flow, month, metal and country)."""
        return latest_vintage(scan, self.latest_key, self.spec.partition_by, self.label_columns).collect()

    def windows(self, clean: pl.DataFrame) -> pl.DataFrame | None:
        """The indicator periods of `trade`; None: M, 12M and A from the months available."""
        return None

    def derive(self, latest: pl.DataFrame) -> list[tuple["PartitionSpec", type, pl.DataFrame]]:
        """The source's own derived datasets (spec, model, frame)."""
        return []

    def revisions(self, clean: "pl.LazyFrame | pl.DataFrame", catalogue: "Catalogue") -> pl.DataFrame | None:
        """What changed between vintages (from the clean dataset, every vintage); None: not offered."""
        return None

    @property
    def folder(self) -> str:
        return self.inbox_folder or self.name


def label_norm(column: str) -> pl.Expr:
    """A label as compared: lower case, every run of other characters one space, trimmed."""
    return pl.col(column).str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()


def label_norm_sql(column: str) -> str:
    """`label_norm` in DuckDB SQL (for the warehouse views)."""
    return f"trim(regexp_replace(lower({column}), '[^[:alnum:]]+', ' ', 'g'))"


def latest_vintage(clean: pl.LazyFrame, by: "tuple[str, ...]", coarse: "tuple[str, ...]" = (),
                   labels: "tuple[str, ...]" = ()) -> pl.LazyFrame:
    """Rows of the newest vintage for each `by` group (docs/sources.md §1.4: a later release
    replaces the whole data).

    `coarse` (keys of `by` that partition the data, e.g. year and month) makes the common case
    cheap: where a partition holds a single vintage every row is its latest, and only partitions
    holding several need the per-group window over the full key."""
    names = clean.collect_schema().names()
    coarse = tuple(k for k in coarse if k in by and k in names)
    keys = [label_norm(c) if c in labels else pl.col(c) for c in by]
    if not coarse:
        return clean.filter(pl.col("vintage") == pl.col("vintage").max().over(keys))
    multi = clean.group_by(list(coarse)).agg(pl.col("vintage").n_unique().alias("_n")).filter(
        pl.col("_n") > 1).select(list(coarse)).collect()
    if multi.is_empty():
        return clean
    several = clean.join(multi.lazy(), on=list(coarse), how="semi")
    return pl.concat([clean.join(multi.lazy(), on=list(coarse), how="anti"),
                      several.filter(pl.col("vintage") == pl.col("vintage").max().over(keys))])


# Set while `rarewatch sources check` runs: pages of an unknown layout are described, not kept.
READ_ONLY: ContextVar[bool] = ContextVar("rarewatch_read_only", default=False)

_VINTAGE_IN_NAME = re.compile(r"(?:^|[_\-.])v(?:intage[=_-]?)?(\d{4})-?(\d{2})-?(\d{2})(?=[_\-.]|$)", re.I)


def inbox_files(source: Source, inbox: Path) -> list[ReleaseFile]:
    """Files for `source` in the inbox: those in `<inbox>/<source folder>/` and those dropped at the
    inbox root that the source recognises by content; sorted by name.

    A publication date may be given in the file name as `_vYYYYMMDD` (or `_vintage=YYYY-MM-DD`),
    since a file on disk no longer says when it was published. A file at the root that no source
    recognises is refused (`RarewatchError` naming it and the folders that would work), never
    ignored, so a misplaced file can never send a run to the network instead.
    """
    inbox = Path(inbox)
    folder = inbox / source.folder
    paths = folder_files(source, inbox, folder) if folder.exists() or folder.is_symlink() else []
    paths += root_files(inbox).get(source.name, [])
    out = []
    for p in sorted(paths, key=lambda p: p.name):
        published = None
        m = _VINTAGE_IN_NAME.search(p.stem)
        if m:
            try:
                published = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError as e:
                from flows.errors import RarewatchError

                raise RarewatchError(f"inbox file {p}: its name gives the publication date {m.group(0).lstrip('_-.')}, "
                                     f"which is not a date ({e}); name it _vYYYYMMDD with a real date") from None
        out.append(ReleaseFile(source=source.name, name=p.name, url=p.resolve().as_uri(), published=published))
    return out


# What operating systems and editors leave in folders: never a release, ignored without a word.
_JUNK = re.compile(r"^(\.DS_Store|Thumbs\.db|desktop\.ini|\._.*|~\$.*|.*~|\.~lock\..*#)$", re.I)


def _refuse_link(p: Path, inbox: Path) -> None:
    """Inbox entries must be real files or folders inside the inbox: a symbolic link (or anything
    resolving outside) could copy any file of the machine (the stock positions) into the public raw zone."""
    from flows.errors import RarewatchError

    if p.is_symlink():
        raise RarewatchError(f"inbox entry {p} is a symbolic link (to {os.readlink(p)}): refused, since it could "
                             "bring a file from outside the inbox into the public raw zone; copy the file itself "
                             "into the inbox")
    if not p.resolve().is_relative_to(inbox.resolve()):
        raise RarewatchError(f"inbox entry {p} lies outside the inbox {inbox}: refused")


def folder_files(source: Source, inbox: Path, folder: Path) -> list[Path]:
    """The release files of a source's inbox folder. Refused with a message, never skipped (a
    skipped file would send the run to the network instead): symbolic links, sub-folders, files
    of another type, hidden files (e.g. `.2020_imp.csv`), and a folder that holds nothing to read."""
    from flows.errors import RarewatchError

    _refuse_link(folder, inbox)
    if not folder.is_dir():
        raise RarewatchError(f"inbox entry {folder} should be the folder of {source.name}'s release files")
    out, refused = [], []
    for p in sorted(folder.iterdir()):
        if _JUNK.match(p.name):
            continue
        _refuse_link(p, inbox)
        if not p.is_file():
            refused.append(f"{p.name} (not a file)")
        elif p.name.startswith("."):
            refused.append(f"{p.name} (a hidden file: rename it without the leading dot to ingest it, or remove it)")
        elif p.suffix.lower() not in source.suffixes:
            refused.append(f"{p.name} (not {' or '.join(source.suffixes)})")
        else:
            out.append(p)
    if refused:
        raise RarewatchError(f"inbox folder {folder} holds what {source.name} cannot read: " + "; ".join(refused)
                             + f". Only {', '.join(source.suffixes)} release files belong there.")
    return out


def root_files(inbox: Path) -> dict[str, list[Path]]:
    """Files at the inbox root, by the sources that recognise their content."""
    from flows.errors import RarewatchError

    inbox = Path(inbox)
    if not inbox.is_dir():
        return {}
    sources = registry()
    out: dict[str, list[Path]] = {}
    folders = {s.folder for s in sources.values()}
    for p in sorted(inbox.iterdir()):
        if _JUNK.match(p.name) or (p.name in folders and not p.is_symlink()):
            continue
        _refuse_link(p, inbox)
        if p.is_dir():
            continue  # another tool's folder: not rarewatch's to judge
        if p.name.startswith("."):
            raise RarewatchError(f"inbox file {p} is hidden: rename it without the leading dot to ingest it, "
                                 "or remove it")
        with p.open("rb") as f:
            head = f.read(8192)
        takers = [s.name for s in sources.values() if s.recognises(head, p.name)]
        if not takers:
            folders = ", ".join(sorted({f"{inbox}/{s.folder}/ ({', '.join(s.suffixes)})" for s in sources.values()}))
            raise RarewatchError(f"inbox file {p} is not recognised as any source's release (looked for a Japan "
                                 "Customs 品別国別表 header, a China Customs release title, a Comtrade answer, "
                                 f"a METI workbook); move it to the folder of its source: {folders}")
        for name in takers:
            out.setdefault(name, []).append(p)
    return out


def registry() -> dict[str, Source]:
    """Every source, by name."""
    from flows.sources.comtrade import Comtrade
    from flows.sources.gacc import Gacc, GaccImports
    from flows.sources.japan_customs import JapanCustoms
    from flows.sources.meti import Meti

    sources: list[Source] = [JapanCustoms(), Gacc(), GaccImports(), Comtrade(), Meti()]
    return {s.name: s for s in sources}
