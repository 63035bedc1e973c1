"""Where each zoo model's counterpart lives, for tests and benchmarks: torchvision, or timm.

Reference models are always built with random weights: nothing is downloaded. torchvision and timm
are imported lazily, so zoo itself does not depend on timm (a test-only dependency).
"""

from __future__ import annotations

from torch import nn

__all__ = ["TIMM_NAMES", "build_reference", "reference_source"]

# zoo name → timm name, where timm is the reference and the names differ.
TIMM_NAMES = {
    "mobilenet_v1": "mobilenetv1_100",
    "xception": "legacy_xception",
}
# MobileNetV1 width variants: timm registers only ×1.0, and builds the others from its generator
# with a channel multiplier.
MOBILENET_V1_WIDTHS = {"mobilenet_v1_025": 0.25, "mobilenet_v1_050": 0.5, "mobilenet_v1_075": 0.75}


def reference_source(name: str) -> tuple[str, str] | None:
    """``("torchvision" | "timm", reference_name)`` for a zoo model name, or None if it has none."""
    import torchvision

    if name in TIMM_NAMES:
        return "timm", TIMM_NAMES[name]
    if name in MOBILENET_V1_WIDTHS:
        return "timm", f"mobilenetv1_100 ×{MOBILENET_V1_WIDTHS[name]}"
    if name in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", name
    import timm

    if timm.is_model(name):
        return "timm", name
    return None


def build_reference(name: str, **kwargs) -> nn.Module:
    """The counterpart of zoo model ``name``, randomly initialised, built with ``kwargs``."""
    source = reference_source(name)
    if source is None:
        raise ValueError(f"zoo model {name!r} has no torchvision or timm counterpart")
    library, reference_name = source
    if library == "torchvision":
        import torchvision

        return torchvision.models.get_model(reference_name, weights=None, **kwargs)
    import timm

    if name in MOBILENET_V1_WIDTHS:
        from timm.models.efficientnet import _gen_mobilenet_v1

        return _gen_mobilenet_v1("mobilenetv1_100", channel_multiplier=MOBILENET_V1_WIDTHS[name], **kwargs)
    return timm.create_model(reference_name, pretrained=False, **kwargs)
