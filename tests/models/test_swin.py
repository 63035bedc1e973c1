"""Swin Transformer against torchvision (outputs, gradients, stage maps), the shift mask against the paper's rule,
both attention paths, the closed-form parameter and MAC counts against the counters, and the errors on bad input.

The parametrised tests (tests/models/test_parity.py, test_classifiers.py, ...) check the registered builders too.
"""

from collections import OrderedDict

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from reference_models import randomize_, reference_model

import zoo
from zoo.layers import FPN, PatchMerging, ShiftedWindowAttention, SwinBlock, shifted_window_mask, window_partition
from zoo.layers.swin import SHIFT_MASK_VALUE, window_reverse
from zoo.weights import map_reference_keys


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def pair():
    """torchvision's swin_t with random weights and ours with the same weights, in eval mode."""
    torch.manual_seed(0)
    reference = randomize_(reference_model("swin_t")).eval()
    ours = zoo.load_reference_weights(zoo.create_model("swin_t"), reference.state_dict()).eval()
    return ours, reference


def test_equals_torchvision_at_a_size_that_needs_padding(pair):
    ours, reference = pair
    x = torch.randn(2, 3, 50, 70)  # stage maps 12×17, 6×9, 3×5, 2×3: padded windows and odd merges
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_gradients_equal_torchvision(pair):
    ours, reference = pair
    x = torch.randn(1, 3, 64, 64)
    ours(x).square().mean().backward()
    reference(x).square().mean().backward()
    reference_grads = {name: p.grad for name, p in reference.named_parameters()}
    reference_grads |= dict(reference.named_buffers())  # so that every zoo key is filled
    expected = map_reference_keys(ours, reference_grads)
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)
    ours.zero_grad(set_to_none=True)
    reference.zero_grad(set_to_none=True)


def test_features_only_gives_torchvision_stage_maps_as_nchw(pair):
    ours, reference = pair
    features = zoo.create_model("swin_t", features_only=True)
    zoo.load_reference_weights(features, reference.state_dict())
    assert features.feature_info.reduction() == [4, 8, 16, 32]
    assert features.feature_info.channels() == [96, 192, 384, 768]
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        maps = features.eval()(x)
        expected, y = [], x
        for index, layer in enumerate(reference.features):
            y = layer(y)
            if index % 2:  # the stages' blocks, channels-last
                expected.append(y.permute(0, 3, 1, 2))
    for feature_map, reference_map, channels, stride in zip(
        maps, expected, (96, 192, 384, 768), (4, 8, 16, 32), strict=True
    ):
        assert feature_map.shape == (1, channels, 96 // stride, 128 // stride)
        torch.testing.assert_close(feature_map, reference_map, rtol=1e-5, atol=1e-5)
    # The maps feed a feature pyramid as a ResNet's do.
    fpn = FPN(features.feature_info.channels(), 32)
    pyramid = fpn(OrderedDict((f"c{i + 2}", m) for i, m in enumerate(maps)))
    assert [p.shape[-2:] for p in pyramid.values()] == [m.shape[-2:] for m in maps]


def test_both_attention_paths_agree():
    torch.manual_seed(0)
    fused = ShiftedWindowAttention(32, 4, window_size=7, shift_size=3)
    hand_written = ShiftedWindowAttention(32, 4, window_size=7, shift_size=3, fused_attn=False)
    hand_written.load_state_dict(fused.state_dict())
    x = torch.randn(2, 16, 19, 32, requires_grad=True)  # padded to 21×21: 9 windows, shifted
    out = fused(x)
    (grad_fused,) = torch.autograd.grad(out.square().sum(), x)
    out_hand = hand_written(x)
    (grad_hand,) = torch.autograd.grad(out_hand.square().sum(), x)
    torch.testing.assert_close(out, out_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_fused, grad_hand, rtol=1e-5, atol=1e-5)


def test_both_attention_paths_agree_in_the_whole_model(pair):
    ours, reference = pair
    hand_written = zoo.create_model("swin_t", fused_attn=False).eval()
    hand_written.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(hand_written(x), ours(x), rtol=1e-5, atol=1e-5)


def test_export_leaves_no_fake_mask_behind():
    """The shift mask is cached for eager calls only: exporting at a new size must not cache a fake tensor."""
    layer = ShiftedWindowAttention(8, 2, window_size=7, shift_size=3).eval()
    x = torch.randn(1, 23, 15, 8)  # a size no other test uses: padded to 28×21
    program = torch.export.export(layer, (x,))
    with torch.no_grad():
        eager = layer(x)
        torch.testing.assert_close(program.module()(x), eager)
        torch.testing.assert_close(layer(x), eager)


def paper_rule_mask(height: int, width: int, window: int, shift: tuple[int, int]) -> torch.Tensor:
    """Two tokens of a window of the rolled map attend to each other iff they were less than M apart in the map
    before the roll (true neighbours); written with loops over positions, independently of the library."""

    def neighbours(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return abs(a[0] - b[0]) < window and abs(a[1] - b[1]) < window

    windows = []
    for top in range(0, height, window):
        for left in range(0, width, window):
            tokens = [(top + i, left + j) for i in range(window) for j in range(window)]
            original = [((y + shift[0]) % height, (x + shift[1]) % width) for y, x in tokens]
            windows.append([[0.0 if neighbours(a, b) else SHIFT_MASK_VALUE for b in original] for a in original])
    return torch.tensor(windows)


@pytest.mark.parametrize(
    "height, width, shift", [(14, 21, (3, 3)), (21, 14, (3, 3)), (14, 7, (3, 0)), (28, 14, (2, 2))]
)
def test_shift_mask_follows_the_paper_rule(height, width, shift):
    mask = shifted_window_mask(height, width, 7, shift)
    assert mask.shape == ((height // 7) * (width // 7), 49, 49)
    torch.testing.assert_close(mask, paper_rule_mask(height, width, 7, shift), rtol=0, atol=0)
    # Only the windows on the bottom row or right column hold tokens that wrapped around.
    assert (mask[0] == 0).all()


def test_window_partition_round_trip():
    x = torch.randn(2, 14, 21, 5)
    windows = window_partition(x, 7)
    assert windows.shape == (2 * 2 * 3, 49, 5)
    torch.testing.assert_close(windows[1], x[0, :7, 7:14].reshape(49, 5))  # row-major windows
    torch.testing.assert_close(window_reverse(windows, 7, 14, 21), x)


def test_block_parameters_follow_the_closed_form():
    # 12·C² + 13·C + (2M − 1)²·h for the block, 8·C² + 8·C for patch merging.
    for dim, heads in ((96, 3), (192, 6), (768, 24)):
        assert n_params(SwinBlock(dim, heads)) == 12 * dim**2 + 13 * dim + 13**2 * heads
        assert n_params(PatchMerging(dim)) == 8 * dim**2 + 8 * dim


def test_swin_t_parameters_follow_the_closed_form():
    widths, depths, heads, classes = (96, 192, 384, 768), (2, 2, 6, 2), (3, 6, 12, 24), 1000
    total = 48 * 96 + 3 * 96  # patch embedding: 4×4×3 conv with bias, LayerNorm
    total += sum(d * (12 * c**2 + 13 * c + 169 * h) for c, d, h in zip(widths, depths, heads, strict=True))
    total += sum(8 * c**2 + 8 * c for c in widths[:3])  # patch merging into stages 2..4
    total += 2 * 768 + 768 * classes + classes  # final LayerNorm and the linear head
    assert total == 28_288_354 == n_params(zoo.create_model("swin_t"))


def test_window_attention_macs_follow_the_closed_form():
    """fvcore (matmuls of the hand-written path) against 4·P·C² + 2·P·M²·C; P counts the padded tokens."""
    dim, window = 32, 7
    layer = ShiftedWindowAttention(dim, 4, window, shift_size=3, fused_attn=False).eval()
    x = torch.randn(1, 12, 19, dim)  # padded to 14×21
    analysis = FlopCountAnalysis(layer, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    tokens = 14 * 21
    assert analysis.total() == 4 * tokens * dim**2 + 2 * tokens * window**2 * dim


def test_bad_input_is_refused_clearly(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match=r"at least 32×32 pixels, got 16×40"):
        ours(torch.randn(1, 3, 16, 40))
    with pytest.raises(ValueError, match=r"expects 3 input channels"):
        ours(torch.randn(1, 4, 64, 64))
    with pytest.raises(TypeError, match=r"floating-point"):
        ours(torch.zeros(1, 3, 64, 64, dtype=torch.int64))
    attention = ShiftedWindowAttention(32, 4)
    with pytest.raises(ValueError, match=r"channels-last map of shape \(N, H, W, 32\), got \(1, 32, 14, 14\)"):
        attention(torch.randn(1, 32, 14, 14))  # an NCHW map
    with pytest.raises(TypeError, match=r"torch.Tensor of shape \(N, H, W, 32\)"):
        attention([0.0])
    with pytest.raises(ValueError, match=r"\(N, H, W, 16\), got \(14, 14, 16\)"):
        PatchMerging(16)(torch.randn(14, 14, 16))
    with pytest.raises(ValueError, match=r"window_partition needs H and W divisible by 7, got 14×20"):
        window_partition(torch.randn(1, 14, 20, 3), 7)


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match=r"dim must be divisible by num_heads, got dim=30 and num_heads=4"):
        ShiftedWindowAttention(30, 4)
    with pytest.raises(ValueError, match=r"shift_size must be an int in \[0, window_size=7\), got 7"):
        ShiftedWindowAttention(32, 4, window_size=7, shift_size=7)
    with pytest.raises(ValueError, match=r"window_size must be a positive int, got 0"):
        ShiftedWindowAttention(32, 4, window_size=0)
    with pytest.raises(ValueError, match=r"depths and num_heads must give 4 stages each"):
        zoo.models.swin.SwinTransformer(96, (2, 2, 6), (3, 6, 12))
    with pytest.raises(ValueError, match=r"drop_path_rate must be a number in \[0, 1\), got 1.5"):
        zoo.create_model("swin_t", drop_path_rate=1.5)
