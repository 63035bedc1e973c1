"""YOLOv1 against the paper: the parameter count from Figure 3's layer table (written out here), the 7×7×30
output, decoding, eq. 3's loss written term by term as a plain loop, a loss that falls on built-in scenes, and
the errors for a grid the input does not give."""

import math

import pytest
import torch

import zoo
from zoo.data.detection import SyntheticDetection
from zoo.models.detection.yolov1 import cell_boxes, yolov1_loss

# Figure 3 of the paper: (kernel, filters) per convolution, in order; 4 max-pools in between carry no weights.
FIGURE_3 = (
    [(7, 64), (3, 192), (1, 128), (3, 256), (1, 256), (3, 512)]
    + [(1, 256), (3, 512)] * 4
    + [(1, 512), (3, 1024)]
    + [(1, 512), (3, 1024)] * 2
    + [(3, 1024)] * 4
)


def paper_params(grid=7, boxes=2, classes=20, hidden=4096):
    convs, channels = 0, 3
    for kernel, filters in FIGURE_3:
        convs += kernel * kernel * channels * filters + filters
        channels = filters
    fully_connected = (grid * grid * 1024 + 1) * hidden + (hidden + 1) * grid * grid * (5 * boxes + classes)
    return convs, fully_connected


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_24_convolutions_and_the_paper_parameter_count():
    assert len(FIGURE_3) == 24
    with torch.device("meta"):
        model = zoo.create_model("yolov1")
    convs, fully_connected = paper_params()
    assert n_params(model.features) == convs
    assert n_params(model.head) == fully_connected
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 24
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 2


def test_the_output_is_7x7x30_at_448():
    with torch.device("meta"):
        model = zoo.create_model("yolov1")
        raw = model.forward_raw(torch.empty(2, 3, 448, 448))
    assert raw.shape == (2, 7, 7, 30)


def test_cell_boxes_decode_the_cell_offsets_and_square_root_sizes():
    raw = torch.zeros(1, 7, 7, 30)
    raw[0, 2, 3, :5] = torch.tensor([0.5, 0.25, 0.5, 0.25, 1.0])  # box 0 of the cell at row 2, column 3
    boxes = cell_boxes(raw, 2, (448, 448))
    cx, cy = (3 + 0.5) / 7 * 448, (2 + 0.25) / 7 * 448
    w, h = 0.25 * 448, 0.0625 * 448
    torch.testing.assert_close(boxes[0, 2, 3, 0], torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def loss_loop(raw, target, grid, boxes, classes, size, lambda_coord=5.0, lambda_noobj=0.5):
    """Eq. 3 for one image, cell by cell, predictor by predictor, in Python floats."""
    r = raw.tolist()[0]
    owner = {}
    for k, box in enumerate(target["boxes"].tolist()):
        area = (box[2] - box[0]) * (box[3] - box[1])
        col, row = int((box[0] + box[2]) / 2 / size * grid), int((box[1] + box[3]) / 2 / size * grid)
        if (row, col) not in owner or area > owner[(row, col)][1]:
            owner[(row, col)] = (k, area)
    coord = obj = noobj = cls = 0.0
    for row in range(grid):
        for col in range(grid):
            cell = r[row][col]
            predicted = []
            for j in range(boxes):
                x, y, sw, sh, _ = cell[5 * j : 5 * j + 5]
                cx, cy, w, h = (col + x) / grid * size, (row + y) / grid * size, sw * sw * size, sh * sh * size
                predicted.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            responsible = None
            if (row, col) in owner:
                k = owner[(row, col)][0]
                gt = target["boxes"][k].tolist()
                ious = [iou(p, gt) for p in predicted]
                responsible = max(range(boxes), key=lambda j: (ious[j], -j))
                x, y, sw, sh, c = cell[5 * responsible : 5 * responsible + 5]
                tx = (gt[0] + gt[2]) / 2 / size * grid - col
                ty = (gt[1] + gt[3]) / 2 / size * grid - row
                tw, th = math.sqrt((gt[2] - gt[0]) / size), math.sqrt((gt[3] - gt[1]) / size)
                coord += lambda_coord * ((x - tx) ** 2 + (y - ty) ** 2 + (sw - tw) ** 2 + (sh - th) ** 2)
                obj += (c - ious[responsible]) ** 2
                label = int(target["labels"][k])
                cls += sum((cell[5 * boxes + c] - (1.0 if c == label else 0.0)) ** 2 for c in range(classes))
            for j in range(boxes):
                if j != responsible:
                    noobj += lambda_noobj * cell[5 * j + 4] ** 2
    return {"loss_box": coord, "loss_obj": obj, "loss_noobj": noobj, "loss_class": cls}


@pytest.mark.parametrize("seed", range(3))
def test_loss_equals_equation_3_written_out(seed):
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(1, 4, 4, 2 * 5 + 3, generator=g, dtype=torch.float64)
    target = {
        # two objects share a cell (the larger one owns it), one alone
        "boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0], [20.0, 15.0, 40.0, 35.0], [70.0, 80.0, 120.0, 126.0]]),
        "labels": torch.tensor([0, 2, 1]),
    }
    target["boxes"] = target["boxes"].to(torch.float64)
    losses = yolov1_loss(raw, [target], boxes_per_cell=2, image_size=(128, 128))
    expected = loss_loop(raw, target, grid=4, boxes=2, classes=3, size=128)
    for key, value in expected.items():
        assert float(losses[key]) == pytest.approx(value, rel=1e-10), key


def test_an_image_without_objects_only_pushes_confidences_down():
    raw = torch.rand(1, 4, 4, 13, dtype=torch.float64)
    losses = yolov1_loss(raw, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}], 2, (128, 128))
    assert float(losses["loss_box"]) == float(losses["loss_class"]) == float(losses["loss_obj"]) == 0.0
    assert float(losses["loss_noobj"]) == pytest.approx(0.5 * float(raw[..., [4, 9]].square().sum()))


def test_small_variant_learns_a_few_scenes():
    torch.manual_seed(0)
    data = SyntheticDetection(2, image_size=96, max_objects=2, seed=0)
    images, targets = zip(*(data[i] for i in range(2)), strict=True)
    targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    model = zoo.create_model("yolov1_resnet18", num_classes=11, dropout=0.0)  # labels 1..10
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    losses = []
    for _ in range(12):
        loss = sum(model(list(images), targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2, losses  # 16.1 → 5.8 when written
    model.eval()
    with torch.no_grad():
        detections = model(list(images))
    assert len(detections) == 2 and all(set(d) == {"boxes", "scores", "labels"} for d in detections)
    assert all((d["boxes"][:, 2:] <= 96).all() for d in detections)  # back in the image's own pixels


def test_errors_name_the_grid_and_the_input():
    model = zoo.create_model("yolov1_resnet18", grid_size=6)  # 224 px gives ResNet-18 a 7×7 map, not 6×6
    with pytest.raises(ValueError, match="6×6 grid needs a \\(512, 6, 6\\) feature map"):
        model.eval()(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="expects a float \\[3, H, W\\] image"):
        model.eval()([torch.rand(1, 64, 64)])
    with pytest.raises(ValueError, match="grid_size: expected an int >= 1"):
        zoo.create_model("yolov1_resnet18", grid_size=0)
    train = zoo.create_model("yolov1_resnet18", num_classes=3).train()
    with pytest.raises(ValueError, match="image 0"):
        train([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([5])}])
