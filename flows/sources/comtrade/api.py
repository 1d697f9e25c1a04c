"""UN Comtrade API requests (docs/sources.md, "UN Comtrade").

- without a key: public preview `{base}/public/v1/preview/C/{A|M}/HS` (at most 500 records a call);
- with `RAREWATCH_COMTRADE_API_KEY`: `{base}/data/v1/get/C/{A|M}/HS`, key sent in the
  `Ocp-Apim-Subscription-Key` header, never in the URL, so URLs can be logged and kept.
Params: reporterCode, period (YYYY or YYYYMM), partnerCode, partner2Code, cmdCode (comma list),
flowCode, customsCode, motCode. Calls are throttled (~1 call per 1-2 s); HTTP 429 "Rate limit is
exceeded" is retried with backoff by the shared session (honouring Retry-After). Calls are spaced by
one machine-wide rate limit (`flows.ratelimit`: a Prefect global concurrency limit with slot decay).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from flows.errors import FetchError
from flows.httpclient import get, redact
from flows.periods import Month, Period, Year
from flows.ratelimit import wait_turn
from flows.settings import Settings
from flows.sources import ReleaseFile

SOURCE = "comtrade"
PREVIEW_LIMIT = 500  # records per call without a key
DATA_LIMIT = 100_000  # records per call with a key (maxRecords)
JAPAN, CHINA = 392, 156


@dataclass(frozen=True)
class Query:
    """One slice of the data: who reports, which flow, which partner."""

    label: str
    reporter: int | None  # None: every reporter
    flow: str
    partner: int | None  # None: every partner


# Japan's imports by partner; China's exports by destination; every partner's exports to Japan
# (the mirror of Japan's imports, for mirror gaps).
QUERIES = (Query("r392-M", JAPAN, "M", None), Query("r156-X", CHINA, "X", None), Query("p392-X", None, "X", JAPAN))


def endpoint(settings: Settings, freq: str) -> str:
    base = settings.comtrade_base_url.rstrip("/")
    if settings.comtrade_api_key is not None:
        return f"{base}/data/v1/get/C/{freq}/HS"
    return f"{base}/public/v1/preview/C/{freq}/HS"


def plan(settings: Settings, period: Period, hs6: list[str]) -> list[ReleaseFile]:
    """The requests for a period: every query, commodity codes in chunks that fit one answer."""
    freq, when = ("A", str(period.year)) if isinstance(period, Year) else ("M", f"{period.year}{period.month:02d}")
    # ~40 partners (or reporters) per code: 5 codes stay well under the preview's 500 records.
    keyed = settings.comtrade_api_key is not None
    chunk = 100 if keyed else 5
    refs = []
    for q in QUERIES:
        for i in range(0, len(hs6), chunk):
            params = {"reporterCode": q.reporter, "period": when, "partnerCode": q.partner, "partner2Code": 0,
                      "cmdCode": ",".join(hs6[i:i + chunk]), "flowCode": q.flow, "customsCode": "C00",
                      "motCode": 0, "maxRecords": DATA_LIMIT if keyed else PREVIEW_LIMIT, "includeDesc": "false"}
            query = urlencode({k: v for k, v in params.items() if v is not None})
            refs.append(ReleaseFile(source=SOURCE, name=f"comtrade_{freq}_{when}_{q.label}_{i // chunk:02d}.json",
                                    url=f"{endpoint(settings, freq)}?{query}",
                                    period=period if isinstance(period, Month) else None))
    return refs


RATE_LIMIT = "comtrade-api"  # Prefect global concurrency limit with slot decay (flows/ratelimit.py)


_RATE_LIMITED = re.compile(r"rate limit|quota|too many requests|exceeded", re.I)


def fetch(settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
    """One API answer, as bytes. The key travels in a header and is redacted from any error.

    Comtrade can answer HTTP 200 with `{"error": "Rate limit is exceeded..."}` (its gateway's
    quota message, docs/sources.md "UN Comtrade"): waited out and asked again, like a 429, up to
    `http_retries` times within the request's deadline; any other error text ends the request,
    redacted. `count` must agree with `data` (`count: 3, data: null` is refused)."""
    key = settings.comtrade_api_key.get_secret_value() if settings.comtrade_api_key else ""
    headers = {"Ocp-Apim-Subscription-Key": key} if key else None
    limit = DATA_LIMIT if "/data/" in ref.url else PREVIEW_LIMIT
    for attempt in range(settings.http_retries + 1):
        # One spacing for every thread, task, Dask worker and run on the machine (not per HTTP session).
        wait_turn(RATE_LIMIT, settings.comtrade_min_interval)
        r = get(http, ref.url, source=SOURCE, headers=headers, redact=(key,))
        if not r.content.strip():
            raise FetchError(SOURCE, ref.url, "empty answer")
        try:
            doc = r.json()
        except ValueError:
            return r.content  # not JSON: the parser says what is wrong with it
        if not isinstance(doc, dict):
            return r.content
        error = redact(str(doc.get("error") or doc.get("message") or ""), (key,))[:300]
        if error and _RATE_LIMITED.search(error) and attempt < settings.http_retries:
            wait = min(settings.http_backoff * 2 ** attempt, settings.limits(SOURCE)["retry_after_cap"])
            time.sleep(wait)
            continue
        if error:
            raise FetchError(SOURCE, ref.url, f"Comtrade answered with an error: {error}")
        break
    data, count = doc.get("data"), doc.get("count")
    records = len(data) if isinstance(data, list) else 0
    if count is not None and (not isinstance(count, int) or count < 0 or (count > 0 and not isinstance(data, list))
                              or (isinstance(data, list) and count != records)):
        raise FetchError(SOURCE, ref.url, f"answer says count {count!r} but holds {records} record(s) "
                         f"(data is {type(data).__name__}): a broken answer, not landed")
    if records >= limit:  # an answer cut at the limit would silently lose records
        raise FetchError(SOURCE, ref.url, f"answer holds {records} records, the limit of a call: it may be cut short"
                         + ("" if "/data/" in ref.url else "; set RAREWATCH_COMTRADE_API_KEY for the data endpoint"))
    return r.content
