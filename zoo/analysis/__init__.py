"""Measurement of models: parameters and multiply-adds (fvcore, cross-checked by closed-form
formulas), published figures, and receptive fields.

The names below are loaded on first use (PEP 562), so that importing ``zoo.analysis.formulas`` — which the
fundamentals use — does not import fvcore.
"""

import importlib

_EXPORTS = {
    "FlopCount": "flops",
    "LayerCount": "flops",
    "count_flops": "flops",
    "count_macs": "flops",
    "count_parameters": "flops",
    "ReceptiveField": "receptive_field",
    "empirical_receptive_field": "receptive_field",
    "receptive_field": "receptive_field",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoo.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"zoo.analysis.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
