"""What lets zoo's ops be captured whole by ``torch.compile(fullgraph=True)``, ``torch.export`` and ``torch.fx``.

Two things stop a tracer: a Python ``if`` on a tensor's values (``if bad.any(): raise``), and an output whose
size depends on the values (NMS keeps some boxes; RoIAlign's bags depend on the boxes). The first is handled by
:func:`check_all`: in eager mode it raises the usual ``ValueError`` naming the offending element; while compiling
or exporting it becomes an assertion inside the graph (``torch._assert_async``), which fails at run time with the
same message, so no check is dropped (``torch.fx``, which records without shapes, records the registered ops
unchecked). The second is handled as torchvision handles it: NMS and the RoI ops are
registered operators (``torch.ops.zoo.*``, registered beside their code in ``nms.py``, ``roi_align.py`` and
``roi_pool.py``) that a tracer records as one node, with a "fake" rule giving the output's shape (a new symbolic
size for NMS); their bodies are the readable eager code. ONNX writes them as ONNX's own operators
(:mod:`zoo.ops.onnx_translations`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["check_all", "check_equal", "check_supported_dtype", "is_fx_proxy", "is_tracing"]


def is_tracing() -> bool:
    """True while ``torch.compile`` or ``torch.export`` records the code on symbolic values. (``torch.jit.trace``
    runs on real values: the eager checks run, as for any Python branch it records once.)"""
    return torch.compiler.is_compiling()


def is_fx_proxy(*values: object) -> bool:
    """True while ``torch.fx.symbolic_trace`` records: the registered op is then recorded as a leaf, unchecked
    (a proxy has no values, shape or dtype to check)."""
    return any(isinstance(value, torch.fx.Proxy) for value in values)


def check_all(ok: Tensor, message: Callable[[], str], summary: str, error: type[Exception] = ValueError) -> None:
    """Require ``ok.all()``. Eager: raise ``error(message())`` (the message may name the bad element). Traced: an
    assertion in the graph with ``summary`` (the element cannot be looked up without leaving the graph)."""
    if is_tracing():
        torch._assert_async(ok.all(), summary)
    elif not bool(ok.all()):
        raise error(message())


def check_equal(first: int, second: int, message: Callable[[], str]) -> None:
    """Require two sizes to be equal: a ``ValueError`` in eager mode, ``torch._check`` (an assumption the graph
    verifies at run time) while tracing, where the sizes may be symbols of values not known yet."""
    if is_tracing():
        torch._check(first == second)  # the message may read tensors, which a graph assertion cannot
    elif first != second:
        raise ValueError(message())


def check_supported_dtype(tensor: Tensor, name: str) -> None:
    """Quantized and complex tensors have no box arithmetic: a ``TypeError`` naming the dtype, up front."""
    if tensor.is_quantized or tensor.is_complex():
        raise TypeError(
            f"{name}: expected a real floating-point (or integer) tensor, got {tensor.dtype}; "
            "dequantize it first (tensor.dequantize())"
        )
