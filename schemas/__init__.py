"""pandera models (polars backend), one per dataset: the analysts' contract and its checks.

Each model's field descriptions are the data dictionary; each model's checks run on every frame
before it is written. `DATASETS` maps a dataset name to its model.
"""

from schemas.comtrade import ComtradeTrade
from schemas.gacc import ChinaCustomsExports, ChinaExportsMonthly
from schemas.indicators import ImportDependency, MirrorGaps, PartnerShares, Revisions
from schemas.japan_customs import JapanCustomsTrade
from schemas.meti import MetiSupplyDemand
from schemas.raw import RawManifest
from schemas.reserves import ImportReliance, ReferenceConsumption, ReserveCoverage, RestrictedReserveCoverage

DATASETS = {
    "japan_customs_trade": JapanCustomsTrade,
    "china_customs_exports": ChinaCustomsExports,
    "comtrade_trade": ComtradeTrade,
    "meti_supply_demand": MetiSupplyDemand,
    "partner_shares": PartnerShares,
    "import_dependency": ImportDependency,
    "china_exports_monthly": ChinaExportsMonthly,
    "mirror_gaps": MirrorGaps,
    "revisions": Revisions,
    "reference_consumption": ReferenceConsumption,
    "reserve_coverage": ReserveCoverage,
    "import_reliance": ImportReliance,
    "restricted_reserve_coverage": RestrictedReserveCoverage,
    "raw_manifest": RawManifest,
}

__all__ = ["DATASETS", *sorted(m.__name__ for m in DATASETS.values())]
