"""One HTTP session for every source: timeouts, retries with backoff, a User-Agent naming rarewatch."""

from __future__ import annotations

import logging
import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from flows.errors import FetchError
from flows.settings import Settings

RETRY_STATUSES = (429, 500, 502, 503, 504)
# Keys some APIs take only in the query string (e-Stat `appId`): scrubbed from urllib3's own
# debug log lines, which print every URL requested.
_SECRET_PARAMS = re.compile(r"((?:appId|subscription-key|token|apikey)=)[^&\s\"']+", re.I)


class RedactSecrets(logging.Filter):
    """Rewrites log records so that secret query parameters read `***`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET_PARAMS.search(message):
            record.msg, record.args = _SECRET_PARAMS.sub(r"\1***", message), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactSecrets())


def session(settings: Settings) -> requests.Session:
    """A requests session that retries connection errors, 429 and 5xx with exponential backoff.

    urllib3's Retry honours a `Retry-After` header (Comtrade sends one with 429) and otherwise
    sleeps backoff_factor * 2**(n-1) seconds between tries.
    """
    retry = Retry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=settings.http_backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = settings.user_agent
    return s


def get(http: requests.Session, url: str, *, source: str, timeout: float, params: dict | None = None,
        headers: dict | None = None, redact: tuple[str, ...] = ()) -> requests.Response:
    """GET that raises FetchError (naming source and URL, never a secret) unless the answer is 200."""
    shown = url
    try:
        r = http.get(url, params=params, headers=headers, timeout=timeout)
    except requests.RequestException as e:
        raise FetchError(source, _redact(shown, redact), f"{type(e).__name__}: {_redact(str(e), redact)}") from None
    if r.status_code != 200:
        raise FetchError(source, _redact(r.url, redact), f"HTTP {r.status_code} {r.reason}")
    return r


def page_text(r: requests.Response) -> str:
    """A page's text by its declared charset, else UTF-8, else the detected one (requests alone
    would read an undeclared text/html page as ISO-8859-1 and garble Japanese or Chinese)."""
    declared = "charset=" in r.headers.get("Content-Type", "").lower()
    if declared:
        return r.text
    try:
        return r.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return r.content.decode(r.apparent_encoding or "cp932", errors="replace")


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return _SECRET_PARAMS.sub(r"\1***", text)
