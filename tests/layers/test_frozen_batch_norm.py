"""FrozenBatchNorm2d against torchvision.ops.misc.FrozenBatchNorm2d and an eval-mode nn.BatchNorm2d."""

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d as ReferenceFrozenBatchNorm2d

import zoo
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d


def _random_statistics(module: nn.Module, channels: int) -> None:
    with torch.no_grad():
        module.weight.copy_(0.5 + torch.rand(channels))
        module.bias.copy_(torch.randn(channels))
        module.running_mean.copy_(torch.randn(channels))
        module.running_var.copy_(0.1 + torch.rand(channels))


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_matches_torchvision(eps):
    reference = ReferenceFrozenBatchNorm2d(7, eps=eps)
    _random_statistics(reference, 7)
    ours = zoo.load_reference_weights(FrozenBatchNorm2d(7, eps=eps), reference.state_dict())
    x = torch.randn(3, 7, 5, 6)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-6)
    assert list(ours.state_dict()) == list(reference.state_dict())


def test_equals_eval_batch_norm_and_ignores_train_mode():
    batch_norm = nn.BatchNorm2d(4).eval()
    _random_statistics(batch_norm, 4)
    ours = FrozenBatchNorm2d(4)
    ours.load_state_dict(batch_norm.state_dict())  # num_batches_tracked is dropped
    x = torch.randn(2, 4, 3, 3)
    ours.train()
    torch.testing.assert_close(ours(x), batch_norm(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.running_mean, batch_norm.running_mean, rtol=0, atol=0)


def test_nothing_to_learn():
    module = FrozenBatchNorm2d(16)
    assert sum(p.numel() for p in module.parameters()) == 0
    assert sum(b.numel() for b in module.buffers()) == 4 * 16
    x = torch.randn(2, 16, 3, 3)
    torch.testing.assert_close(module(x), x / (1 + 1e-5) ** 0.5, rtol=1e-6, atol=1e-7)  # γ = 1, β = 0, μ = 0, σ² = 1
    assert repr(module) == "FrozenBatchNorm2d(16, eps=1e-05)"


def test_builds_a_resnet():
    model = zoo.create_model("resnet18", norm_layer=FrozenBatchNorm2d, num_classes=0)
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 20
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.device("meta"):
        reference = torchvision.models.resnet18(norm_layer=ReferenceFrozenBatchNorm2d)
    reference_count = sum(p.numel() for p in reference.parameters()) - 512 * 1000 - 1000  # without fc
    assert sum(p.numel() for p in model.parameters()) == reference_count == 11_689_512 - 513_000 - 2 * 4800


@pytest.mark.parametrize(
    "build",
    [lambda: FrozenBatchNorm2d(0), lambda: FrozenBatchNorm2d(2.0), lambda: FrozenBatchNorm2d(4, eps=0.0)],
)
def test_bad_arguments(build):
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize("shape", [(2, 5, 3, 3), (2, 4, 3), (4,)])
def test_bad_input(shape):
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        FrozenBatchNorm2d(4)(torch.randn(shape))
