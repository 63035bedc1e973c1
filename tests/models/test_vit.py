"""Vision Transformer against torchvision and timm: outputs (fused and hand-written attention), attention weights,
block maps (timm's forward_intermediates), position-embedding resampling (timm's resample_abs_pos_embed, its
dynamic image size), weights of another image size, the parameter formula and bad input.

Small configurations of the references' own classes keep these cheap; the registered builders are compared in
tests/models/test_parity.py (B and L under -m slow).
"""

import pytest
import timm
import torch
import torchvision
from reference_models import randomize_
from timm.layers import resample_abs_pos_embed

import zoo
from zoo.layers import ViTBlock, ViTPatchEmbed, resample_pos_embed
from zoo.models.vit import VisionTransformer

SMALL = dict(patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_dim=96)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def small_vit(**kwargs) -> VisionTransformer:
    return VisionTransformer(**{**SMALL, "img_size": 32, "num_classes": 10, **kwargs})


def torchvision_small(image_size: int = 32):
    return torchvision.models.vision_transformer.VisionTransformer(
        image_size=image_size, patch_size=8, num_layers=2, num_heads=3, hidden_dim=48, mlp_dim=96, num_classes=10
    )


def timm_small(img_size: int = 32, **kwargs):
    return timm.models.vision_transformer.VisionTransformer(
        img_size=img_size, patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10, **kwargs
    )


def loaded(reference, **kwargs) -> tuple[torch.nn.Module, VisionTransformer]:
    reference = randomize_(reference).eval()
    ours = small_vit(**kwargs)
    assert n_params(ours) == n_params(reference)
    zoo.load_reference_weights(ours, reference.state_dict())
    return reference, ours.eval()


@pytest.mark.parametrize("make_reference", [torchvision_small, timm_small], ids=["torchvision", "timm"])
def test_equals_the_references_with_fused_and_hand_written_attention(make_reference):
    reference, ours = loaded(make_reference())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
        ours.fused_attn = False
        assert not any(block.self_attention.fused_attn for block in ours.blocks)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_attention_maps_are_torch_multihead_attention_weights():
    reference, ours = loaded(torchvision_small())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = ours.attention_maps(x)
        tokens = torch.cat([reference.class_token.expand(2, -1, -1), reference._process_input(x)], 1)
        tokens = tokens + reference.encoder.pos_embedding
        for layer, weights in zip(reference.encoder.layers, maps, strict=True):
            normed = layer.ln_1(tokens)
            _, expected = layer.self_attention(normed, normed, normed, average_attn_weights=False)
            torch.testing.assert_close(weights, expected, rtol=1e-5, atol=1e-6)
            tokens = layer(tokens)
    assert maps[0].shape == (2, 3, 17, 17)


def test_block_maps_equal_timm_forward_intermediates():
    reference = randomize_(timm_small()).eval()
    features = zoo.models.features.FeatureListNet(small_vit(), out_indices=(0, 1)).eval()
    zoo.load_reference_weights(features, reference.state_dict())  # norm.* and head.* are skipped
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        maps = features(x)
    assert [m.shape for m in maps] == [(2, 48, 4, 4)] * 2
    for ours_map, reference_map in zip(maps, expected, strict=True):
        torch.testing.assert_close(ours_map, reference_map, rtol=1e-5, atol=1e-5)


def test_features_only_keeps_the_blocks_it_needs_with_the_classifier_keys():
    model = small_vit(depth=4)
    features = zoo.models.features.FeatureListNet(model, out_indices=(1,))
    assert features.feature_info.module_name() == ["blocks.1"] and features.feature_info.reduction() == [8]
    assert set(features.state_dict()) < set(model.state_dict())
    assert not any(k.startswith(("blocks.2.", "blocks.3.", "norm.", "head.")) for k in features.state_dict())
    assert features(torch.randn(1, 3, 40, 24))[0].shape == (1, 48, 5, 3)


@pytest.mark.parametrize(
    "old, new, prefix",
    [((4, 4), (7, 7), 1), ((14, 14), (4, 4), 1), ((4, 4), (3, 5), 1), ((6, 3), (4, 8), 0), ((2, 2), (2, 2), 1)],
)
def test_resample_pos_embed_equals_timm(old, new, prefix):
    pos_embed = torch.randn(1, prefix + old[0] * old[1], 16)
    expected = resample_abs_pos_embed(pos_embed, list(new), list(old), num_prefix_tokens=prefix)
    torch.testing.assert_close(resample_pos_embed(pos_embed, new, old, num_prefix_tokens=prefix), expected)


def test_another_input_size_equals_timm_dynamic_img_size():
    reference, ours = loaded(timm_small(dynamic_img_size=True))
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make_reference", [torchvision_small, timm_small], ids=["torchvision", "timm"])
def test_weights_of_another_image_size_are_resampled_on_load(make_reference):
    reference = randomize_(make_reference(32)).eval()
    ours = zoo.load_reference_weights(small_vit(img_size=48), reference.state_dict()).eval()
    assert ours.embed.pos_embed.shape == (1, 1 + 6 * 6, 48)
    dynamic = zoo.load_reference_weights(small_vit(img_size=32), reference.state_dict()).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():  # built at 48 from resampled weights = built at 32, resampling as it runs
        torch.testing.assert_close(ours(x), dynamic(x))


def test_block_parameters_follow_the_closed_form():
    for dim in (48, 192):
        assert n_params(ViTBlock(dim, 3, 4 * dim)) == 12 * dim**2 + 13 * dim
    for name, params in [("vit_b_16", 86_567_656), ("vit_tiny_patch16_224", 5_717_416)]:
        with torch.device("meta"):
            assert n_params(zoo.create_model(name)) == params


def test_bad_input_is_a_clear_error():
    model = small_vit().eval()
    with pytest.raises(ValueError, match=r"divisible by the patch size 8, got 36×32"):
        model(torch.randn(1, 3, 36, 32))
    with pytest.raises(ValueError, match=r"expects 3 input channels .*got 1"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        model.attention_maps(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="img_size must be a positive multiple of the patch size 8"):
        small_vit(img_size=30)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ViTPatchEmbed(3, 8, 4)(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, L, D\) tokens"):
        ViTBlock(8, 2, 16)(torch.randn(2, 8, 8, 8))
    with pytest.raises(ValueError, match="not a square number"):
        resample_pos_embed(torch.randn(1, 1 + 12, 8), (4, 4))
    with pytest.raises(ValueError, match="old_grid 3×3 has 9 positions, pos_embed 12"):
        resample_pos_embed(torch.randn(1, 1 + 12, 8), (4, 4), old_grid=(3, 3))


@pytest.mark.slow
def test_vit_b_16_at_224_equals_torchvision():
    reference = randomize_(torchvision.models.vit_b_16()).eval()
    ours = zoo.load_reference_weights(zoo.create_model("vit_b_16"), reference.state_dict()).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
