"""PSPNet (the paper's, on a dilated ResNet-50) and SegNet (VGG-16 encoder, decoder unpooling by its indices):
parameter counts written out here from the papers' layer tables (and the authors' SegNet prototxt), torchvision's
dilated ResNet-50 and VGG-16-BN as the truth for the backbones, the pyramid's bins and the unpooling positions
seen by hooks against torch's own max_pool2d / max_unpool2d, output sizes, a few training steps, bad input."""

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import torchvision
from models.segmentation.test_deeplab import _fit, _resnet50_body_params, _synthetic_batch, build_uninitialised

import zoo
from zoo.layers.pyramid_pooling import PyramidPooling
from zoo.models.segmentation.deeplab import FCNHead
from zoo.models.segmentation.segnet import MaxUnpool2d
from zoo.registry import model_spec


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def conv_bn(c_in, c_out, k, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0) + 2 * c_out


# --- PSPNet -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes, aux_loss", [(21, False), (21, True), (150, True)])
def test_pspnet_parameter_count_closed_form(num_classes, aux_loss):
    # Paper §3.2-3.3: four bins, each 1×1 conv-BN-ReLU 2048 → 2048/4; 3×3 conv-BN-ReLU 4096 → 512; 1×1 classifier.
    pyramid = 4 * conv_bn(2048, 512, 1)
    head = conv_bn(2048 + 4 * 512, 512, 3) + 512 * num_classes + num_classes
    aux = conv_bn(1024, 256, 3) + 256 * num_classes + num_classes if aux_loss else 0
    model = build_uninitialised("pspnet_resnet50", num_classes=num_classes, aux_loss=aux_loss)
    assert n_params(model) == _resnet50_body_params() + pyramid + head + aux
    if num_classes == 21:
        assert n_params(model) == (48_957_802 if aux_loss else 46_592_597)  # the docstring's figures


def test_pspnet_registered_as_the_paper():
    spec = model_spec("pspnet_resnet50")
    assert spec.task == "segmentation" and spec.default_input_size == (473, 473)
    assert "1612.01105" in spec.paper


def _conv2_settings(resnet):
    return [
        (block.conv2.stride, block.conv2.dilation)
        for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
        for block in layer
    ]


def test_pspnet_backbone_is_torchvisions_resnet50_dilated_to_stride_8():
    model = build_uninitialised("pspnet_resnet50")
    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    ours = [(block.conv2.conv.stride, block.conv2.conv.dilation) for block in _blocks(model.backbone)]
    assert ours == _conv2_settings(reference)
    assert {d for s, d in ours[-3:]} == {(2, 2), (4, 4)}  # layer4 dilated (4 after its first block)
    maps = {}
    model.backbone.layer4.register_forward_hook(lambda m, i, o: maps.setdefault("layer4", o))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 65, 64))
    # Stride 8 by the conv arithmetic: 65 → 33 (stem) → 17 (max-pool) → 9 (layer2); 64 → 8.
    assert maps["layer4"].shape == (1, 2048, 9, 8)


def _blocks(backbone):
    return [block for name in ("layer1", "layer2", "layer3", "layer4") for block in getattr(backbone, name)]


def test_pspnet_pools_bins_1_2_3_6_and_concatenates_after_the_map():
    model = zoo.create_model("pspnet_resnet50", num_classes=5).eval()
    seen, maps = [], {}
    for branch in model.classifier.pyramid.branches:
        branch.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), tuple(o.shape))))
    model.backbone.layer4.register_forward_hook(lambda m, i, o: maps.setdefault("layer4", o))
    model.classifier.pyramid.register_forward_hook(lambda m, i, o: maps.setdefault("pyramid", o))
    with torch.no_grad():
        model(torch.randn(2, 3, 57, 80))  # layer4: 8×10
    assert seen == [((2, 2048, b, b), (2, 512, b, b)) for b in (1, 2, 3, 6)]
    assert maps["pyramid"].shape == (2, 4096, 8, 10)
    torch.testing.assert_close(maps["pyramid"][:, :2048], maps["layer4"])  # [x, bins…] as the paper's Fig. 3
    head = model.classifier.head
    assert head.conv.conv.kernel_size == (3, 3) and head.conv.conv.out_channels == 512
    assert head.dropout.p == 0.1


@pytest.mark.parametrize("layout, expected_order", [("smp", "branches first"), ("paper", "input first")])
def test_pyramid_layouts_parameter_count_and_order(layout, expected_order):
    block = PyramidPooling(64, layout=layout)
    # smp: the 1×1 bin is conv + bias, no BN; the paper's: conv-BN-ReLU on every bin.
    one_by_one = 64 * 16 + 16 if layout == "smp" else conv_bn(64, 16, 1)
    assert n_params(block) == one_by_one + 3 * conv_bn(64, 16, 1)
    x = torch.randn(2, 64, 7, 9)
    out = block.eval()(x)
    assert out.shape == (2, 128, 7, 9)
    kept = out[:, :64] if expected_order == "input first" else out[:, -64:]
    torch.testing.assert_close(kept, x)


# --- SegNet -------------------------------------------------------------------------------------------
# The encoder's 13 convolutions (VGG-16, configuration D) and the decoder's 13 (SegNet-Tutorial's prototxt:
# conv5_3_D … conv1_1_D), as (c_in, c_out); K is the class count.
SEGNET_ENCODER = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                  (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
SEGNET_DECODER = [(512, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 256), (256, 256),
                  (256, 256), (256, 128), (128, 128), (128, 64), (64, 64)]  # fmt: skip


def segnet_params(num_classes):
    convs = sum(conv_bn(c_in, c_out, 3, bias=True) for c_in, c_out in SEGNET_ENCODER + SEGNET_DECODER)
    return convs + 9 * 64 * num_classes + num_classes  # conv1_1_D: a plain 3×3 conv to the classes


@pytest.mark.parametrize("num_classes", [21, 11])
def test_segnet_parameter_count_closed_form(num_classes):
    model = build_uninitialised("segnet_vgg16", num_classes=num_classes)
    assert n_params(model) == segnet_params(num_classes)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 26
    assert convs[-1] is model.classifier and model.classifier.kernel_size == (3, 3)


def test_segnet_encoder_is_torchvisions_vgg16_bn_features():
    with torch.device("meta"):
        reference = torchvision.models.vgg16_bn().features
    model = build_uninitialised("segnet_vgg16")
    expected = [(m.in_channels, m.out_channels) for m in reference if isinstance(m, torch.nn.Conv2d)]
    ours = [(m.conv.in_channels, m.conv.out_channels) for stage in model.encoder.values() for m in stage]
    assert ours == expected == SEGNET_ENCODER
    assert n_params(model.encoder) == n_params(reference)
    # The zoo's own vgg16_bn stage keys load into the encoder as they are (the paper's ImageNet start).
    with torch.device("meta"):
        vgg = zoo.create_model("vgg16_bn")
    stage_keys = {k for k in vgg.state_dict() if k.startswith("stage")}
    assert {k.removeprefix("encoder.") for k in model.state_dict() if k.startswith("encoder.")} == stage_keys


@pytest.mark.parametrize("kernel, stride, size", [(2, 2, (9, 14)), (2, 2, (8, 8)), (3, 2, (11, 7))])
def test_max_unpool_equals_torchs(kernel, stride, size):
    x = torch.randn(2, 3, *size)
    pooled, indices = F.max_pool2d(x, kernel, stride, return_indices=True)
    expected = F.max_unpool2d(pooled, indices, kernel, stride, output_size=size)
    torch.testing.assert_close(MaxUnpool2d()(pooled, indices, size), expected, rtol=0, atol=0)


def test_segnet_unpools_to_the_pooled_argmax_positions_at_odd_sizes():
    model = zoo.create_model("segnet_vgg16", num_classes=5).eval()
    pre_pool, unpool_calls = [], []
    for stage in model.encoder.values():
        stage.register_forward_hook(lambda m, i, o: pre_pool.append(o))
    model.unpool.register_forward_hook(lambda m, i, o: unpool_calls.append((i[0], i[1], o)))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 45, 71))["out"]
    assert out.shape == (1, 5, 45, 71)
    assert [tuple(p.shape[-2:]) for p in pre_pool] == [(45, 71), (22, 35), (11, 17), (5, 8), (2, 4)]
    # Decoder stage s unpools with the indices torch's max_pool2d gives on encoder stage s's output, to its size.
    for (x, indices, unpooled), before in zip(unpool_calls, reversed(pre_pool), strict=True):
        pooled, expected_indices = F.max_pool2d(before, 2, 2, return_indices=True)
        assert torch.equal(indices, expected_indices) and x.shape == pooled.shape
        expected = F.max_unpool2d(x, indices, 2, 2, output_size=before.shape[-2:])
        torch.testing.assert_close(unpooled, expected, rtol=0, atol=0)
    # The first unpooling takes pool5's own output: every window's maximum goes back where it was, zeros elsewhere.
    x, _, unpooled = unpool_calls[0]
    before = pre_pool[-1]
    torch.testing.assert_close(x, F.max_pool2d(before, 2), rtol=0, atol=0)
    torch.testing.assert_close(F.max_pool2d(unpooled, 2), x, rtol=0, atol=0)
    assert torch.where(unpooled != 0, unpooled == before, True).all()
    assert (unpooled != 0).sum() <= x.numel()


def test_segnet_registered_at_camvid_size():
    spec = model_spec("segnet_vgg16")
    assert spec.task == "segmentation" and spec.default_input_size == (360, 480)
    assert "1511.00561" in spec.paper


# --- both -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(64, 64), (33, 47), (32, 96)])
@pytest.mark.parametrize("name, kwargs", [("pspnet_resnet50", {"aux_loss": True}), ("segnet_vgg16", {})])
def test_output_size_equals_input_size(name, kwargs, size):
    model = zoo.create_model(name, num_classes=7, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert list(out) == (["out", "aux"] if kwargs else ["out"])
    for logits in out.values():
        assert logits.shape == (2, 7, *size)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name, kwargs", [("pspnet_resnet50", {"aux_loss": True}), ("segnet_vgg16", {})])
def test_loss_falls_on_two_images(name, kwargs):
    # When written: SegNet 2.42 → 0.97, PSPNet (out + 0.5·aux) 3.72 → 1.73 in 5 steps.
    torch.manual_seed(0)
    images, masks = _synthetic_batch(2, 32)
    model = zoo.create_model(name, num_classes=11, **kwargs)
    losses = _fit(model, images, masks, steps=5, lr=1e-3)
    assert losses[-1] < losses[0] / 2, losses


def test_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("pspnet_resnet50", num_classes=0)
    with pytest.raises(TypeError, match="aux_loss must be a bool"):
        zoo.create_model("pspnet_resnet50", aux_loss="yes")
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("segnet_vgg16", num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        zoo.create_model("segnet_vgg16", in_chans=0)
    with pytest.raises(ValueError, match="layout must be one of"):
        PyramidPooling(64, layout="caffe")
    with pytest.raises(ValueError, match="channels"):
        FCNHead(64, 3, channels=0)
    segnet = build_uninitialised("segnet_vgg16")
    with pytest.raises(ValueError, match="at least 32"):
        segnet(torch.randn(1, 3, 31, 64))
    for model in (segnet, build_uninitialised("pspnet_resnet50")):
        with pytest.raises(ValueError, match="4-D batch"):
            model(torch.randn(3, 64, 64))
        with pytest.raises(ValueError, match="3 input channels"):
            model(torch.randn(1, 1, 64, 64))
        with pytest.raises(TypeError, match="floating-point"):
            model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
