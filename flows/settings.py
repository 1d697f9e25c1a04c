"""The one settings object: every knob is a `RAREWATCH_*` environment variable.

Built once at an entry point (CLI, flow) and passed down; tasks never read the environment.
Secrets are `SecretStr`: their repr is masked, so they never reach logs, artifacts or errors.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description="Root for confidential outputs (stock positions). Default <warehouse>/restricted.",
    )

    # --- HTTP, shared by every source -------------------------------------------------------
    http_timeout: float = Field(60.0, description="Seconds before a connect or read times out.")
    lock_timeout: float = Field(3600.0, ge=0, description=(
        "Seconds a run waits for the warehouse's writer lock while another run holds it (runs write one "
        "at a time); then it stops with a message naming the holder."))
    http_retries: int = Field(4, description="Retries on connection errors, 429 and 5xx.")
    http_backoff: float = Field(1.0, description="Backoff factor between retries (seconds, doubled).")
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
        "http://english.customs.gov.cn", description="China Customs English site (preliminary releases)."
    )

    # --- METI / ANRE (docs/sources.md §4) -------------------------------------------------
    meti_base_url: str = Field("https://www.enecho.meti.go.jp", description="METI/ANRE site (survey results pages).")

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

    @field_validator("inbox", "restricted_dir", "stock_positions", "stockpile_policy", "dask_address", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        """`RAREWATCH_INBOX=` (empty) means no inbox, not the current directory."""
        return None if isinstance(v, str) and not v.strip() else v

    def restricted_root(self) -> str:
        """Where confidential outputs go: never inside the public datasets."""
        from flows.warehouse import join_root

        return self.restricted_dir or join_root(self.warehouse, "restricted")
