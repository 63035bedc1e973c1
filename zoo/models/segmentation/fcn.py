"""FCN (Long, Shelhamer and Darrell, 2015, arXiv:1411.4038) as torchvision's ``models.segmentation.fcn``.

A fully convolutional network: a classifier without its pooling and fully connected layers keeps a spatial
map, a convolutional head turns it into per-pixel class scores, and bilinear upsampling brings them back to
the input size. The paper's FCN-32s/16s/8s fuse skip connections from pool3/pool4; torchvision's version (the
one people load) instead keeps the map dense with a dilated ResNet (output stride 8, as DeepLabv3's) and has
no skips:

    image → ResNet (layer3, layer4 dilated; stride 8) → FCN head on layer4 → bilinear ×8 → "out"
    auxiliary (training aid): FCN head on layer3 → bilinear ×8 → "aux"

The FCN head (``zoo.models.segmentation.deeplab.FCNHead``) is 3×3 conv-BN-ReLU to C_in/4, dropout 0.1 and a
1×1 conv. For C classes and ResNet-50 (2048 channels at layer4, 1024 at layer3):

    head(2048) = 9·2048·512 + 2·512 + 512·C + C
    aux(1024)  = 9·1024·256 + 2·256 + 256·C + C

so at C = 21: 23,508,032 (ResNet-50 without its fc) + 9,448,981 + 2,365,205 (aux) = 35,322,218, torchvision's
documented count with the auxiliary head.
"""

from __future__ import annotations

from zoo.registry import TORCHVISION_DOCS, Published, register_model

from .deeplab import NO_DOWNLOAD, DeepLabV3, FCNHead, _check_builder_args, _resnet_backbone

__all__ = ["FCN"]

FCN_PAPER = "Long et al. 2015, Fully Convolutional Networks for Semantic Segmentation, arXiv:1411.4038"


class FCN(DeepLabV3):
    """``backbone`` → FCN head on ``out_layer`` (and ``aux_classifier`` on ``aux_layer``), upsampled to the
    input. The wiring is DeepLabV3's (torchvision's ``_SimpleSegmentationModel`` for both); only the head
    differs: no ASPP."""


def _fcn_resnet(name: str, num_classes: int, aux_loss: bool, in_chans: int) -> FCN:
    _check_builder_args(num_classes, aux_loss)
    backbone = _resnet_backbone(name, 8, (2, 3), in_chans)
    aux_info, out_info = backbone.feature_info
    return FCN(
        backbone,
        FCNHead(out_info["num_chs"], num_classes),
        FCNHead(aux_info["num_chs"], num_classes) if aux_loss else None,
        out_layer=out_info["module"],
        aux_layer=aux_info["module"] if aux_loss else None,
    )


# torchvision documents its weights with the auxiliary head: the published counts are built with aux_loss.
@register_model(
    task="segmentation",
    input_size=520,
    reference="torchvision",
    reference_kwargs=NO_DOWNLOAD,
    paper=FCN_PAPER,
    published=Published(35_322_218, 152.717, TORCHVISION_DOCS, 0.05, True, build_kwargs={"aux_loss": True}),
)
def fcn_resnet50(*, num_classes: int = 21, aux_loss: bool = False, in_chans: int = 3) -> FCN:
    return _fcn_resnet("resnet50", num_classes, aux_loss, in_chans)


@register_model(
    task="segmentation",
    input_size=520,
    reference="torchvision",
    reference_kwargs=NO_DOWNLOAD,
    paper=FCN_PAPER,
    published=Published(54_314_346, 232.738, TORCHVISION_DOCS, 0.05, True, build_kwargs={"aux_loss": True}),
)
def fcn_resnet101(*, num_classes: int = 21, aux_loss: bool = False, in_chans: int = 3) -> FCN:
    return _fcn_resnet("resnet101", num_classes, aux_loss, in_chans)
