"""Measurement of models: parameters and multiply-adds (fvcore, cross-checked by closed-form
formulas), published figures, and receptive fields.

The fvcore counters are loaded on first use (PEP 562), so that importing ``zoo.analysis.formulas`` — which
the fundamentals use — or the receptive-field tools does not import fvcore.
"""

import importlib

from zoo.analysis.receptive_field import ReceptiveField, empirical_receptive_field, receptive_field

_FLOPS = ("FlopCount", "LayerCount", "count_flops", "count_macs", "count_parameters")

__all__ = [
    "FlopCount",
    "LayerCount",
    "ReceptiveField",
    "count_flops",
    "count_macs",
    "count_parameters",
    "empirical_receptive_field",
    "receptive_field",
]


def __getattr__(name: str):
    if name not in _FLOPS:
        raise AttributeError(f"module 'zoo.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module("zoo.analysis.flops"), name)
    globals()[name] = value
    return value
