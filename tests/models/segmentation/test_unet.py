"""U-Net and the backbone U-Net (over ResNet-34 here, as unet_mobilenet_v2 over MobileNetV2; the registered
unet_resnet34 is smp's U-Net, tested in test_smp.py): parameter counts against closed forms written from the
reference U-Net's layer table (milesial/Pytorch-UNet), output sizes for odd and even inputs, encoder weights
against torchvision's ResNet-34 stage outputs, input checking, and overfitting a few synthetic images."""

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from reference_models import randomize_, reference_model
from torchvision.models.feature_extraction import create_feature_extractor

import zoo
from zoo.data.segmentation import SyntheticSegmentation
from zoo.metrics.segmentation import mean_iou
from zoo.models.segmentation.unet import BackboneUNet, UNet
from zoo.registry import model_task


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# --- closed forms: conv k·k·C_in·C_out (+ C_out bias), BN 2·C, transposed 2×2 conv 4·C_in·C_out + C_out ----------
def conv(k, c_in, c_out, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0)


def bn(c):
    return 2 * c


def double_conv(c_in, c_out, c_mid=None):
    c_mid = c_out if c_mid is None else c_mid
    return conv(3, c_in, c_mid) + bn(c_mid) + conv(3, c_mid, c_out) + bn(c_out)


def conv_transpose(c_in, c_out):
    return conv(2, c_in, c_out, bias=True)


def reference_unet_params(n_channels, n_classes, bilinear, width=64):
    """The reference U-Net's table, its Up(in, out) taking the concatenated width `in`."""
    w = [width * 2**i for i in range(5)]
    factor = 2 if bilinear else 1

    def up(c_in, c_out):
        if bilinear:
            return double_conv(c_in, c_out, c_in // 2)
        return conv_transpose(c_in, c_in // 2) + double_conv(c_in, c_out)

    encoder = double_conv(n_channels, w[0]) + sum(double_conv(w[i], w[i + 1]) for i in range(3))
    encoder += double_conv(w[3], w[4] // factor)
    decoder = up(w[4], w[3] // factor) + up(w[3], w[2] // factor) + up(w[2], w[1] // factor) + up(w[1], w[0])
    return encoder + decoder + conv(1, w[0], n_classes, bias=True)


def test_published_unet_parameter_counts():
    assert reference_unet_params(3, 2, bilinear=False) == 31_037_698
    assert reference_unet_params(3, 2, bilinear=True) == 17_263_042
    with torch.device("meta"):  # shapes only: nothing to initialise
        assert n_params(zoo.create_model("unet")) == 31_037_698
        assert n_params(zoo.create_model("unet", bilinear=True)) == 17_263_042


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("in_chans, num_classes, width", [(1, 11, 8), (4, 3, 16), (3, 21, 5)])
def test_unet_parameter_count_closed_form(bilinear, in_chans, num_classes, width):
    model = UNet(num_classes=num_classes, in_chans=in_chans, base_width=width, bilinear=bilinear)
    assert n_params(model) == reference_unet_params(in_chans, num_classes, bilinear, width)


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("size", [(33, 47), (31, 31), (64, 64), (16, 16), (17, 40)])
def test_unet_output_has_the_input_size(bilinear, size):
    model = zoo.create_model("unet", num_classes=5, base_width=4, bilinear=bilinear).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert set(out) == {"out"}
    assert out["out"].shape == (2, 5, *size)


def test_unet_checks_its_input_and_arguments():
    model = zoo.create_model("unet", in_chans=1, base_width=4)
    with pytest.raises(ValueError, match="1 input channels"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(1, 32, 32))
    with pytest.raises(ValueError, match="at least 16×16"):
        model(torch.randn(1, 1, 15, 32))
    for kwargs in ({"num_classes": 0}, {"in_chans": -1}, {"base_width": 2.0}):
        with pytest.raises(ValueError):
            zoo.create_model("unet", **kwargs)
    with pytest.raises(TypeError, match="bilinear"):
        zoo.create_model("unet", bilinear=1)


def test_registered_as_segmentation_models():
    for name in ("unet", "unet_resnet34", "unet_mobilenet_v2"):
        assert model_task(name) == "segmentation"


# --- the backbone U-Net --------------------------------------------------------------------------
RESNET34_FC = conv(1, 512, 1000, bias=True)  # torchvision's classifier, which the encoder drops


def resnet34_decoder_params(num_classes, bilinear):
    """Stages from stride 32: skips layer3 (256), layer2 (128), layer1 (64), then none at strides 2 and 1."""
    stages = [(512, 256, 256), (256, 128, 128), (128, 64, 64), (64, 0, 32), (32, 0, 16)]  # (in, skip, out)
    total = 0
    for c_in, c_skip, c_out in stages:
        if bilinear:
            total += double_conv(c_in + c_skip, c_out)
        else:
            total += conv_transpose(c_in, c_in // 2) + double_conv(c_in // 2 + c_skip, c_out)
    return total + conv(1, 16, num_classes, bias=True)


@pytest.fixture(scope="module")
def resnet34_unets():
    """One backbone U-Net over ResNet-34 per upsampling mode (building ResNet-34 is the slow part), in eval mode."""
    return {
        bilinear: BackboneUNet.from_backbone("resnet34", num_classes=7, bilinear=bilinear).eval()
        for bilinear in (False, True)
    }


@pytest.mark.parametrize("bilinear", [False, True])
def test_backbone_unet_resnet34_parameter_count(bilinear):
    with torch.device("meta"):
        model = BackboneUNet.from_backbone("resnet34", num_classes=7, bilinear=bilinear)
        encoder = n_params(reference_model("resnet34")) - RESNET34_FC
    assert n_params(model.encoder) == encoder
    assert n_params(model) == encoder + resnet34_decoder_params(7, bilinear)


@pytest.mark.parametrize("bilinear", [False, True])
def test_backbone_unet_resnet34_output_has_the_input_size(resnet34_unets, bilinear):
    for size in [(33, 47), (64, 64), (31, 1)]:
        with torch.no_grad():
            out = resnet34_unets[bilinear](torch.randn(1, 3, *size))
        assert set(out) == {"out"}
        assert out["out"].shape == (1, 7, *size)


def test_unet_mobilenet_v2_output_has_the_input_size():
    model = zoo.create_model("unet_mobilenet_v2", num_classes=4).eval()
    assert model.skip_indices == [3, 2, 1, 0, None]  # stages at strides 16, 8, 4, 2; none at 1
    with torch.no_grad():
        assert model(torch.randn(1, 3, 35, 30))["out"].shape == (1, 4, 35, 30)


def test_backbone_unet_resnet34_encoder_loads_torchvision_weights(resnet34_unets):
    reference = randomize_(reference_model("resnet34")).eval()
    model = resnet34_unets[True]
    zoo.load_reference_weights(model.encoder, reference.state_dict())
    stages = ["layer1", "layer2", "layer3", "layer4"]
    taps = create_feature_extractor(reference, {name: name for name in stages})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = taps(x), model.encoder(x)
    for name, feature in zip(stages, actual, strict=True):
        torch.testing.assert_close(feature, expected[name], rtol=1e-5, atol=1e-5)


def test_backbone_unet_checks_its_arguments():
    # MobileNetV2 (2M parameters) builds faster than ResNet-34; the checks are the same class's.
    with pytest.raises(ValueError, match="1 input channels"):
        zoo.create_model("unet_mobilenet_v2", in_chans=1)(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="5 for an encoder at reduction 32"):
        zoo.create_model("unet_mobilenet_v2", decoder_channels=(64, 32, 16))
    with pytest.raises(ValueError, match="decoder_channels"):
        zoo.create_model("unet_mobilenet_v2", decoder_channels=(64, 32, 16, 8, 0))
    with pytest.raises(TypeError, match="decoder_channels"):
        zoo.create_model("unet_mobilenet_v2", decoder_channels=16)
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("unet_mobilenet_v2", num_classes=0)
    with pytest.raises(TypeError, match="features_only"):
        BackboneUNet(torch.nn.Conv2d(3, 3, 1), num_classes=2)


def test_backbone_unet_skips_follow_the_reductions():
    # A dilated ResNet (strides 4, 8, 8, 8) needs three stages; layer2 and layer3 share layer4's stride.
    model = BackboneUNet.from_backbone(
        "resnet18", num_classes=2, decoder_channels=(32, 16, 8), replace_stride_with_dilation=[False, True, True]
    ).eval()
    assert model.skip_indices == [0, None, None]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 32))["out"].shape == (1, 2, 37, 32)


# --- learning ------------------------------------------------------------------------------------
def overfit(model, image_size, steps):
    """Adam on 4 synthetic images (11 classes, 255 = ignore); returns (first loss, last loss, images, masks)."""
    data = SyntheticSegmentation(4, image_size, seed=0)
    images = torch.stack([data[i][0] for i in range(4)])
    masks = torch.stack([data[i][1] for i in range(4)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(images)["out"], masks, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1], images, masks


def test_unet_loss_falls_on_a_few_images():
    # Measured: 2.45 → 0.51 (×4.8) in 30 steps (3.07 → 0.87, ×3.5, with bilinear upsampling).
    first, last, _, _ = overfit(UNet(num_classes=11, base_width=8), 32, steps=30)
    assert last < first / 3


@pytest.mark.slow
@pytest.mark.parametrize("bilinear", [False, True])
def test_unet_overfits_a_few_images(bilinear):
    # Measured after 100 steps: loss 2.91 → 0.024 (×121), eval-mode mIoU 0.83 with transposed convs;
    # 2.57 → 0.0093 (×277), mIoU 0.99 with bilinear upsampling.
    model = UNet(num_classes=11, base_width=16, bilinear=bilinear)
    first, last, images, masks = overfit(model, 64, steps=100)
    assert last < first / 30
    with torch.no_grad():
        predictions = model.eval()(images)["out"].argmax(1)
    assert mean_iou(predictions, masks, 11, ignore_index=255) > 0.7
