"""pandera models (polars backend), one per dataset: the analysts' contract and its checks.

Each model's field descriptions are the data dictionary; each model's checks run on every frame
before it is written. `DATASETS` maps a dataset name to its model.
"""

from schemas.comtrade import ComtradeTrade
from schemas.gacc import ChinaCustomsExports, ChinaExportsMonthly
from schemas.indicators import ImportDependency, PartnerShares
from schemas.japan_customs import JapanCustomsTrade
from schemas.raw import RawManifest

DATASETS = {
    "japan_customs_trade": JapanCustomsTrade,
    "china_customs_exports": ChinaCustomsExports,
    "china_exports_monthly": ChinaExportsMonthly,
    "comtrade_trade": ComtradeTrade,
    "partner_shares": PartnerShares,
    "import_dependency": ImportDependency,
    "raw_manifest": RawManifest,
}

__all__ = ["DATASETS", "ChinaCustomsExports", "ChinaExportsMonthly", "ComtradeTrade", "ImportDependency",
           "JapanCustomsTrade", "PartnerShares", "RawManifest"]
