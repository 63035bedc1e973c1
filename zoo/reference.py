"""Build the counterpart a zoo model must equal, as its spec names it (``model_spec(name).reference``).

Reference models are always built with random weights: nothing is downloaded. torchvision, timm, smp and
transformers are imported lazily, so zoo itself depends on none but torchvision (the others are test oracles).
A transformers reference names a model class (``"transformers:DetrForObjectDetection"``) and its
``reference_kwargs`` are the arguments of that class's config (``DetrConfig``).
"""

from __future__ import annotations

from torch import nn

from zoo.registry import model_spec

__all__ = ["build_reference", "reference_label", "reference_source"]


def reference_source(name: str) -> tuple[str, str] | None:
    """``(library, reference_name)`` for a zoo model name, or None if it has no counterpart."""
    return model_spec(name).reference


def reference_label(name: str) -> str:
    """How the README names the counterpart: ``torchvision `resnet50```, ``timm `mobilenetv1_100` ×0.25``,
    ``smp `Unet` (resnet34)``, or the paper where there is none."""
    spec = model_spec(name)
    if spec.reference is None:
        return f"paper: {spec.paper}" if spec.paper else "–"
    library, reference_name = spec.reference
    width = spec.reference_kwargs.get("channel_multiplier")
    encoder = spec.reference_kwargs.get("encoder_name")  # smp: the architecture, then the encoder it is built on
    return (
        f"{library} `{reference_name}`"
        + (f" ×{width:g}" if width is not None else "")
        + (f" ({encoder})" if encoder is not None else "")
    )


def build_reference(name: str, **kwargs) -> nn.Module:
    """The counterpart of zoo model ``name``, randomly initialised, built with the spec's
    ``reference_kwargs`` and ``kwargs``."""
    spec = model_spec(name)
    if spec.reference is None:
        raise ValueError(f"zoo model {name!r} has no torchvision, timm, smp or transformers counterpart")
    library, reference_name = spec.reference
    kwargs = {**spec.reference_kwargs, **kwargs}
    if library == "torchvision":
        import torchvision

        return torchvision.models.get_model(reference_name, weights=None, **kwargs)
    if library == "timm":
        import timm

        if reference_name == "mobilenetv1_100" and "channel_multiplier" in kwargs:
            # timm registers MobileNetV1 only at ×1.0; its generator builds the other widths.
            from timm.models.efficientnet import _gen_mobilenet_v1

            return _gen_mobilenet_v1(reference_name, **kwargs)
        return timm.create_model(reference_name, pretrained=False, **kwargs)
    if library == "transformers":
        import transformers

        model_class = getattr(transformers, reference_name)
        return model_class(model_class.config_class(**kwargs))
    import segmentation_models_pytorch as smp

    return smp.create_model(reference_name, encoder_weights=None, **kwargs)
