"""Indicators computed from the clean datasets: dependency now, reserve coverage later."""

from flows.warehouse import PartitionSpec

# Indicators are recomputed whole per source: one file per source partition.
PARTNER_SHARES = PartitionSpec("indicators/partner_shares", ("source",))
IMPORT_DEPENDENCY = PartitionSpec("indicators/import_dependency", ("source",))
REVISIONS = PartitionSpec("indicators/revisions", ("source",))
