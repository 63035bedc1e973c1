"""Bring your own weights: map a torchvision- or timm-format state_dict onto a zoo model.

Each model class lists ``reference_renames``, regex rules that turn a reference key into the zoo key
(e.g. torchvision ``layer1.0.bn2.weight`` → zoo ``layer1.0.conv2.bn.weight``), and a classifier its
``reference_head`` (torchvision ``fc.weight`` → zoo ``head.fc.weight``). Loading is strict: every
reference key must land on a zoo key of the same shape, and every zoo key must be filled.

Where a rename is not enough, a model may also define ``convert_reference_state_dict(state_dict) -> dict``,
applied to the reference state_dict before the renames: e.g. to pack a Hugging Face attention layer's
separate ``q_proj``/``k_proj``/``v_proj`` weights into the one ``in_proj_weight`` of torch's (and zoo's)
``MultiheadAttention`` (:func:`pack_qkv_projections`). Models without it are loaded by the renames alone.

The helpers below build rename rules for the patterns that recur (a torchvision Conv2dNormActivation,
a submodule's rules seen from its parent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = [
    "conv_norm_act_renames",
    "head_renames",
    "load_reference_weights",
    "map_reference_keys",
    "nest_reference_renames",
    "pack_qkv_projections",
]


def conv_norm_act_renames(reference_prefix: str, prefix: str) -> list[tuple[str, str]]:
    """torchvision's Conv2dNormActivation is a Sequential (0: conv, 1: norm, 2: act); ours names them."""
    return [
        ("^" + re.escape(f"{reference_prefix}.0."), f"{prefix}.conv."),
        ("^" + re.escape(f"{reference_prefix}.1."), f"{prefix}.bn."),
    ]


def nest_reference_renames(prefix: str, renames: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ``reference_renames`` of a submodule, rewritten for keys that sit under ``prefix.`` in its parent.

    Rules anchored at the key's start (``^``) are re-anchored after the prefix; the others match a
    block's own names (``conv1``, ``bn1``, ``downsample``) wherever they occur and stay as they are.
    """
    escaped = re.escape(f"{prefix}.")
    return [
        ("^" + escaped + pattern[1:], f"{prefix}.{repl}") if pattern.startswith("^") else (pattern, repl)
        for pattern, repl in renames
    ]


def head_renames(reference_head: Mapping[str, str]) -> list[tuple[str, str]]:
    """``{"classifier.1": "fc"}`` → the rule taking the reference's ``classifier.1.*`` to our ``head.fc.*``."""
    return [("^" + re.escape(f"{theirs}."), f"head.{ours}.") for theirs, ours in reference_head.items()]


def pack_qkv_projections(
    state_dict: Mapping[str, torch.Tensor], names: tuple[str, str, str] = ("q_proj", "k_proj", "v_proj")
) -> dict[str, torch.Tensor]:
    """``state_dict`` with every ``<prefix>.q_proj.weight``, ``.k_proj.weight``, ``.v_proj.weight`` triple (the
    ``names`` given) replaced by ``<prefix>.in_proj_weight``, their concatenation in the order q, k, v (torch's
    packing), and likewise the biases into ``<prefix>.in_proj_bias``. Other keys are kept as they are; a triple
    with a member missing is a ValueError."""
    packed: dict[str, torch.Tensor] = {}
    pending: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        owner, _, projection = prefix.rpartition(".")
        if projection in names and leaf in ("weight", "bias"):
            pending.setdefault((owner, leaf), {})[projection] = value
        else:
            packed[key] = value
    for (owner, leaf), parts in pending.items():
        missing = [name for name in names if name not in parts]
        if missing:
            raise ValueError(f"{owner}: has {sorted(parts)} {leaf}s but not {missing}; cannot pack q, k and v")
        packed[f"{owner}.in_proj_{leaf}"] = torch.cat([parts[name] for name in names])
    return packed


def map_reference_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` with its keys renamed to ``model``'s, checking names and shapes."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of parameter names to tensors, got {type(state_dict).__name__}")
    convert = getattr(model, "convert_reference_state_dict", None)
    if convert is not None:
        state_dict = convert(state_dict)
    renames = [(re.compile(pattern), repl) for pattern, repl in getattr(model, "reference_renames", [])]
    # A key under one of the reference's head modules goes to the head, the model's own rules see the rest.
    head_rules = [(re.compile(pattern), repl) for pattern, repl in head_renames(getattr(model, "reference_head", {}))]
    dropped = tuple(f"{name}." for name in getattr(model, "dropped_modules", ()))
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for ref_key, value in state_dict.items():
        key = ref_key[len("module.") :] if ref_key.startswith("module.") else ref_key
        head_rule = next((rule for rule in head_rules if rule[0].match(key)), None)
        for pattern, repl in [head_rule] if head_rule else renames:
            key = pattern.sub(repl, key)
        if key not in own:
            if dropped and key.startswith(dropped):
                continue  # a head weight, for a features_only model that has no head
            raise ValueError(
                f"reference key {ref_key!r} (mapped to {key!r}) has no counterpart in "
                f"{type(model).__name__}: is the state_dict from the same architecture?"
            )
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"reference key {ref_key!r} holds a {type(value).__name__}, not a tensor")
        if value.shape != own[key].shape:
            raise ValueError(
                f"shape mismatch for reference key {ref_key!r} (zoo key {key!r}): reference "
                f"{tuple(value.shape)}, zoo model {tuple(own[key].shape)}"
            )
        if key in mapped:
            raise ValueError(f"two reference keys map onto zoo key {key!r}; the second is {ref_key!r}")
        mapped[key] = value
    missing = [key for key in own if key not in mapped]
    if missing:
        raise ValueError(
            f"the reference state_dict has no value for {len(missing)} zoo key(s) of "
            f"{type(model).__name__}, first {missing[0]!r}: is it from the same architecture?"
        )
    return mapped


def load_reference_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a torchvision/timm state_dict into the zoo model of the same architecture (strict)."""
    model.load_state_dict(map_reference_keys(model, state_dict), strict=True)
    return model
