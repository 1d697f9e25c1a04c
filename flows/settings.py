"""The one settings object: every knob is a `RAREWATCH_*` environment variable.

Built once at an entry point (CLI, flow) and passed down; tasks never read the environment.
Secrets are `SecretStr`: their repr is masked, so they never reach logs, artifacts or errors.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.errors import RarewatchError


LIMITS = ("http_timeout", "max_download_mb", "max_inflated_mb", "max_inflate_ratio", "max_inbox_file_mb",
          "max_cell_chars", "max_summary_rows", "request_deadline", "source_deadline", "retry_after_cap")


class Settings(BaseSettings):
    """rarewatch configuration (environment prefix `RAREWATCH_`)."""

    model_config = SettingsConfigDict(env_prefix="RAREWATCH_", extra="ignore")

    warehouse: str = Field(
        "./warehouse",
        description="Root of the warehouse: a local path or a URL (file://, s3://...).",
    )
    inbox: Path | None = Field(
        None,
        description="Folder of release files to ingest without network, one sub-folder per source "
        "(e.g. inbox/japan_customs/*.csv). When it holds files for a source, that source is not "
        "fetched.",
    )
    restricted_dir: str | None = Field(
        None,
        description="Root for confidential outputs (figures derived from stock positions): never inside the "
        "warehouse or the inbox (refused at start-up). Default: `restricted` beside a local warehouse "
        "(./warehouse -> ./restricted), ./restricted for a warehouse on an object store.",
    )

    # --- HTTP, shared by every source -------------------------------------------------------
    http_timeout: float = Field(60.0, gt=0, description="Seconds before a connect or read times out.")
    lock_timeout: float = Field(3600.0, ge=0, description=(
        "Seconds a run waits for the warehouse's writer lock while another run holds it (runs write one "
        "at a time); then it stops with a message naming the holder."))
    http_retries: int = Field(4, ge=0, description="Retries on connection errors, 429 and 5xx.")
    http_backoff: float = Field(1.0, description="Backoff factor between retries (seconds, doubled).")
    # --- Limits (docs/sources.md "Limits"); per source through source_limits --------------------
    max_download_mb: float = Field(256.0, gt=0, description=(
        "Largest answer accepted from a site, in MiB (after content decoding); the download is streamed "
        "and stopped once past it."))
    max_inflated_mb: float = Field(1024.0, gt=0, description="Largest file accepted out of a zip archive, in MiB.")
    max_inflate_ratio: float = Field(200.0, gt=1, description=(
        "Largest inflated/compressed size ratio of a zip member (a higher one is refused as a zip bomb)."))
    max_inbox_file_mb: float = Field(1024.0, gt=0, description="Largest inbox file accepted, in MiB.")
    max_cell_chars: int = Field(4096, gt=0, description=(
        "Longest text cell accepted in a release file; a longer one refuses the file (line and column named)."))
    max_summary_rows: int = Field(64, ge=0, description=(
        "Most non-code rows (S-TOTAL and the like) a Japan Customs file may hold; more is a layout error."))
    request_deadline: float = Field(600.0, gt=0, description=(
        "Seconds one request may take in all: connect, retries (and their waits) and the whole body."))
    source_deadline: float = Field(3600.0, gt=0, description="Seconds all requests of one source may take in one run.")
    retry_after_cap: float = Field(120.0, ge=0, description="Longest Retry-After wait honoured, in seconds.")
    source_limits: dict[str, dict[str, float]] = Field(default_factory=dict, description=(
        "Limits per source, as JSON: '{\"comtrade\": {\"request_deadline\": 120}}' (keys: http_timeout, "
        "max_download_mb, max_inflated_mb, max_inflate_ratio, max_inbox_file_mb, max_cell_chars, "
        "max_summary_rows, request_deadline, source_deadline, retry_after_cap)."))

    # --- Shock alerts (schemas/alerts.py) --------------------------------------------------------
    alert_china_export_drop_pct: float = Field(30.0, gt=0, description=(
        "Alert when China's monthly exports of a commodity fall at least this many % year on year."))
    alert_china_share_points: float = Field(10.0, gt=0, description=(
        "Alert when China's 12-month share of a metal moves at least this many points in a year."))
    alert_target_stock_rise_pct: float = Field(20.0, gt=0, description=(
        "Alert when the stock a target implies is more than this many % above a year earlier."))
    notify_webhook_url: SecretStr | None = Field(None, description=(
        "Where the alert automation POSTs (a custom webhook block `rarewatch-notify`, created by `make serve` or "
        "`python -m flows.notifications`); secret, since such URLs carry tokens."))
    alert_events_max: int = Field(20, ge=0, description="Most Prefect events emitted per run for new alerts (newest first).")
    late_after_hours: float = Field(36.0, ge=10 / 3600, description=(
        "Hours after a monthly-refresh run became due (Late: not started on time) or started (Pending) with no "
        "completed one before `rarewatch monthly refresh late` notifies (at least 10 s: Prefect's minimum)."))

    task_retries: int = Field(2, description="Prefect retries of a source's fetch task after network errors.")
    task_retry_delay: float = Field(60.0, description="Seconds between those retries.")
    user_agent: str = Field(
        "rarewatch/0.1 (+https://github.com/rarewatch/rarewatch; trade-statistics pipeline)",
        description="User-Agent sent to every source.",
    )

    # --- Scale-out ------------------------------------------------------------------------------
    dask_address: str | None = Field(None, description="Dask scheduler (tcp://host:8786) for backfills; unset: threads.")
    dask_local: bool = Field(False, description="Run backfills on a local Dask cluster started for the run.")

    # --- Japan Customs through e-Stat (docs/sources.md §1.3) --------------------------------
    estat_base_url: str = Field(
        "https://www.e-stat.go.jp", description="e-Stat web site (file list and download pages)."
    )
    estat_api_base_url: str = Field(
        "https://api.e-stat.go.jp/rest/3.0/app/json", description="e-Stat API v3.0 JSON root."
    )
    estat_app_id: SecretStr | None = Field(None, description="e-Stat API appId (secret).")

    # --- China Customs (docs/sources.md §2) -------------------------------------------------
    gacc_base_url: str = Field(
        "https://english.customs.gov.cn", description="China Customs English site (preliminary releases), over "
        "HTTPS (the site serves it); only this host is fetched from."
    )

    # --- METI / ANRE (docs/sources.md §4) -------------------------------------------------
    meti_base_url: str = Field("https://www.enecho.meti.go.jp", description=(
        "METI/ANRE site (survey results pages); only this host is fetched from."))

    # --- Reserve coverage (docs/sources.md §7) ---------------------------------------------
    stock_positions: Path | None = Field(
        None, description="CONFIDENTIAL stock positions (CSV or Parquet: metal, as_of, tonnes). Figures derived from "
        "it are written only under the restricted root, never to public datasets, artifacts or logs.")
    stockpile_policy: Path | None = Field(
        None, description="Target days per metal (CSV: metal, target_days, ...), replacing the bundled policy.")
    consumption_precedence: str = Field(
        "meti,baseline,apparent",
        description="Reference-consumption methods in order of preference; per metal as 'metal=m1,m2;...' after a '|', "
        "e.g. 'meti,baseline,apparent|tungsten=baseline,apparent'.")

    # --- UN Comtrade (docs/sources.md §3) ---------------------------------------------------
    comtrade_base_url: str = Field("https://comtradeapi.un.org", description="UN Comtrade API root.")
    comtrade_api_key: SecretStr | None = Field(
        None, description="Comtrade subscription key (secret); without it the public preview endpoint is used."
    )
    comtrade_min_interval: float = Field(1.5, description="Seconds between Comtrade calls (throttle).")

    @field_validator("inbox", "restricted_dir", "stock_positions", "stockpile_policy", "dask_address", "notify_webhook_url",
                     mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        """`RAREWATCH_INBOX=` (empty) means no inbox, not the current directory."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("source_limits")
    @classmethod
    def _known_limits(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for source, limits in v.items():
            unknown = sorted(set(limits) - set(LIMITS))
            if unknown:
                raise ValueError(f"unknown limit(s) {unknown} for {source}; known: {', '.join(LIMITS)}")
            bad = [k for k, x in limits.items() if not isinstance(x, (int, float)) or x <= 0]
            if bad:
                raise ValueError(f"limit(s) {bad} for {source} must be positive numbers")
        return v

    def limits(self, source: str) -> dict[str, float]:
        """Every limit for one source: the setting, or its override in source_limits."""
        own = self.source_limits.get(source, {})
        return {k: own.get(k, getattr(self, k)) for k in LIMITS}

    @model_validator(mode="after")
    def _confidential_stays_out_of_public_folders(self) -> "Settings":
        """The restricted root and the stock positions may not lie inside the warehouse or the
        inbox: a restricted root inside the warehouse would overwrite public datasets with stock
        figures, a stock file in the inbox would be copied into the public raw zone."""
        public = [("warehouse", "RAREWATCH_WAREHOUSE", self.warehouse)]
        if self.inbox is not None:
            public.append(("inbox", "RAREWATCH_INBOX", str(self.inbox)))
        confidential = [("restricted root", "RAREWATCH_RESTRICTED_DIR", self.restricted_root())]
        if self.stock_positions is not None:
            confidential.append(("stock positions", "RAREWATCH_STOCK_POSITIONS", str(self.stock_positions)))
        for what, var, path in confidential:
            for name, pvar, folder in public:
                if _inside(path, folder) or (what == "restricted root" and _inside(folder, path)):
                    fix = ("choose a folder outside both (default: ./restricted beside the warehouse)"
                           if what == "restricted root" else "keep the stock file outside both")
                    raise ValueError(
                        f"{var}={path}: the {what} may not lie inside (or contain) the {name} ({pvar}={folder}), "
                        f"since figures derived from stock positions would then be published; {fix}")
        return self

    def restricted_root(self) -> str:
        """Where confidential outputs go: never inside the public datasets (see the validator)."""
        if self.restricted_dir:
            return self.restricted_dir
        if "://" in self.warehouse and not self.warehouse.startswith("file://"):
            return str(Path("restricted").resolve())
        local = Path(self.warehouse.removeprefix("file://")).expanduser().resolve()
        return str(local.parent / "restricted")


def _inside(path: str, folder: str) -> bool:
    """Is `path` the folder itself or inside it? Local paths resolved (symbolic links followed),
    URLs compared by their normalised text."""
    def norm(p: str) -> tuple[bool, str]:
        if "://" in p and not p.startswith("file://"):
            return False, p.rstrip("/") + "/"
        return True, str(Path(p.removeprefix("file://")).expanduser().resolve())

    (pl_, p), (fl, f) = norm(path), norm(folder)
    if pl_ != fl:
        return False
    return Path(p).is_relative_to(f) if pl_ else p.startswith(f)


class SettingsError(RarewatchError, ValueError):
    """Settings that cannot be used: one line per problem, naming the RAREWATCH_* variable."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, or SettingsError saying which variable is wrong and why
    (never pydantic's traceback)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError as UnparsedSetting

    try:
        return Settings(**overrides)
    except UnparsedSetting as e:  # a JSON setting that is not JSON
        field = re.search(r'field "(\w+)"', str(e))
        var = f"RAREWATCH_{field.group(1).upper()}" if field else "a RAREWATCH_* variable"
        raise SettingsError(f"invalid settings: {var} is not valid JSON ({e.__cause__ or e}). Every setting is a "
                            "RAREWATCH_* environment variable (README, \"Settings\").") from None
    except ValidationError as e:
        lines = []
        for err in e.errors():
            field = ".".join(str(x) for x in err["loc"])
            var = f"RAREWATCH_{field.split('.')[0].upper()}" if field else "settings"
            msg = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            shown = "" if field == "" or isinstance(given, dict) or "SecretStr" in str(type(given)) \
                or field in ("estat_app_id", "comtrade_api_key") else f" (given {given!r})"
            lines.append(f"{var}{shown}: {msg}" if field else msg)
        raise SettingsError("invalid settings: " + "; ".join(lines)
                            + ". Every setting is a RAREWATCH_* environment variable (README, \"Settings\").") from None
