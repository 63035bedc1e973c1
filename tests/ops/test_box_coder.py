"""BoxCoder against torchvision.models.detection._utils.BoxCoder and hand-computed encodings."""

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TorchvisionBoxCoder

from zoo.ops.box_coder import BoxCoder

WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 0.5, 3.0, 1.5)]


def random_boxes(n, dtype=torch.float32, generator=None):
    corner = torch.rand(n, 2, generator=generator, dtype=dtype) * 100
    size = torch.rand(n, 2, generator=generator, dtype=dtype) * 50 + 1
    return torch.cat([corner, corner + size], dim=1)


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_matches_torchvision(weights, dtype):
    ours, theirs = BoxCoder(weights), TorchvisionBoxCoder(weights)
    targets, anchors = random_boxes(200, dtype), random_boxes(200, dtype)
    codes = ours.encode_single(targets, anchors)
    torch.testing.assert_close(codes, theirs.encode_single(targets, anchors), rtol=0, atol=0)
    # Offsets for 3 classes per box, large enough for the exp clamp to act on some of them.
    rel_codes = torch.randn(200, 12, dtype=dtype) * 6
    decoded = ours.decode_single(rel_codes, anchors)
    assert decoded.shape == (200, 12) and decoded.dtype == dtype
    torch.testing.assert_close(decoded, theirs.decode_single(rel_codes, anchors), rtol=0, atol=0)


@pytest.mark.parametrize("weights", WEIGHTS[:2])
def test_list_batching_matches_torchvision(weights):
    ours, theirs = BoxCoder(weights), TorchvisionBoxCoder(weights)
    counts = [5, 0, 17]
    targets = [random_boxes(n) for n in counts]
    anchors = [random_boxes(n) for n in counts]
    encoded, expected = ours.encode(targets, anchors), theirs.encode(targets, anchors)
    assert [t.shape for t in encoded] == [t.shape for t in expected] == [(n, 4) for n in counts]
    for a, b in zip(encoded, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for per_box in (1, 4):  # the RPN (one set of offsets per anchor) and the box head (one per class)
        rel_codes = torch.randn(sum(counts), 4 * per_box) * 2
        decoded = ours.decode(rel_codes, anchors)
        assert decoded.shape == (sum(counts), per_box, 4)
        torch.testing.assert_close(decoded, theirs.decode(rel_codes, anchors), rtol=0, atol=0)
    # torchvision reshapes rel_codes to one row per box; the RPN passes [sum N, 4] and [B, A, 4] alike.
    rel_codes = torch.randn(sum(counts), 4)
    torch.testing.assert_close(ours.decode(rel_codes.reshape(1, -1, 4), anchors), theirs.decode(rel_codes, anchors))


def test_hand_computed_encoding():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    target = torch.tensor([[5.0, 5.0, 25.0, 15.0]])  # centre (15, 10), size 20 x 10; anchor centre (5, 5)
    expected = torch.tensor([[1.0, 0.5, math.log(2.0), 0.0]])
    torch.testing.assert_close(BoxCoder().encode_single(target, anchor), expected)
    weighted = torch.tensor([[10.0, 5.0, 5 * math.log(2.0), 0.0]])
    torch.testing.assert_close(BoxCoder((10.0, 10.0, 5.0, 5.0)).encode_single(target, anchor), weighted)


def test_decode_clamps_log_scale():
    anchor = torch.tensor([[0.0, 0.0, 16.0, 8.0]])
    decoded = BoxCoder().decode_single(torch.tensor([[0.0, 0.0, 20.0, -1.0]]), anchor)
    # exp(log(1000 / 16)) * 16 = 1000 wide around x = 8; height 8 / e around y = 4.
    torch.testing.assert_close(decoded, torch.tensor([[8 - 500.0, 4 - 4 / math.e, 8 + 500.0, 4 + 4 / math.e]]))
    clipped = BoxCoder(bbox_xform_clip=0.0).decode_single(torch.tensor([[0.0, 0.0, 3.0, 3.0]]), anchor)
    torch.testing.assert_close(clipped, anchor)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_round_trip(weights):
    coder = BoxCoder(weights)
    targets, anchors = random_boxes(100, torch.float64), random_boxes(100, torch.float64)
    torch.testing.assert_close(coder.decode_single(coder.encode_single(targets, anchors), anchors), targets)


def test_empty_inputs():
    coder = BoxCoder()
    assert coder.encode_single(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)
    assert coder.decode_single(torch.zeros(0, 8), torch.zeros(0, 4)).shape == (0, 8)
    assert coder.decode(torch.zeros(0, 8), [torch.zeros(0, 4)]).shape == (0, 2, 4)
    assert coder.encode([], []) == ()


def test_errors():
    coder = BoxCoder()
    boxes = random_boxes(3)
    with pytest.raises(ValueError, match="same number of boxes"):
        coder.encode_single(boxes, boxes[:2])
    with pytest.raises(ValueError, match="same number of boxes per image"):
        coder.encode([boxes], [boxes[:2]])
    with pytest.raises(TypeError, match="encode_single"):
        coder.encode(boxes, boxes)
    with pytest.raises(TypeError, match="decode_single"):
        coder.decode(torch.zeros(3, 4), boxes)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        coder.encode_single(boxes[:, :3], boxes)
    with pytest.raises(ValueError, match=r"\[N, 4K\]"):
        coder.decode_single(torch.zeros(3, 6), boxes)
    with pytest.raises(ValueError, match="one row per box"):
        coder.decode_single(torch.zeros(2, 4), boxes)
    with pytest.raises(ValueError, match="multiple of 4 x 3"):
        coder.decode(torch.zeros(3, 6), [boxes])
    with pytest.raises(ValueError, match="weights"):
        BoxCoder((1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="weights"):
        BoxCoder((1.0, 1.0, 1.0))


# --- FCOS's linear coder ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize_by_size", [True, False])
def test_linear_coder_matches_torchvision(normalize_by_size):
    from torchvision.models.detection._utils import BoxLinearCoder as TorchvisionBoxLinearCoder

    from zoo.ops.box_coder import BoxLinearCoder

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(2, 50, 2, generator=generator) * 60
    points = torch.cat([corners, corners + 8], dim=-1)  # [2, 50, 4]: a batch of images, as FCOS codes them
    boxes = torch.cat([corners - 5, corners + 5 + torch.rand(2, 50, 2, generator=generator) * 30], dim=-1)
    ours, theirs = BoxLinearCoder(normalize_by_size), TorchvisionBoxLinearCoder(normalize_by_size)
    codes = theirs.encode(points, boxes)
    assert torch.equal(ours.encode(points, boxes), codes)
    assert torch.equal(ours.decode(codes, points), theirs.decode(codes, points))
    torch.testing.assert_close(ours.decode(ours.encode(points, boxes), points), boxes, rtol=0, atol=1e-4)


def test_linear_coder_by_hand_and_errors():
    from zoo.ops.box_coder import BoxLinearCoder

    point = torch.tensor([[8.0, 8.0, 16.0, 16.0]])  # centre (12, 12), size 8
    box = torch.tensor([[4.0, 10.0, 20.0, 30.0]])
    assert BoxLinearCoder().encode(point, box).tolist() == [[1.0, 0.25, 1.0, 2.25]]
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        BoxLinearCoder().encode(point, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="one shape"):
        BoxLinearCoder().decode(torch.zeros(2, 4), point)
    with pytest.raises(TypeError, match="bool"):
        BoxLinearCoder(normalize_by_size=1)
