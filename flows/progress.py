"""Progress of a long run, for whoever watches: the CLI's progress bar listens here.

The flows report through `step()`; the Prefect UI gets its progress artifact from the flow
itself, a terminal gets a bar when `rarewatch backfill` installs a listener. One listener per
process (the CLI's); none by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

# (what was just done, units done, units in all)
Listener = Callable[[str, int, int], None]
_listener: Listener | None = None


def step(message: str, done: int, total: int) -> None:
    if _listener is not None:
        _listener(message, done, total)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous
