"""CBAM against timm's CbamModule (the same state_dict, the same outputs) and the paper's formulas."""

import pytest
import torch
from reference_models import randomize_

from zoo.layers import CBAM


@pytest.mark.parametrize("channels", [256, 64, 48])
def test_cbam_equals_timm(channels):
    from timm.layers.cbam import CbamModule

    reference = randomize_(CbamModule(channels)).eval()
    ours = CBAM(channels).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, channels, 9, 11)
    torch.testing.assert_close(ours(x), reference(x))


def test_cbam_parameters_closed_form():
    # 2·C·R (shared MLP) + 2·7² (the spatial conv) + 2 (its batch norm), C = 256, R = 16.
    assert sum(p.numel() for p in CBAM(256).parameters()) == 2 * 256 * 16 + 2 * 49 + 2 == 8292


def test_cbam_formula_by_hand():
    """M_c = σ(MLP(avg) + MLP(max)), then M_s = σ(BN(conv7×7([mean_c; max_c]))), written out."""
    torch.manual_seed(0)
    cbam = randomize_(CBAM(32)).eval()
    x = torch.randn(1, 32, 6, 6)
    mlp = lambda d: cbam.channel.fc2.weight[:, :, 0, 0] @ torch.relu(cbam.channel.fc1.weight[:, :, 0, 0] @ d)  # noqa: E731
    channel_gate = torch.sigmoid(mlp(x[0].mean(dim=(1, 2))) + mlp(x[0].amax(dim=(1, 2))))
    y = x * channel_gate.view(1, 32, 1, 1)
    descriptor = torch.stack([y[0].mean(dim=0), y[0].amax(dim=0)]).unsqueeze(0)
    bn = cbam.spatial.conv.bn
    conv = torch.nn.functional.conv2d(descriptor, cbam.spatial.conv.conv.weight, padding=3)
    normed = (conv - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    spatial_gate = torch.sigmoid(normed * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    torch.testing.assert_close(cbam(x), y * spatial_gate)


def test_cbam_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        CBAM(0)
    with pytest.raises(ValueError, match="odd"):
        CBAM(32, spatial_kernel_size=6)
    with pytest.raises(ValueError, match=r"\(N, 32, H, W\)"):
        CBAM(32)(torch.randn(1, 16, 4, 4))
