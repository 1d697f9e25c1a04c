"""One HTTP session per source and run: timeouts, retries with backoff, limits, a User-Agent.

Every request of every source goes through `get`, which enforces the source's `Limits`
(settings, docs/sources.md "Limits"): the body is streamed and refused once it passes
`max_download_mb`; connect, every retry (with `Retry-After` capped) and the body together must
end within `request_deadline`; all requests of a source in one run within `source_deadline`.
Server text (error messages, echoed URLs) is redacted of secrets before it is raised.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from flows.errors import FetchError, LimitExceeded
from flows.settings import Settings

RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 1 << 16
# Keys some APIs take only in the query string (e-Stat `appId`): scrubbed from urllib3's own
# debug log lines, which print every URL requested.
_SECRET_PARAMS = re.compile(r"((?:appId|subscription-key|token|apikey)=)[^&\s\"']+", re.I)
# Deadline (time.monotonic) of the request in flight in this thread, read by the Retry below.
_DEADLINE: contextvars.ContextVar[tuple[float, str] | None] = contextvars.ContextVar("rarewatch_deadline",
                                                                                     default=None)


class RedactSecrets(logging.Filter):
    """Rewrites log records so that secret query parameters read `***`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET_PARAMS.search(message):
            record.msg, record.args = _SECRET_PARAMS.sub(r"\1***", message), None
        return True


# urllib3 logs URLs from several modules ("Incremented Retry for (url=...)" comes from util.retry);
# a filter on a logger does not reach its children, so each one gets it.
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager", "urllib3.connection",
              "urllib3.response"):
    logging.getLogger(_name).addFilter(RedactSecrets())


@dataclass(frozen=True)
class Limits:
    """What one source may cost (settings `max_download_mb`, `request_deadline`, ...; per source
    through `RAREWATCH_SOURCE_LIMITS`)."""

    source: str
    timeout: float  # seconds a connect or a single read may block
    max_bytes: int  # largest body accepted (after content decoding)
    request_deadline: float  # seconds for one request: connect + retries + body
    source_deadline: float  # seconds for all requests of the source in one run
    retry_after_cap: float  # longest Retry-After honoured

    @classmethod
    def of(cls, settings: Settings, source: str) -> "Limits":
        v = settings.limits(source)
        return cls(source=source, timeout=float(v["http_timeout"]), max_bytes=int(v["max_download_mb"] * 2**20),
                   request_deadline=float(v["request_deadline"]), source_deadline=float(v["source_deadline"]),
                   retry_after_cap=float(v["retry_after_cap"]))


class DeadlineRetry(Retry):
    """urllib3's Retry that never sleeps past the request's deadline: a `Retry-After` or backoff
    that would end after it stops the request at once (`retry_after_max` caps `Retry-After`)."""

    def sleep(self, response=None) -> None:  # noqa: ANN001 (urllib3's signature)
        held = _DEADLINE.get()
        if held is not None:
            deadline, setting = held
            wait = None
            if self.respect_retry_after_header and response is not None:
                wait = self.get_retry_after(response)
            wait = self.get_backoff_time() if wait is None else min(wait, self.retry_after_max)
            if time.monotonic() + wait > deadline:
                raise _DeadlinePassed(f"the next retry (in {wait:.0f} s) would end after the deadline ({setting})")
        super().sleep(response)


class _DeadlinePassed(Exception):
    """Raised inside urllib3's retry loop; turned into LimitExceeded naming the URL by `get`."""


class Session(requests.Session):
    """A requests session for one source and one run, carrying its limits and its run deadline."""

    def __init__(self, limits: Limits, own_host: str | None = None):
        super().__init__()
        self.limits = limits
        self.deadline = time.monotonic() + limits.source_deadline
        self.own_host = own_host

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """requests follows redirects itself; a source bound to its own host refuses one elsewhere
        before it is requested."""
        target = super().get_redirect_target(resp)
        if target and self.own_host:
            host = urlparse(urljoin(resp.url, target)).hostname
            if host and host.lower() != self.own_host.lower():
                raise FetchError(self.limits.source, _redact(resp.url, ()),
                                 f"redirected to another host ({host}); {self.limits.source} fetches only from "
                                 f"{self.own_host}")
        return target


def session(settings: Settings, source: str) -> Session:
    """A session that retries connection errors, 429 and 5xx with exponential backoff.

    urllib3's Retry honours a `Retry-After` header (Comtrade sends one with 429), capped at the
    source's `retry_after_cap`, and otherwise sleeps backoff_factor * 2**(n-1) seconds between tries.
    """
    from flows.sources import registry

    limits = Limits.of(settings, source)
    known = registry().get(source)
    retry = DeadlineRetry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=settings.http_backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        retry_after_max=limits.retry_after_cap,
        raise_on_status=False,
    )
    s = Session(limits, known.own_host(settings) if known is not None else None)
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = settings.user_agent
    return s


def get(http: Session, url: str, *, source: str, params: dict | None = None, headers: dict | None = None,
        redact: tuple[str, ...] = ()) -> requests.Response:
    """GET that raises FetchError (naming source and URL, never a secret) unless the answer is 200,
    and LimitExceeded when the body is too large or the request or the source's run overruns."""
    limits = http.limits
    shown = _redact(url, redact)
    start = time.monotonic()
    deadline, setting = start + limits.request_deadline, f"request_deadline={limits.request_deadline:g} s"
    if http.deadline < deadline:
        deadline, setting = http.deadline, f"source_deadline={limits.source_deadline:g} s for {source} in one run"
    if http.own_host and (urlparse(url).hostname or "").lower() != http.own_host.lower():
        raise FetchError(source, shown, f"not requested: {source} fetches only from {http.own_host}")
    if deadline <= start:
        raise LimitExceeded(source, shown, f"not requested: the source's run is past its deadline ({setting})",
                            setting="RAREWATCH_SOURCE_DEADLINE")
    read_timeout = min(limits.timeout, max(deadline - start, 0.1))
    token = _DEADLINE.set((deadline, setting))
    try:
        r = http.get(url, params=params, headers=headers, timeout=(read_timeout, read_timeout), stream=True)
    except _DeadlinePassed as e:
        raise LimitExceeded(source, shown, str(e), setting=_env(setting)) from None
    except requests.RequestException as e:
        raise FetchError(source, shown, f"{type(e).__name__}: {_redact(str(e), redact)}") from None
    finally:
        _DEADLINE.reset(token)
    try:
        if r.status_code != 200:
            raise FetchError(source, _redact(r.url, redact), f"HTTP {r.status_code} {_redact(r.reason or '', redact)}")
        declared = r.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            raise LimitExceeded(source, shown, f"answer of {int(declared):,} bytes (Content-Length) is larger than "
                                f"max_download_mb={limits.max_bytes / 2**20:g}", setting="RAREWATCH_MAX_DOWNLOAD_MB")
        r._content = _read_body(r, limits, source, shown, deadline, setting, redact)
    finally:
        r.close()
    return r


def _read_body(r: requests.Response, limits: Limits, source: str, shown: str, deadline: float, setting: str,
               redact: tuple[str, ...]) -> bytes:
    """The body, read as it arrives (urllib3's read1 returns what a read gives, so a slow body is
    stopped at the deadline, not after every byte), decoded, within max_bytes."""
    parts, size = [], 0
    try:
        while True:
            chunk = r.raw.read1(CHUNK, decode_content=True)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if size > limits.max_bytes:
                raise LimitExceeded(source, shown, f"answer passed max_download_mb={limits.max_bytes / 2**20:g} "
                                    f"({size:,} bytes read); stopped", setting="RAREWATCH_MAX_DOWNLOAD_MB")
            if time.monotonic() > deadline:
                raise LimitExceeded(source, shown, f"body still arriving after the deadline ({setting}; "
                                    f"{size:,} bytes read); stopped", setting=_env(setting))
    except LimitExceeded:
        raise
    except Exception as e:  # urllib3's ProtocolError, DecodeError, ReadTimeoutError; OSError
        raise FetchError(source, shown, f"reading the answer failed: {type(e).__name__}: "
                         f"{_redact(str(e), redact)}") from None
    return b"".join(parts)


def _env(setting: str) -> str:
    return "RAREWATCH_" + setting.split("=", 1)[0].upper()


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.I)


def page_text(r: requests.Response) -> str:
    """A page's text by its declared charset (the Content-Type header, else the page's own
    `<meta charset>`), else UTF-8, else the detected one (requests alone would read an undeclared
    text/html page as ISO-8859-1 and garble Japanese or Chinese)."""
    declared = "charset=" in r.headers.get("Content-Type", "").lower()
    if declared:
        return r.text
    meta = _META_CHARSET.search(r.content[:4096])
    if meta:
        import codecs

        try:
            return r.content.decode(codecs.lookup(meta.group(1).decode("ascii")).name, errors="replace")
        except LookupError:
            pass
    try:
        return r.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return r.content.decode(r.apparent_encoding or "cp932", errors="replace")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with each secret and every secret-looking query parameter replaced by `***`."""
    return _redact(text, secrets)


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return _SECRET_PARAMS.sub(r"\1***", text)
