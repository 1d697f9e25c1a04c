"""Shock alerts (docs/sources.md §10): what moved enough to be told."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa

KINDS = ["china_export_drop", "china_share_shift", "top_supplier_gone", "target_stock_rise", "release_overdue"]


class Alerts(pa.DataFrameModel):
    """`indicators/alerts/part-0.parquet`: every alert the indicators raise, recomputed each run.

    china_export_drop: China's exports of a commodity down by at least the threshold year on year
    (quantity, GACC); china_share_shift: China's share of Japan's imports of a metal (12M,
    quantity) moved by at least the threshold in points against twelve months earlier;
    top_supplier_gone: one of the three largest suppliers of the twelve months before supplied
    nothing in the month; target_stock_rise: the stock a target implies more than the threshold
    above the previous reference year's; release_overdue: a source read from the network whose
    newest landed month is older than the release its calendar says is out (judged in the first month of the new one). Thresholds:
    RAREWATCH_ALERT_* settings.
    """

    kind: str = pa.Field(isin=KINDS, description="what moved (see the dataset's description)")
    subject: str = pa.Field(description="metal id, China Customs commodity id, or source name (release_overdue)")
    source: str = pa.Field(description="source of the figures")
    period_start: dt.date = pa.Field(description="first day of the period the alert is about")
    period_end: dt.date = pa.Field(description="last day of the period")
    observed: float = pa.Field(nullable=True, description="the figure of the period (tonnes, share or stock)")
    reference: float = pa.Field(nullable=True, description="the figure it is compared with (a year earlier, or the prior 12 months)")
    change: float = pa.Field(nullable=True, description="change in the alert's unit: % (drop, rise), points (share), months late (overdue)")
    threshold: float = pa.Field(description="the threshold in force (RAREWATCH_ALERT_*)")
    message: str = pa.Field(description="one sentence for people")

    class Config:
        strict = True
        unique = ["kind", "subject", "source", "period_start", "period_end"]
