"""Errors that say which source, file, row and column went wrong."""

from __future__ import annotations


class RarewatchError(Exception):
    """Base class of every error rarewatch raises on purpose."""


class FetchError(RarewatchError):
    """A release could not be found or downloaded."""

    def __init__(self, source: str, url: str, problem: str):
        self.source, self.url, self.problem = source, url, problem
        super().__init__(f"[{source}] {url}: {problem}")


class NotPublished(FetchError):
    """The site answers, but the release asked for is not out yet."""


class LayoutError(RarewatchError):
    """A page or file is not in the shape rarewatch knows: says what was looked for and where the
    page was kept. Not a network problem, so never retried."""

    def __init__(self, source: str, url: str, looked_for: str, kept: str | None = None):
        self.source, self.url, self.looked_for, self.kept = source, url, looked_for, kept
        where = f"; the page is kept in {kept}" if kept else ""
        super().__init__(f"[{source}] {url}: page layout not recognised: looked for {looked_for}{where}")


class ReleaseFileError(RarewatchError):
    """A release file is malformed: names the source, the file and, when known, row and column.

    `row` is the 1-based line number in the file as published (line 1 is the header).
    """

    def __init__(self, source: str, file: str, problem: str, *, row: int | None = None,
                 column: str | None = None):
        self.source, self.file, self.problem, self.row, self.column = source, file, problem, row, column
        where = file
        if row is not None:
            where += f", line {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"[{source}] {where}: {problem}")


class ValidationFailed(RarewatchError):
    """Rows broke a dataset's pandera model; the failures are quarantined, nothing is published."""

    def __init__(self, source: str, file: str, dataset: str, failures: list[str], quarantined: str | None,
                 n_failures: int):
        self.source, self.file, self.dataset = source, file, dataset
        self.failures, self.quarantined, self.n_failures = failures, quarantined, n_failures
        self.rows = n_failures  # rows refused; set by the caller when a row fails several checks
        shown = "\n  ".join(failures[:10])
        more = f"\n  ... and {n_failures - 10} more" if n_failures > 10 else ""
        where = f"\n  failure cases kept in {quarantined}" if quarantined else ""
        super().__init__(
            f"[{source}] {file}: {n_failures} failed check(s) against {dataset}:\n  {shown}{more}{where}"
        )


class SourceFailed(RarewatchError):
    """One source's run failed; carries every error so that all are reported at once."""

    def __init__(self, source: str, errors: list[Exception], *, note: str = ""):
        self.source, self.errors = source, errors
        body = "\n".join(f"- {e}" for e in errors)
        super().__init__(f"source {source} failed ({len(errors)} problem(s)); "
                         f"{note or 'nothing of it was published'}:\n{body}")


class LimitExceeded(FetchError):
    """A download, archive, inbox file or cell passed a limit in settings, or a request or a source's
    run its deadline: names the setting that changes it. Never retried (it would only happen again)."""

    def __init__(self, source: str, url: str, problem: str, *, setting: str):
        self.setting = setting
        super().__init__(source, url, f"{problem} (setting {setting})")
