"""Progress of a long run, for whoever watches: the CLI's progress bar listens here.

The flows report through `step()`; the Prefect UI gets its progress artifact from the flow
itself (through a listener too), a terminal gets a bar when `rarewatch backfill` installs one.
Listeners nest; none by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

# (what was just done, units done, units in all)
Listener = Callable[[str, int, int], None]
_listeners: list[Listener] = []


def step(message: str, done: int, total: int) -> None:
    for listener in list(_listeners):
        listener(message, done, total)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
