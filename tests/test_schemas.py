"""Every dataset's model documents every field: the data dictionary is generated from them."""

from __future__ import annotations

import pytest

from schemas import DATASETS


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_field_is_described(name):
    schema = DATASETS[name].to_schema()
    assert DATASETS[name].__doc__ and DATASETS[name].__doc__.strip()
    undocumented = [c for c, col in schema.columns.items() if not col.description]
    assert not undocumented, f"{name}: {undocumented}"
