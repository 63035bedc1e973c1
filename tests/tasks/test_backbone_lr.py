"""``task.backbone_lr_scale``: the backbone's parameters train at that fraction of the base rate, the rest
(neck, head, Transformer) at the base rate; checked on the groups, on one SGD step against the update rule
p ← p − lr·g written out, through the composed DETR config, and on bad values."""

import functools

import pytest
import torch
from train_helpers import compose_train

import zoo
from zoo.tasks.detection import DetectionTask
from zoo.tasks.optim import param_groups


def _ids(params):
    return {id(p) for p in params}


def test_backbone_groups_take_the_scaled_rate_and_the_rest_the_base_rate():
    model = zoo.create_model("faster_rcnn_resnet18_fpn", num_classes=3)
    groups = param_groups(model, lr=0.02, weight_decay=1e-4, backbone_lr_scale=0.1)
    body = _ids(model.backbone.body.parameters())
    trainable = _ids(p for p in model.parameters() if p.requires_grad)
    seen = set()
    for group in groups:
        ids = _ids(group["params"])
        assert not ids & seen  # no parameter in two groups
        seen |= ids
        in_body = ids <= body
        assert in_body or not ids & body
        assert group["lr"] == pytest.approx(0.002 if in_body else 0.02)
        assert group["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in group["params"]) else 1e-4)
    assert seen == trainable
    # The FPN is new, not pretrained: it keeps the full rate.
    fpn = _ids(model.backbone.fpn.parameters())
    assert all(group["lr"] == 0.02 for group in groups if _ids(group["params"]) & fpn)


def test_one_sgd_step_moves_the_backbone_by_a_tenth():
    model = zoo.create_model("faster_rcnn_resnet18_fpn", num_classes=3, trainable_backbone_layers=5)
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(param_groups(model, 0.5, 0.0, backbone_lr_scale=0.1), lr=0.5)
    images = [torch.rand(3, 96, 96)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([1])}]
    sum(model(images, targets).values()).backward()
    optimizer.step()
    body = _ids(model.backbone.body.parameters())
    checked = 0
    for name, p in model.named_parameters():
        if p.grad is None or not p.grad.abs().sum():
            continue
        lr = 0.05 if id(p) in body else 0.5
        torch.testing.assert_close(p.detach(), before[name] - lr * p.grad, rtol=0, atol=1e-6)
        checked += 1
    assert checked > 20


def test_detr_config_trains_its_backbone_at_1e_5(tmp_path):
    cfg = compose_train(tmp_path, "model=detr_resnet50")
    assert cfg.task.backbone_lr_scale == 0.1
    model = zoo.create_model("detr_resnet50", num_classes=3, num_queries=5)
    optimizer_factory = functools.partial(torch.optim.AdamW, lr=1e-4, weight_decay=1e-4)
    task = DetectionTask(model, optimizer_factory, num_classes=3, backbone_lr_scale=cfg.task.backbone_lr_scale)
    optimizer = task.configure_optimizers()
    backbone = _ids(model.backbone.parameters())
    rates = [group["lr"] for group in optimizer.param_groups if _ids(group["params"]) <= backbone]
    others = [group["lr"] for group in optimizer.param_groups if not _ids(group["params"]) & backbone]
    assert rates and rates == pytest.approx([1e-5] * len(rates))
    assert others and others == pytest.approx([1e-4] * len(others))
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(p.requires_grad for p in model.parameters())


def test_bad_values_are_refused_with_their_reason():
    classifier = zoo.create_model("resnet18", num_classes=3)
    with pytest.raises(ValueError, match="needs a model with a backbone"):
        param_groups(classifier, 0.1, 0.0, backbone_lr_scale=0.1)
    detector = zoo.create_model("faster_rcnn_resnet18_fpn", num_classes=3)
    with pytest.raises(ValueError, match="must be > 0"):
        param_groups(detector, 0.1, 0.0, backbone_lr_scale=0.0)
    with pytest.raises(TypeError, match="must be a number"):
        param_groups(detector, 0.1, 0.0, backbone_lr_scale="0.1")
    with pytest.raises(ValueError, match="optimizer.lr"):
        param_groups(detector, None, 0.0, backbone_lr_scale=0.1)
    with pytest.raises(ValueError, match="needs a model with a backbone"):  # at build time, not the first step
        DetectionTask(classifier, torch.optim.SGD, num_classes=3, backbone_lr_scale=0.5)
