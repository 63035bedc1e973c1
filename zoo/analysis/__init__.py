"""Measurement of models: parameters and multiply-adds (fvcore, cross-checked by closed-form
formulas), published figures, and receptive fields."""

from zoo.analysis.flops import FlopCount, LayerCount, count_flops, count_macs, count_parameters
from zoo.analysis.receptive_field import ReceptiveField, empirical_receptive_field, receptive_field

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
