"""Parameters and multiply-adds: fvcore's count, cross-checked by an independent closed-form count.

Convention: fvcore counts one fused multiply-add as one "flop"; zoo calls that a MAC everywhere and
shows 2·MACs beside it for readers used to counting multiplies and adds separately. The model is
counted in eval mode on a batch of one.

Two paths, which must agree exactly:
- fvcore traces the model with the JIT and counts each supported aten operator;
- the closed form records each leaf module's input and output shape with forward hooks and applies
  the textbook formula of its layer type (`zoo.analysis.formulas`), never fvcore's arithmetic.
fvcore has no handle for ``aten::scaled_dot_product_attention`` (the fused attention every zoo transformer
runs); zoo gives it one, B·h·L·S·(d_k + d_v) MACs for the two matrix products, so attention is counted like
the hand-written path's two matmuls. Modules that compute in their own ``forward`` besides their children
(multi-head attention's input projections and attention) get a row of their own.
Operators fvcore does not count (element-wise ops, max-pooling, `mean`, …) are listed with how
often they ran, so an undercount is never mistaken for a count.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore's focal loss is jit-scripted at import, which torch deprecates
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis

from zoo.analysis.formulas import attention_macs, layer_macs, module_own_macs

__all__ = [
    "OP_HANDLES",
    "FlopCount",
    "LayerCount",
    "count_flops",
    "count_macs",
    "count_parameters",
    "resolve_input_size",
    "scaled_dot_product_attention_handle",
]


@dataclass
class LayerCount:
    """One module's row: ``macs`` from fvcore, ``macs_closed_form`` from the formulas."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    macs_closed_form: int
    share: float


@dataclass
class FlopCount:
    model: str
    input_size: tuple[int, int, int]
    params: int
    macs: int
    macs_closed_form: int
    unsupported_ops: dict[str, int]
    layers: list[LayerCount] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """2·MACs: multiplies and adds counted separately."""
        return 2 * self.macs

    def to_dict(self, with_layers: bool = False) -> dict:
        result = asdict(self)
        result["flops"] = self.flops
        result["input_size"] = list(self.input_size)
        if not with_layers:
            del result["layers"]
        return result

    def table(self, depth: int | None = None) -> str:
        """Per-module rows (leaves, or modules ``depth`` levels deep) and the totals, as aligned text."""
        rows = self.layers if depth is None else _aggregate(self.layers, depth)
        header = ("module", "type", "output", "params", "MACs", "closed form", "share")
        lines = [
            (
                r.name,
                r.type,
                "×".join(map(str, r.output_shape)) if r.output_shape else "",
                f"{r.params:,}",
                f"{r.macs:,}",
                f"{r.macs_closed_form:,}",
                f"{100 * r.share:.1f}%",
            )  # fmt: skip
            for r in rows
        ]
        widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
        fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        agree = self.macs == self.macs_closed_form
        out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*line) for line in lines]
        out += [
            "",
            f"model            {self.model} at input {'×'.join(map(str, self.input_size))}",
            f"params           {self.params:,}",
            f"MACs (fvcore)    {self.macs:,}  ({self.macs / 1e9:.3f} G; 1 fused multiply-add = 1 MAC)",
            f"FLOPs = 2×MACs   {self.flops:,}  ({self.flops / 1e9:.3f} G)",
            f"MACs closed form {self.macs_closed_form:,}  ({'agrees' if agree else 'DIFFERS from fvcore'})",
            "not counted      " + (", ".join(f"{op} ×{n}" for op, n in sorted(self.unsupported_ops.items())) or "none"),
        ]
        return "\n".join(out)


def _aggregate(layers: list[LayerCount], depth: int) -> list[LayerCount]:
    groups: dict[str, LayerCount] = {}
    for layer in layers:
        key = ".".join(layer.name.split(".")[:depth])
        if key not in groups:
            groups[key] = LayerCount(key, layer.type if key == layer.name else "", layer.output_shape, 0, 0, 0, 0.0)
        group = groups[key]
        group.params += layer.params
        group.macs += layer.macs
        group.macs_closed_form += layer.macs_closed_form
        group.share += layer.share
        group.output_shape = layer.output_shape  # the last layer's output is the group's
    return list(groups.values())


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_input_size(input_size: int | Sequence[int], in_chans: int = 3) -> tuple[int, int, int]:
    """``224`` → (in_chans, 224, 224); ``(H, W)`` → (in_chans, H, W); ``(C, H, W)`` stays.

    Anything else is a ``TypeError`` (not an int or a sequence of ints: ``64.5``, ``"64"``, ``True``) or a
    ``ValueError`` (a size of zero or less, or another count of numbers), naming what came.
    """
    if _is_int(input_size):
        size = (input_size,)
    elif isinstance(input_size, Sequence) and not isinstance(input_size, (str, bytes)):
        size = tuple(input_size)
    else:
        raise TypeError(
            f"input_size must be an int S or a sequence (H, W) or (C, H, W) of ints, got {input_size!r} "
            f"({type(input_size).__name__})"
        )
    if not all(_is_int(s) for s in size):
        kinds = ", ".join(sorted({type(s).__name__ for s in size if not _is_int(s)}))
        raise TypeError(f"input_size must hold ints, got {input_size!r} (holding {kinds})")
    if len(size) not in (1, 2, 3) or not all(s > 0 for s in size):
        raise ValueError(f"input_size must be S, (H, W) or (C, H, W) of positive ints, got {input_size!r}")
    if len(size) == 1:
        return (in_chans, size[0], size[0])
    if len(size) == 2:
        return (in_chans, *size)
    return size  # type: ignore[return-value]


def scaled_dot_product_attention_handle(inputs: list, outputs: list) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: query, key and value are its first inputs."""
    from fvcore.nn.jit_handles import get_shape

    query, key, value = (get_shape(v) for v in inputs[:3])
    return attention_macs(query, key, value)


OP_HANDLES = {"aten::scaled_dot_product_attention": scaled_dot_product_attention_handle}


def _flatten_tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _flatten_tensors(item)]
    return []


class _FlatOutputs(nn.Module):
    """Tracing wrapper: models that return dicts or lists (feature pyramids, detectors, segmenters)
    are traced as returning a flat tuple of tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_flatten_tensors(self.model(x)))


def _closed_form_by_module(model: nn.Module, inputs: torch.Tensor) -> tuple[dict[str, int], dict[str, tuple]]:
    """Closed-form MACs per leaf module and the output shape of every module, from one hooked pass."""
    macs: Counter[str] = Counter()
    shapes: dict[str, tuple] = {}
    handles = []

    def hook(name: str, module: nn.Module):
        def record(_module, args, kwargs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape)
            elif isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
                shapes[name] = tuple(output[0].shape)  # attention: (output, weights)
            if list(module.children()):
                count = module_own_macs(module, args, kwargs)
            elif args and isinstance(args[0], torch.Tensor):
                count = layer_macs(module, tuple(args[0].shape), tuple(output.shape))
            else:
                count = None
            if count:
                macs[name] += count

        return record

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name, module), with_kwargs=True))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return dict(macs), shapes


def count_flops(model: nn.Module | str, input_size: int | Sequence[int] = (3, 224, 224), **model_kwargs) -> FlopCount:
    """Count ``model`` (a module, or a registered name built with ``model_kwargs``) on one input of
    ``input_size``: params, fvcore MACs, closed-form MACs, per-layer rows, uncounted operators."""
    if isinstance(model, str):
        import zoo

        name = model
        model = zoo.create_model(model, **model_kwargs)
    else:
        name = type(model).__name__
    in_chans = getattr(model, "in_chans", None)
    size = resolve_input_size(input_size, in_chans or 3)
    if in_chans is not None and size[0] != in_chans:  # before tracing, whose shapes would print as tensors
        raise ValueError(f"input_size: {name} takes {in_chans} input channels, got {size[0]} in {size}")
    param = next(model.parameters(), None)
    inputs = torch.zeros(1, *size, device=param.device if param is not None else "cpu")

    was_training = model.training
    model.eval()
    try:
        analysis = FlopCountAnalysis(_FlatOutputs(model), inputs).set_op_handle(**OP_HANDLES)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        total = int(analysis.total())
        by_module = {key.removeprefix("model."): value for key, value in analysis.by_module().items()}
        unsupported = dict(analysis.unsupported_ops())
        closed_form, shapes = _closed_form_by_module(model, inputs)
    finally:
        model.train(was_training)

    layers = []
    for module_name, module in model.named_modules():
        if not module_name:
            # Parameters the model holds itself (ViT's class token and position embedding) get a row.
            params = sum(p.numel() for p in module.parameters(recurse=False))
            if params:
                layers.append(LayerCount("(top level)", type(module).__name__, None, params, 0, 0, 0.0))
            continue
        children = [f"{module_name}.{child}" for child, _ in module.named_children()]
        # A module with children has a row only for work in its own forward (fvcore: its total less theirs).
        fv = int(by_module.get(module_name, 0)) - sum(int(by_module.get(child, 0)) for child in children)
        params = sum(p.numel() for p in module.parameters(recurse=False))
        cf = closed_form.get(module_name, 0)
        if children and not (fv or cf or params):
            continue
        if params or fv or cf:
            layers.append(
                LayerCount(
                    module_name,
                    type(module).__name__,
                    shapes.get(module_name),
                    params,
                    fv,
                    cf,
                    fv / total if total else 0.0,
                )
            )
    return FlopCount(
        model=name,
        input_size=size,
        params=count_parameters(model),
        macs=total,
        macs_closed_form=sum(closed_form.values()),
        unsupported_ops=unsupported,
        layers=layers,
    )


def count_macs(model: nn.Module, input_size: int | Sequence[int] = (3, 224, 224)) -> int:
    """fvcore MACs of one forward pass on a single input (see :func:`count_flops`)."""
    return count_flops(model, input_size).macs
