"""Tables out of HTML pages, with the standard library's tolerant parser.

Each table is a list of rows; each row a list of cells with their text (tags removed, `&nbsp;`
and runs of white space folded to one space) and colspan. Nested tables are kept apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_SPACE = re.compile(r"\s+")


@dataclass
class Cell:
    text: str
    colspan: int = 1


@dataclass
class Table:
    rows: list[list[Cell]] = field(default_factory=list)

    def texts(self) -> list[list[str]]:
        return [[c.text for c in r] for r in self.rows]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self._stack: list[Table] = []
        self._cell: list[str] | None = None
        self._colspan = 1
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._stack.append(Table())
        elif tag == "tr" and self._stack:
            self._close_cell()
            self._stack[-1].rows.append([])
        elif tag in ("td", "th") and self._stack:
            self._close_cell()
            if not self._stack[-1].rows:
                self._stack[-1].rows.append([])
            self._cell = []
            span = dict(attrs).get("colspan") or "1"
            self._colspan = int(span) if span.strip().isdigit() else 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._close_cell()
        elif tag == "table" and self._stack:
            self._close_cell()
            self.tables.append(self._stack.pop())
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data

    def _close_cell(self) -> None:
        if self._cell is not None and self._stack:
            text = _SPACE.sub(" ", "".join(self._cell).replace("\xa0", " ")).strip()
            self._stack[-1].rows[-1].append(Cell(text, self._colspan))
        self._cell = None
        self._colspan = 1


def parse_tables(html: str) -> tuple[str, list[Table]]:
    """(page title, tables in document order of their end)."""
    p = _Parser()
    p.feed(html)
    p.close()
    while p._stack:  # unclosed tables at the end of a truncated page
        p._close_cell()
        p.tables.append(p._stack.pop())
    return _SPACE.sub(" ", p.title).strip(), p.tables
