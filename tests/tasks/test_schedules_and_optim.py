"""Warmup schedules against torch's own schedulers; weight-decay groups."""

import pytest
import torch
from torch import nn

import zoo
from zoo.tasks.optim import param_groups_weight_decay
from zoo.tasks.schedules import WarmupSchedule, warmup_schedule


def lrs(scheduler, optimizer, steps):
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def sgd(lr=0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_warmup_cosine_matches_torch_linear_then_cosine():
    warmup, total = 5, 25
    ours_opt = sgd()
    ours = warmup_schedule(ours_opt, kind="cosine", total_steps=total, steps_per_epoch=5, warmup_epochs=1)
    ref_opt = sgd()
    ref = torch.optim.lr_scheduler.SequentialLR(
        ref_opt,
        [
            torch.optim.lr_scheduler.LinearLR(ref_opt, start_factor=0.01, end_factor=1.0, total_iters=warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=total - warmup, eta_min=0.0),
        ],
        milestones=[warmup],
    )
    torch.testing.assert_close(torch.tensor(lrs(ours, ours_opt, total)), torch.tensor(lrs(ref, ref_opt, total)))


def test_step_decay_matches_torch_steplr():
    ours_opt, ref_opt = sgd(), sgd()
    ours = warmup_schedule(ours_opt, kind="step", total_steps=40, steps_per_epoch=2, step_epochs=5, gamma=0.5)
    ref = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=10, gamma=0.5)
    torch.testing.assert_close(torch.tensor(lrs(ours, ours_opt, 40)), torch.tensor(lrs(ref, ref_opt, 40)))


def test_schedule_validation():
    with pytest.raises(ValueError, match="kind must be one of"):
        WarmupSchedule(kind="linear", total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        WarmupSchedule(kind="cosine", total_steps=10, warmup_steps=20)


def test_weight_decay_skips_norm_and_bias():
    model = zoo.create_model("resnet18", num_classes=10)
    decay, no_decay = param_groups_weight_decay(model, 0.05)
    bn_and_bias = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    bn_and_bias |= {id(m.bias) for m in model.modules() if getattr(m, "bias", None) is not None}
    conv_and_fc = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert {id(p) for p in no_decay["params"]} == bn_and_bias and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == conv_and_fc and decay["weight_decay"] == 0.05
    (everything,) = param_groups_weight_decay(model, 0.05, skip_norm_and_bias=False)
    assert len(everything["params"]) == len(list(model.parameters()))


def test_auxiliary_losses_are_added_with_the_declared_weights():
    from collections import namedtuple

    from torch.nn import functional as F  # noqa: N812

    from zoo.tasks.classification import ClassificationTask

    Outputs = namedtuple("Outputs", ["logits", "aux_logits2", "aux_logits1"])

    class TwoAux(nn.Module):
        aux_loss_weights = (0.3, 0.3)

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return Outputs(self.fc(x), 2 * self.fc(x), -self.fc(x))

    torch.manual_seed(0)
    model = TwoAux()
    task = ClassificationTask(model, optimizer=torch.optim.SGD, num_classes=3)
    task.log = lambda *args, **kwargs: None
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    loss = task.training_step((x, y), 0)
    logits = model.fc(x)
    expected = F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(2 * logits, y) + 0.3 * F.cross_entropy(-logits, y)
    torch.testing.assert_close(loss, expected)

    model.aux_loss_weights = (0.3,)
    with pytest.raises(ValueError, match="2 auxiliary outputs but declares 1"):
        task.training_step((x, y), 0)
