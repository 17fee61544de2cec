"""Accelerator catalogue: sourced specifications of accelerators at every precision."""

from suanli.catalog.loader import Catalog, load_catalog, parse_chips, read_yaml
from suanli.catalog.schema import PRECISIONS, Chip, Figure, Precision

__all__ = [
    "PRECISIONS",
    "Catalog",
    "Chip",
    "Figure",
    "Precision",
    "load_catalog",
    "parse_chips",
    "read_yaml",
]
