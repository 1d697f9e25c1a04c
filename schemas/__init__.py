"""pandera models (polars backend), one per dataset: the analysts' contract and its checks.

Each model's field descriptions are the data dictionary; each model's checks run on every frame
before it is written. `DATASETS` maps a dataset name to its model.
"""

from schemas.indicators import ImportDependency, PartnerShares
from schemas.japan_customs import JapanCustomsTrade
from schemas.raw import RawManifest

DATASETS = {
    "japan_customs_trade": JapanCustomsTrade,
    "partner_shares": PartnerShares,
    "import_dependency": ImportDependency,
    "raw_manifest": RawManifest,
}

__all__ = ["DATASETS", "ImportDependency", "JapanCustomsTrade", "PartnerShares", "RawManifest"]
