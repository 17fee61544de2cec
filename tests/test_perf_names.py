"""Chip-name normalisation used by every perf command: form-factor words and memory sizes are
ignored (the size chooses among variants), an unknown name suggests the closest ones."""

from __future__ import annotations

import pytest

from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError


@pytest.mark.parametrize(("name", "chip_id"), [
    ("H100-SXM-80GB", "nvidia_h100_sxm"), ("H100 SXM5 80GB", "nvidia_h100_sxm"),
    ("h100_sxm", "nvidia_h100_sxm"), ("A100-SXM-40GB", "nvidia_a100_sxm_40"),
    ("A100 SXM 80GB", "nvidia_a100_sxm_80"), ("HGX B200 192GB", "nvidia_b200"),
])
def test_variants_resolve(name: str, chip_id: str) -> None:
    assert load_catalog().get(name).id == chip_id


def test_unknown_suggests_closest() -> None:
    cat = load_catalog()
    with pytest.raises(SuanliError) as info:
        cat.get("H1OO")
    assert "did you mean" in info.value.problem and "H100" in info.value.problem
    with pytest.raises(SuanliError) as info:  # a PCIe part is not silently an SXM one
        cat.get("A100 PCIe 80GB")
    assert "did you mean A100 SXM4 80GB" in info.value.problem
