"""Measurement of models: parameters and multiply-adds."""

from zoo.analysis.flops import count_macs, count_parameters

__all__ = ["count_macs", "count_parameters"]
