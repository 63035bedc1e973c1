"""Grid anchors against torchvision's AnchorGenerator; anchor clustering against closed forms and known clusters."""

import math

import pytest
import torch
import torchvision
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from zoo.ops.anchors import AnchorGenerator, anchor_fitness, kmeans_anchors, wh_iou

FPN_SIZES = ((32,), (64,), (128,), (256,), (512,))
FPN_RATIOS = ((0.5, 1.0, 2.0),) * 5

CONFIGS = [
    (FPN_SIZES, FPN_RATIOS),
    (((16, 24, 40),), ((0.25, 0.5, 1.0, 3.0),)),
    (((20, 33), (90,)), ((1.0, 1.7), (0.3, 0.5, 2.2))),
]


@pytest.mark.parametrize(("sizes", "ratios"), CONFIGS)
def test_cell_anchors_match_torchvision(sizes, ratios):
    ours, theirs = AnchorGenerator(sizes, ratios), TorchvisionAnchorGenerator(sizes, ratios)
    assert len(ours.cell_anchors) == len(theirs.cell_anchors)
    for a, b in zip(ours.cell_anchors, theirs.cell_anchors, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert ours.num_anchors_per_location() == theirs.num_anchors_per_location()


def test_cell_anchors_hand_computed_order():
    # Ratio-major: (r=0.5, s=32), (r=0.5, s=64), (r=1, s=32), (r=1, s=64); w = s / sqrt(r), h = s * sqrt(r).
    expected = []
    for ratio in (0.5, 1.0):
        for size in (32, 64):
            half_w, half_h = size / math.sqrt(ratio) / 2, size * math.sqrt(ratio) / 2
            expected.append([-round(half_w), -round(half_h), round(half_w), round(half_h)])
    ours = AnchorGenerator(((32, 64),), ((0.5, 1.0),)).cell_anchors[0]
    assert ours.tolist() == expected
    assert expected[0] == [-23, -11, 23, 11]


@pytest.mark.parametrize(
    ("image_size", "grids"),
    [
        ((64, 96), [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]),
        ((75, 50), [(19, 13), (10, 7), (5, 4), (3, 2), (2, 1)]),  # strides that do not divide the image
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_torchvision(image_size, grids, dtype):
    images = ImageList(torch.zeros(2, 3, *image_size), [image_size, (image_size[0] - 5, image_size[1] - 7)])
    features = [torch.zeros(2, 4, *grid, dtype=dtype) for grid in grids]
    expected = TorchvisionAnchorGenerator(FPN_SIZES, FPN_RATIOS)(images, features)
    ours = AnchorGenerator()(images, features)
    assert len(ours) == len(expected) == 2
    for a, b in zip(ours, expected, strict=True):
        assert a.dtype == b.dtype == dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # A plain batch tensor, or named feature maps, give the same anchors.
    named = {str(i): f for i, f in enumerate(features)}
    for a, b in zip(AnchorGenerator()(images.tensors, named), expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_grid_layout_hand_computed():
    generator = AnchorGenerator(((8,),), ((1.0,),))
    (anchors,) = generator(torch.zeros(1, 3, 8, 12), [torch.zeros(1, 1, 2, 3)])
    # Stride (4, 4); rows first, then columns, each anchor [-4, -4, 4, 4] shifted by (4 j, 4 i).
    expected = [[4 * j - 4, 4 * i - 4, 4 * j + 4, 4 * i + 4] for i in range(2) for j in range(3)]
    assert anchors.tolist() == expected


def test_flat_shorthand_and_state_dict_like_torchvision():
    ours = AnchorGenerator((128, 256, 512), (0.5, 1.0, 2.0))
    theirs = TorchvisionAnchorGenerator((128, 256, 512), (0.5, 1.0, 2.0))
    assert ours.num_anchors_per_location() == theirs.num_anchors_per_location() == [3, 3, 3]
    for a, b in zip(ours.cell_anchors, theirs.cell_anchors, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []


def test_fasterrcnn_anchor_generator_matches():
    # The generator fasterrcnn_resnet50_fpn builds, against our defaults.
    theirs = torchvision.models.detection.faster_rcnn._default_anchorgen()
    ours = AnchorGenerator()
    images = ImageList(torch.zeros(1, 3, 96, 128), [(90, 128)])
    features = [torch.zeros(1, 1, 96 // s, 128 // s) for s in (4, 8, 16, 32, 64)]
    torch.testing.assert_close(ours(images, features)[0], theirs(images, features)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": ((32,), (64,)), "aspect_ratios": ((1.0,),) * 3}, "one entry per feature level"),
        ({"sizes": ((32, -4),)}, "positive"),
        ({"sizes": ()}, "non-empty"),
        ({"sizes": ((),), "aspect_ratios": ((1.0,),)}, "non-empty"),
        ({"sizes": ((32,),), "aspect_ratios": ((0.0,),)}, "positive"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AnchorGenerator(**kwargs)


def test_forward_errors():
    generator = AnchorGenerator()
    features = [torch.zeros(1, 1, 8 // 2**i or 1, 8 // 2**i or 1) for i in range(5)]
    with pytest.raises(ValueError, match="5 feature maps"):
        generator(torch.zeros(1, 3, 32, 32), features[:3])
    with pytest.raises(TypeError, match="ImageList"):
        generator([torch.zeros(3, 32, 32)], features)
    with pytest.raises(ValueError, match="does not fit"):
        generator(torch.zeros(1, 3, 4, 4), features)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        generator(torch.zeros(3, 32, 32), features)


def test_wh_iou_closed_form():
    iou = wh_iou(torch.tensor([[2.0, 4.0]]), torch.tensor([[4.0, 2.0], [2.0, 2.0]]))
    assert iou[0].tolist() == pytest.approx([1 / 3, 0.5])  # 2 * 2 / (8 + 8 - 4) and 2 * 2 / (8 + 4 - 4)
    wh1, wh2 = torch.rand(7, 2, dtype=torch.float64) * 10, torch.rand(5, 2, dtype=torch.float64) * 10
    inter = torch.minimum(wh1[:, None, 0], wh2[None, :, 0]) * torch.minimum(wh1[:, None, 1], wh2[None, :, 1])
    union = wh1.prod(1)[:, None] + wh2.prod(1)[None, :] - inter
    torch.testing.assert_close(wh_iou(wh1, wh2), inter / union, rtol=1e-12, atol=0)
    # Co-centred: torchvision's IoU of the boxes centred at any common point.
    centre = torch.tensor([3.0, -2.0], dtype=torch.float64)
    boxes1 = torch.cat([centre - wh1 / 2, centre + wh1 / 2], 1)
    boxes2 = torch.cat([centre - wh2 / 2, centre + wh2 / 2], 1)
    torch.testing.assert_close(wh_iou(wh1, wh2), torchvision.ops.box_iou(boxes1, boxes2), rtol=1e-12, atol=1e-12)


def test_anchor_fitness_closed_form():
    wh = torch.tensor([[2.0, 4.0], [4.0, 2.0]])
    anchors = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
    # Box 1: best of (1/3, 1/2); box 2 equals anchor 1.
    assert anchor_fitness(wh, anchors).item() == pytest.approx((0.5 + 1.0) / 2)


def _clusters(seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[10.0, 12.0], [40.0, 20.0], [25.0, 80.0], [150.0, 140.0]], dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(40)
    noise = 1 + 0.1 * (torch.rand(len(labels), 2, generator=generator, dtype=torch.float64) - 0.5)
    wh = centres[labels] * noise
    means = torch.stack([wh[labels == i].mean(0) for i in range(4)])
    return wh[torch.randperm(len(wh), generator=generator)], means


@pytest.mark.parametrize(("init", "n_init"), [("kmeans++", 1), ("random", 10)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_recovers_separated_clusters(init, n_init, seed):
    wh, means = _clusters(seed)
    anchors = kmeans_anchors(wh, k=4, seed=seed, init=init, n_init=n_init)
    expected = means[means.prod(1).argsort()]
    torch.testing.assert_close(anchors, expected, rtol=1e-10, atol=0)
    assert anchors.dtype == wh.dtype


def test_kmeans_result_is_a_fixed_point_sorted_by_area():
    wh = torch.rand(300, 2) * 100 + 1
    anchors = kmeans_anchors(wh, k=6, seed=3)
    assert anchors.shape == (6, 2) and anchors.dtype == torch.float32
    assert (anchors.prod(1).diff() >= 0).all()
    # Closed-form assignment by co-centred IoU; each centroid is the mean of its boxes.
    wide = wh.double()
    inter = torch.minimum(wide[:, None], anchors.double()[None]).prod(2)
    assignment = (inter / (wide.prod(1)[:, None] + anchors.double().prod(1)[None] - inter)).argmax(1)
    for index in range(6):
        torch.testing.assert_close(anchors[index].double(), wide[assignment == index].mean(0), rtol=1e-5, atol=0)
    assert torch.equal(anchors, kmeans_anchors(wh, k=6, seed=3))


def test_kmeans_fitness_beats_random_anchors():
    wh = torch.rand(300, 2) * 100 + 1
    assert anchor_fitness(wh, kmeans_anchors(wh, k=5)) > anchor_fitness(wh, wh[:5])


def test_kmeans_random_init_can_stop_in_a_local_optimum():
    # Random starts may put two centroids in one cluster: one run need not find the clusters, ten do.
    wh, means = _clusters(0)
    fitness = [anchor_fitness(wh, kmeans_anchors(wh, k=4, seed=s, init="random")) for s in range(5)]
    best = anchor_fitness(wh, means)
    assert min(fitness) < best - 0.05
    assert anchor_fitness(wh, kmeans_anchors(wh, k=4, init="random", n_init=10)) == pytest.approx(best.item())


def test_kmeans_errors():
    wh = torch.rand(10, 2) + 1
    with pytest.raises(ValueError, match="at least k=11"):
        kmeans_anchors(wh, k=11)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        kmeans_anchors(torch.rand(10, 4))
    with pytest.raises(ValueError, match="positive"):
        kmeans_anchors(torch.cat([wh, torch.tensor([[0.0, 3.0]])]), k=2)
    with pytest.raises(ValueError, match="non-negative"):
        wh_iou(-wh, wh)
    with pytest.raises(ValueError, match="init"):
        kmeans_anchors(wh, k=2, init="farthest")
    with pytest.raises(ValueError, match="k:"):
        kmeans_anchors(wh, k=0)
    with pytest.raises(TypeError, match="tensor"):
        kmeans_anchors([[1.0, 2.0]], k=1)
