"""GoogLeNet (Szegedy et al., 2014, arXiv:1409.4842) and Inception-v3 (Szegedy et al., 2015, arXiv:1512.00567)
as torchvision defines them, and Inception-v4 (Szegedy et al., 2016, arXiv:1602.07261) as timm defines it.

    stem: strided convolutions and max-pools                        (stride 4)
    stages of Inception modules (zoo.layers.inception), each stage ended by a max-pool or a reduction module
                                                                    (strides 8, 16, 32)
    head: global average pool → dropout → linear

Inception-v3 and v4 are valid-padded: at their 299×299 input the stage maps are 147, 71/73, 35, 17 and 8 pixels
wide, so ``feature_info`` records the nominal reductions 2, 4, 8, 16, 32 (as timm does), not exact divisions.

Auxiliary classifiers (GoogLeNet: on inception4a and inception4d; Inception-v3: on Mixed_6e) run only in
training mode, where the forward returns torchvision's named tuple (``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)``, ``InceptionOutputs(logits, aux_logits)``); in eval mode it returns the logits tensor. The
training loss adds them with the weights in ``aux_loss_weights``: L = L(logits) + Σ_i w_i·L(aux_i).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.inception import (
    INCEPTION_V3_REFERENCE_RENAMES,
    INCEPTION_V4_REFERENCE_RENAMES,
    Inception,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionV3Aux,
    InceptionV4A,
    InceptionV4B,
    InceptionV4C,
    InceptionV4Mixed3a,
    InceptionV4Mixed4a,
    InceptionV4Mixed5a,
    InceptionV4ReductionA,
    InceptionV4ReductionB,
    inception_conv,
)
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "InceptionOutputs", "InceptionV3", "InceptionV4"]

# The papers, for the model specs.
GOOGLENET_PAPER = "Szegedy et al. 2014, Going Deeper with Convolutions, arXiv:1409.4842"
INCEPTION_V3_PAPER = "Szegedy et al. 2015, Rethinking the Inception Architecture, arXiv:1512.00567"
INCEPTION_V4_PAPER = "Szegedy et al. 2016, Inception-v4, Inception-ResNet, arXiv:1602.07261"


class GoogLeNetOutputs(NamedTuple):
    """Training-mode output of GoogLeNet with auxiliary heads (torchvision's field order)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


class InceptionOutputs(NamedTuple):
    """Training-mode output of Inception-v3 with its auxiliary head."""

    logits: torch.Tensor
    aux_logits: torch.Tensor | None


class ImageNetToInceptionInput(nn.Module):
    """torchvision's ``transform_input``: turn an input normalised with the ImageNet mean μ and std σ into the
    [−1, 1] scaling Google's weights were trained on, per channel  x' = x·σ/0.5 + (μ − 0.5)/0.5."""

    def __init__(self) -> None:
        super().__init__()
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        # In double precision, rounded once, as torchvision's Python scalars are. Not persistent: constants, not
        # weights, so the state_dict stays torchvision's.
        scale = torch.tensor([s / 0.5 for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in mean]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class _InceptionNet(ImageClassifier):
    """What the three share. Subclasses register their stages as top-level children, in the order they run,
    then call ``_add_head``; ``aux_taps`` maps a stage to the auxiliary head that reads its output (the heads
    are listed in ``feature_skip``, off the path of ``forward_features``)."""

    aux_taps: dict[str, str] = {}
    outputs_type: type[tuple] = tuple

    def __init__(self, *, num_classes: int, in_chans: int, drop_rate: float, transform_input: bool = False) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        if transform_input and in_chans != 3:
            raise ValueError(f"transform_input=True re-normalises 3 RGB channels, got in_chans={in_chans}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate  # read by _add_head
        self.transform_input = transform_input
        self.aux_logits = False
        self.aux_loss_weights: tuple[float, ...] = ()
        if transform_input:
            self.input_transform = ImageNetToInceptionInput()

    def _add_head(self, num_features: int) -> None:
        self.num_features = num_features
        self.head = ClassifierHead(num_features, self.num_classes, drop_rate=self.drop_rate)

    def _min_input_note(self) -> str:
        if self.training and self.aux_logits:
            return " in training mode (eval mode or aux_logits=False may accept less)"
        return ""

    def _forward_stages(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux_outputs = []
        for name, module in self.named_children():
            if name in self.feature_skip or name in self.head_modules:
                continue
            x = module(x)
            if with_aux and name in self.aux_taps:
                aux_outputs.append(getattr(self, self.aux_taps[name])(x))
        return x, aux_outputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_stages(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple:
        self.check_input(x)
        with_aux = self.training and self.aux_logits
        x, aux_outputs = self._forward_stages(x, with_aux)
        logits = self.forward_head(x)
        if not with_aux:
            return logits
        # torchvision lists the deepest auxiliary output first.
        return self.outputs_type(logits, *reversed(aux_outputs))


class GoogLeNet(_InceptionNet):
    """GoogLeNet (Inception v1) with batch norm, as torchvision builds it with ``weights=None``: auxiliary heads
    on, ``transform_input`` off, weights drawn from N(0, 0.01²) truncated at ±2."""

    feature_skip = ("aux1", "aux2")
    aux_taps = {"inception4a": "aux1", "inception4d": "aux2"}
    outputs_type = GoogLeNetOutputs

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        init_weights: bool = True,
        drop_rate: float = 0.2,
        aux_drop_rate: float = 0.7,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, transform_input=transform_input
        )
        # Sizes at the 224×224 input. The Inception rows are the paper's Table 1:
        # (in, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj).
        self.conv1 = inception_conv(in_chans, 64, 7, stride=2)  # 112², stride 2
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 56², stride 4
        self.conv2 = inception_conv(64, 64, 1)
        self.conv3 = inception_conv(64, 192, 3)  # 56², stride 4
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 28², stride 8
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)  # 28², 480 channels
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 14², stride 16
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)  # 14², 832 channels
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 7², stride 32
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)  # 7², 1024 channels
        self.feature_info = FeatureInfo(
            [
                {"num_chs": 64, "reduction": 2, "module": "conv1"},
                {"num_chs": 192, "reduction": 4, "module": "conv3"},
                {"num_chs": 480, "reduction": 8, "module": "inception3b"},
                {"num_chs": 832, "reduction": 16, "module": "inception4e"},
                {"num_chs": 1024, "reduction": 32, "module": "inception5b"},
            ]
        )
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, drop_rate=aux_drop_rate)
            self.aux2 = InceptionAux(528, num_classes, drop_rate=aux_drop_rate)
            self.aux_logits = True
            self.aux_loss_weights = (0.3, 0.3)  # the paper's discount weight for each auxiliary loss
        self._add_head(1024)
        if init_weights:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)


class InceptionV3(_InceptionNet):
    """Inception-v3 as torchvision builds it with ``weights=None``: auxiliary head on, ``transform_input`` off,
    weights drawn from N(0, 0.1²) truncated at ±2, the auxiliary head's linear from N(0, 0.001²). (torchvision
    also marks the auxiliary 5×5 conv for std 0.01, on a wrapper its initialisation never reads: it gets 0.1.)"""

    reference_renames = INCEPTION_V3_REFERENCE_RENAMES
    feature_skip = ("AuxLogits",)
    aux_taps = {"Mixed_6e": "AuxLogits"}
    outputs_type = InceptionOutputs

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        init_weights: bool = True,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, transform_input=transform_input
        )
        # torchvision's (TF-slim's) layer names; sizes at the 299×299 input.
        self.Conv2d_1a_3x3 = inception_conv(in_chans, 32, 3, stride=2, padding=0)  # 149²
        self.Conv2d_2a_3x3 = inception_conv(32, 32, 3, padding=0)  # 147²
        self.Conv2d_2b_3x3 = inception_conv(32, 64, 3)  # 147², stride 2
        self.maxpool1 = nn.MaxPool2d(3, stride=2)  # 73²
        self.Conv2d_3b_1x1 = inception_conv(64, 80, 1)
        self.Conv2d_4a_3x3 = inception_conv(80, 192, 3, padding=0)  # 71², stride 4
        self.maxpool2 = nn.MaxPool2d(3, stride=2)  # 35²
        self.Mixed_5b = InceptionA(192, pool_features=32)  # 256 channels
        self.Mixed_5c = InceptionA(256, pool_features=64)  # 288
        self.Mixed_5d = InceptionA(288, pool_features=64)  # 35², 288, stride 8
        self.Mixed_6a = InceptionB(288)  # 17², 768
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)  # 17², 768, stride 16
        self.Mixed_7a = InceptionD(768)  # 8², 1280
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)  # 8², 2048, stride 32
        self.feature_info = FeatureInfo(
            [
                {"num_chs": 64, "reduction": 2, "module": "Conv2d_2b_3x3"},
                {"num_chs": 192, "reduction": 4, "module": "Conv2d_4a_3x3"},
                {"num_chs": 288, "reduction": 8, "module": "Mixed_5d"},
                {"num_chs": 768, "reduction": 16, "module": "Mixed_6e"},
                {"num_chs": 2048, "reduction": 32, "module": "Mixed_7c"},
            ]
        )
        if aux_logits:
            self.AuxLogits = InceptionV3Aux(768, num_classes)
            self.aux_logits = True
            self.aux_loss_weights = (0.4,)
        self._add_head(2048)
        if init_weights:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(module.weight, mean=0.0, std=0.1, a=-2.0, b=2.0)
            if aux_logits and num_classes > 0:
                nn.init.trunc_normal_(self.AuxLogits.fc.weight, mean=0.0, std=0.001, a=-2.0, b=2.0)

    @property
    def min_input_size(self) -> tuple[int, int]:
        # The valid stem and reductions need 75 px; in training, the auxiliary head's valid 5×5/3 pool and 5×5
        # conv need a 17×17 Mixed_6e map, which only a 299 px input gives.
        return (299, 299) if self.training and self.aux_logits else super().min_input_size


# timm keeps the 22 layers of Inception-v4 in one Sequential `features`; here each is a top-level child named
# after its TF-slim endpoint. Sizes at the 299×299 input.
_INCEPTION_V4_LAYERS = [
    "Conv2d_1a_3x3",  # 149², 32 channels
    "Conv2d_2a_3x3",  # 147², 32
    "Conv2d_2b_3x3",  # 147², 64, stride 2
    "Mixed_3a",  # 73², 160, stride 4
    "Mixed_4a",  # 71², 192
    "Mixed_5a",  # 35², 384
    *[f"Mixed_5{index}" for index in "bcde"],  # 4 × Inception-A: 35², 384, stride 8
    "Mixed_6a",  # Reduction-A: 17², 1024
    *[f"Mixed_6{index}" for index in "bcdefgh"],  # 7 × Inception-B: 17², 1024, stride 16
    "Mixed_7a",  # Reduction-B: 8², 1536
    *[f"Mixed_7{index}" for index in "bcd"],  # 3 × Inception-C: 8², 1536, stride 32
]


class InceptionV4(_InceptionNet):
    """Inception-v4 as timm builds it (no auxiliary head; PyTorch's default initialisation)."""

    reference_renames = [
        *[(rf"^features\.{index}\.", f"{name}.") for index, name in enumerate(_INCEPTION_V4_LAYERS)],
        *INCEPTION_V4_REFERENCE_RENAMES,
    ]
    reference_head = {"last_linear": "fc"}

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        layers = [
            inception_conv(in_chans, 32, 3, stride=2, padding=0),
            inception_conv(32, 32, 3, padding=0),
            inception_conv(32, 64, 3),
            InceptionV4Mixed3a(64),
            InceptionV4Mixed4a(160),
            InceptionV4Mixed5a(192),
            *[InceptionV4A(384) for _ in range(4)],
            InceptionV4ReductionA(384),
            *[InceptionV4B(1024) for _ in range(7)],
            InceptionV4ReductionB(1024),
            *[InceptionV4C(1536) for _ in range(3)],
        ]
        for name, layer in zip(_INCEPTION_V4_LAYERS, layers, strict=True):
            self.add_module(name, layer)
        self.feature_info = FeatureInfo(
            [
                {"num_chs": 64, "reduction": 2, "module": "Conv2d_2b_3x3"},
                {"num_chs": 160, "reduction": 4, "module": "Mixed_3a"},
                {"num_chs": 384, "reduction": 8, "module": "Mixed_5e"},
                {"num_chs": 1024, "reduction": 16, "module": "Mixed_6h"},
                {"num_chs": 1536, "reduction": 32, "module": "Mixed_7d"},
            ]
        )
        self._add_head(1536)


# Ceil-mode pools: 15 px still leave one position at stride 32.
@register_model(
    min_input_size=15,
    reference="torchvision",
    paper=GOOGLENET_PAPER,
    published=Published(6_624_904, 1.498, TORCHVISION_DOCS, 0.05, True, build_kwargs={"aux_logits": False}),
)
def googlenet(**kwargs) -> GoogLeNet:
    return GoogLeNet(**kwargs)


# Published at 299; the valid stem and reductions need 75 (299 in training with the auxiliary head).
@register_model(
    input_size=299,
    min_input_size=75,
    reference="torchvision",
    paper=INCEPTION_V3_PAPER,
    published=Published(27_161_264, 5.713, TORCHVISION_DOCS, 0.05, True),
)
def inception_v3(**kwargs) -> InceptionV3:
    return InceptionV3(**kwargs)


# Published at 299; the valid stem and reductions need 75.
@register_model(input_size=299, min_input_size=75, reference="timm", paper=INCEPTION_V4_PAPER)
def inception_v4(**kwargs) -> InceptionV4:
    return InceptionV4(**kwargs)
