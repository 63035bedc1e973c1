"""Receptive fields of CNNs: analytic, along the main path, and empirical, from input gradients.

Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019.
Per axis, for a layer with kernel k, stride s, left padding p and dilation d, with k_eff = d·(k − 1) + 1:

    r_out     = r_in + (k_eff − 1) · j_in                  receptive-field size, in input pixels
    j_out     = j_in · s                                   jump: input pixels between neighbouring units
    start_out = start_in + ((k_eff − 1) / 2 − p) · j_in    centre of the field of output unit 0

from r = 1, j = 1, start = 0 at the input. Coordinates: input pixel i (0-based) has its centre at i, so
output unit y sees input pixels start + y·j − (r − 1)/2 ... start + y·j + (r − 1)/2; a negative start
means that the first unit's field reaches into the padding.

The main path. The model runs once on zeros, with hooks on every module; each 4-D tensor a leaf module
returns carries the geometry of its input, moved on by the recurrences if the leaf is a Conv2d,
MaxPool2d or AvgPool2d. A tensor made by a functional op (``x + shortcut``, ``x * scale``, ``torch.cat``,
an in-place ``+=``) is unseen by hooks: it takes the geometry of the recorded tensor of the same
(C, H, W) with the largest r, else of the same (H, W), else the input's. So a residual sum follows its
larger-r branch, not its 1×1 projection shortcut. A 1×1 map that matches nothing is a pooled vector
(squeeze-excite) and is off the main path, as is whatever follows an adaptive pool to 1×1 (the head).
An adaptive pool whose output size divides its input size counts as the fixed pool k = s = input/output;
one with uneven bins ends the path like a global pool.
The reported layers are the chain that leads to the model's last 4-D output or, for a classifier, to
its last global pool.

Refused with a ValueError: ConvTranspose2d and any other module that changes the spatial size
(Upsample, PixelShuffle). Spatial functional ops (``F.max_pool2d``, ``F.interpolate``) are invisible to
hooks and are not counted.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

__all__ = [
    "Geometry",
    "LayerGeometry",
    "ReceptiveField",
    "StageGeometry",
    "empirical_receptive_field",
    "receptive_field",
]

_SPATIAL_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Geometry:
    """Receptive field of the units of one feature map, per axis (height, width): r, j and start."""

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]

    def after(
        self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
    ) -> Geometry:
        """The geometry at the output of a layer with this window, applied to a map with this geometry."""
        axes = zip(self.size, self.jump, self.start, kernel, stride, padding, dilation, strict=True)
        rows = [(r + d * (k - 1) * j, j * s, x0 + (d * (k - 1) / 2 - p) * j) for r, j, x0, k, s, p, d in axes]
        size, jump, start = zip(*rows, strict=True)
        return Geometry(size, jump, start)


@dataclass(frozen=True)
class LayerGeometry:
    """One spatial layer on the main path and the geometry at its output."""

    name: str
    type: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    output_size: tuple[int, int]
    geometry: Geometry


@dataclass(frozen=True)
class StageGeometry:
    """The geometry at the output of one ``feature_info`` stage."""

    module: str
    reduction: int
    geometry: Geometry


@dataclass
class ReceptiveField:
    """What :func:`receptive_field` found.

    ``layers``: the main path's spatial layers in execution order. ``by_module``: the geometry at the
    output of every module whose output is a spatial map (shortcuts included). ``global_pool``: the
    module after which a classifier's map became global, if the path ended there.
    """

    layers: list[LayerGeometry]
    by_module: dict[str, Geometry]
    feature_info: list[dict] = field(default_factory=list)
    global_pool: str | None = None

    @property
    def output(self) -> Geometry:
        """The geometry at the end of the main path."""
        return self.layers[-1].geometry

    def stages(self) -> list[StageGeometry]:
        return [
            StageGeometry(info["module"], info["reduction"], self.by_module[info["module"]])
            for info in self.feature_info
        ]

    def table(self, stages: bool = False) -> str:
        """Aligned plain text: one row per main-path layer, or per ``feature_info`` stage."""
        if stages:
            header, text_columns = ("stage", "reduction", "r", "j", "start"), 1
            rows = [(s.module, str(s.reduction), *_geometry_cells(s.geometry)) for s in self.stages()]
        else:
            header = ("layer", "type", "kernel", "stride", "padding", "dilation", "output", "r", "j", "start")
            text_columns = 2
            rows = [
                (layer.name, layer.type)
                + tuple(_pair_cell(v) for v in (layer.kernel, layer.stride, layer.padding, layer.dilation))
                + (f"{layer.output_size[0]}x{layer.output_size[1]}", *_geometry_cells(layer.geometry))
                for layer in self.layers
            ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(width) if i < text_columns else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            for row in [header, *rows]
        ]
        return "\n".join(line.rstrip() for line in lines)


def _pair_cell(pair: tuple) -> str:
    return f"{pair[0]:g}" if pair[0] == pair[1] else f"{pair[0]:g}x{pair[1]:g}"


def _geometry_cells(geometry: Geometry) -> tuple[str, str, str]:
    return _pair_cell(geometry.size), _pair_cell(geometry.jump), _pair_cell(geometry.start)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _window(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, left padding, dilation) of a Conv2d, MaxPool2d or AvgPool2d."""
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride or module.kernel_size)
    dilation = _pair(getattr(module, "dilation", 1))
    padding = module.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":  # PyTorch puts the odd pixel of the total d·(k − 1) on the right
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
    return kernel, stride, _pair(padding), dilation


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int, int]:
    valid = (
        isinstance(input_size, Sequence)
        and not isinstance(input_size, (str, bytes))
        and len(input_size) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size)
    )
    if not valid:
        raise ValueError(f"input_size must be (C, H, W), three positive ints such as (3, 224, 224); got {input_size!r}")
    return tuple(input_size)


def _is_map(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 4


def _last_map(output: object) -> torch.Tensor | None:
    """The last 4-D tensor of a model's output (a tensor, or a list, tuple or dict of them)."""
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return next((m for m in map(_last_map, reversed(output)) if m is not None), None)
    return output if _is_map(output) else None


@dataclass(frozen=True)
class _Node:
    """A geometry, the layer that made it (None at the input) and the node that layer read."""

    geometry: Geometry
    layer: LayerGeometry | None = None
    parent: _Node | None = None


def _largest(nodes: list[_Node]) -> _Node:
    # On ties the earliest wins: on a 1×1 map, the main branch rather than the squeeze-excite that rescales it.
    return max(nodes, key=lambda node: node.geometry.size)


class _Tracer:
    """Hook callbacks that carry a _Node with every 4-D tensor; None marks a map off the main path."""

    def __init__(self, x: torch.Tensor) -> None:
        self.input_node = _Node(Geometry((1, 1), (1, 1), (0.0, 0.0)))
        # id → (tensor, version, node). Holding the tensor keeps its id from being reused; the version
        # tells an in-place op (``out += identity``) that changed it since it was recorded.
        self.records: dict[int, tuple[torch.Tensor, int, _Node | None]] = {}
        self.pending: dict[int, tuple[_Node | None, tuple[int, int]]] = {}
        self.by_module: dict[str, Geometry] = {}
        self.global_pools: list[tuple[str, _Node]] = []
        self.track(x, self.input_node)

    def track(self, tensor: torch.Tensor, node: _Node | None) -> None:
        self.records[id(tensor)] = (tensor, tensor._version, node)

    def node_of(self, tensor: torch.Tensor) -> _Node | None:
        record = self.records.get(id(tensor))
        if record is not None and record[1] == tensor._version:
            return record[2]
        recorded = [(t.shape, node) for t, _, node in self.records.values() if node is not None]
        same_map = [node for shape, node in recorded if shape[1:] == tensor.shape[1:]]
        if same_map:
            return _largest(same_map)
        if tensor.shape[-2:] == (1, 1):
            return None
        same_grid = [node for shape, node in recorded if shape[-2:] == tensor.shape[-2:]]
        return _largest(same_grid) if same_grid else self.input_node

    def before_leaf(self, module: nn.Module, args: tuple) -> None:
        if args and _is_map(args[0]):
            self.pending[id(module)] = (self.node_of(args[0]), tuple(args[0].shape[-2:]))

    def after_leaf(self, name: str, module: nn.Module, args: tuple, output: object) -> None:
        pending = self.pending.pop(id(module), None)
        if pending is None or not _is_map(output):
            return
        node, input_size = pending
        if node is not None:
            node = self._through(name, module, node, input_size, tuple(output.shape[-2:]))
        self.track(output, node)

    def after_module(self, name: str, module: nn.Module, args: tuple, output: object) -> None:
        if not _is_map(output):
            return
        node = self.node_of(output)
        self.track(output, node)
        if node is not None:
            self.by_module[name] = node.geometry

    def _through(
        self, name: str, module: nn.Module, node: _Node, input_size: tuple[int, int], output_size: tuple[int, int]
    ) -> _Node | None:
        if isinstance(module, _ADAPTIVE_POOLS):
            if output_size == (1, 1) or any(i % o for i, o in zip(input_size, output_size, strict=True)):
                self.global_pools.append((name, node))  # global, or uneven bins: the path ends here
                return None
            kernel = tuple(i // o for i, o in zip(input_size, output_size, strict=True))
            return self._layer(name, module, node, (kernel, kernel, (0, 0), (1, 1)), output_size)
        if isinstance(module, _SPATIAL_LAYERS):
            return self._layer(name, module, node, _window(module), output_size)
        if isinstance(module, nn.ConvTranspose2d) or output_size != input_size:
            raise ValueError(
                f"receptive_field cannot follow {name!r} ({type(module).__name__}), which maps {input_size} to "
                f"{output_size}: only Conv2d, MaxPool2d, AvgPool2d and adaptive pools are understood"
            )
        return node

    @staticmethod
    def _layer(name: str, module: nn.Module, node: _Node, window: tuple, output_size: tuple[int, int]) -> _Node:
        layer = LayerGeometry(name, type(module).__name__, *window, output_size, node.geometry.after(*window))
        return _Node(layer.geometry, layer, node)


def receptive_field(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> ReceptiveField:
    """Analytic receptive field of every spatial layer on the model's main path (see the module docstring)."""
    input_size = _check_input_size(input_size)
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else None)
    tracer = _Tracer(x)
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            handles.append(module.register_forward_pre_hook(tracer.before_leaf))
            handles.append(module.register_forward_hook(partial(tracer.after_leaf, name)))
        handles.append(module.register_forward_hook(partial(tracer.after_module, name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output_map = _last_map(model(x))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    end = tracer.node_of(output_map) if output_map is not None else None
    global_pool = None
    if end is None and tracer.global_pools:
        global_pool, end = tracer.global_pools[-1]
    layers = []
    while end is not None and end.layer is not None:
        layers.append(end.layer)
        end = end.parent
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no Conv2d, MaxPool2d or AvgPool2d on the path from its input to its "
            "output; there is no receptive field to compute"
        )
    return ReceptiveField(
        layers=layers[::-1],
        by_module=tracer.by_module,
        feature_info=[dict(info) for info in getattr(model, "feature_info", [])],
        global_pool=global_pool,
    )


def _positive_copy(model: nn.Module) -> nn.Module:
    """A float64 copy in which every path from input to output carries a positive gradient."""
    probe = copy.deepcopy(model).double().eval().requires_grad_(False)
    for name, module in list(probe.named_modules()):
        replacement = None
        if isinstance(module, _NORMS):
            replacement = nn.Identity()
        elif isinstance(module, nn.MaxPool2d):
            if _pair(module.dilation) != (1, 1):
                raise ValueError(f"empirical_receptive_field cannot replace the dilated max-pool {name!r}")
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
        elif isinstance(module, nn.modules.conv._ConvNd):
            module.weight.fill_(module.weight.shape[0] / module.weight.numel())  # 1 / fan_in
            if module.bias is not None:
                module.bias.zero_()
        if replacement is not None:
            parent_name, _, child_name = name.rpartition(".")
            setattr(probe.get_submodule(parent_name), child_name, replacement)
    return probe


def empirical_receptive_field(
    model: nn.Module, input_size: Sequence[int] = (3, 224, 224), output_index: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(height, width) of the input region that reaches one output unit, measured by autograd.

    The unit is ``output_index = (row, column)`` of the model's 4-D output, by default the central
    one; the region is where ``d out[0, :, row, column].sum() / d input`` is nonzero. So that no
    gradient cancels or vanishes, the gradient is taken through a float64 copy of the model with
    convolution weights 1/fan_in and no bias, normalisation layers replaced by identities and max-pools
    by average pools of the same window (a max-pool's gradient reaches only the arg-max), on a positive
    random input. Global operations (squeeze-excite) reach every input pixel, so for models that have
    them the measured field is the whole input. Use an input large enough that the field is not cut by
    the border.
    """
    input_size = _check_input_size(input_size)
    probe = _positive_copy(model)
    param = next(probe.parameters(), None)
    generator = torch.Generator().manual_seed(0)
    x = 1 + torch.rand(1, *input_size, generator=generator, dtype=torch.float64)
    x = x.to(param.device if param is not None else "cpu").requires_grad_()
    output = probe(x)
    if not _is_map(output):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise TypeError(f"empirical_receptive_field needs a model that returns an (N, C, H, W) map, got {shape}")
    height, width = output.shape[-2:]
    row, column = output_index if output_index is not None else (height // 2, width // 2)
    if not (0 <= row < height and 0 <= column < width):
        raise ValueError(f"output_index {output_index} is outside the {height}x{width} output map")
    output[0, :, row, column].sum().backward()
    reached = x.grad[0].ne(0).any(dim=0)
    rows, columns = reached.any(dim=1).nonzero(), reached.any(dim=0).nonzero()
    return int(rows.max() - rows.min() + 1), int(columns.max() - columns.min() + 1)
