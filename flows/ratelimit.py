"""Rate limits shared by every thread, task, Dask worker and run on the machine.

A Prefect global concurrency limit with slot decay is Prefect's own rate limiter
(`prefect.concurrency.sync.rate_limit`): one slot, decaying at `1 / interval` slots per second,
lets one call through every `interval` seconds wherever the caller runs, since the slots live in
the Prefect server. The limit is created on first use when missing. Only when no Prefect API is
reachable (a plain function call outside any flow, tests) does a process-wide throttle stand in.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)


class Throttle:
    """At most one call every `interval` seconds in this process (every thread shares it)."""

    def __init__(self, interval: float):
        self.interval, self.last = interval, 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            gap = self.interval - (time.monotonic() - self.last)
            if gap > 0:
                time.sleep(gap)
            self.last = time.monotonic()


_throttles: dict[str, Throttle] = {}
_ensured: set[tuple[str, str, float]] = set()
_lock = threading.Lock()


def _prefect_api() -> str | None:
    """The Prefect API in use, when one is: inside a flow or task run, or PREFECT_API_URL set.
    (Outside a run, asking Prefect would start a temporary server just to throttle a call.)"""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None and not os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or "ephemeral"


def ensure_rate_limit(name: str, interval: float) -> None:
    """Create the global concurrency limit `name` (1 slot, decay 1/interval per second) if missing,
    or give it that decay when it exists without one."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    decay = 1.0 / interval
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1, slot_decay_per_second=decay, active=True))
            except ObjectAlreadyExists:  # created meanwhile by another worker
                pass
            return
        if not existing.slot_decay_per_second or abs(existing.slot_decay_per_second - decay) > 1e-9:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=1, slot_decay_per_second=decay, active=True))


def ensure_writer_limit(name: str) -> None:
    """Create the global concurrency limit `name` with one slot (one run writes the warehouse at
    a time) when it is missing: the flows hold it strictly, so it must exist wherever they run
    (`make serve` or a server set up with `prefect deploy` alike)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1, active=True))
                log.info("created the global concurrency limit %r (1 slot: one writer at a time)", name)
            except ObjectAlreadyExists:  # created meanwhile by another run
                pass


def wait_turn(name: str, interval: float, timeout_s: float | None = None) -> str:
    """Block until the next call under `name` may go out; returns "prefect" or "process" (which
    limiter spaced it)."""
    if interval <= 0:
        return "none"
    api = _prefect_api()
    if api is not None:
        try:
            key = (api, name, interval)
            if key not in _ensured:
                ensure_rate_limit(name, interval)
                with _lock:
                    _ensured.add(key)
            from prefect.concurrency.sync import rate_limit

            rate_limit(name, occupy=1, timeout_seconds=timeout_s, strict=True)
            return "prefect"
        except TimeoutError:
            raise
        except Exception as e:  # the API is unreachable or refuses: the process throttle stands in
            log.warning("rate limit %r via Prefect unavailable (%s); spacing calls in this process only", name, e)
    with _lock:
        throttle = _throttles.setdefault(name, Throttle(interval))
        throttle.interval = interval
    throttle.wait()
    return "process"
