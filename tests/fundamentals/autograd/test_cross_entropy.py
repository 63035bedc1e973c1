"""Fused softmax cross-entropy against F.cross_entropy: values, gradients, ignore_index, overflow; gradcheck."""

import pytest
import torch
import torch.nn.functional as F

from zoo.fundamentals.autograd.cross_entropy import softmax_cross_entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_cross_entropy_matches_torch(compare_with_torch, dtype, shape, reduction, ignore_index):
    logits = torch.randn(*shape, dtype=dtype) * 3
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    out = compare_with_torch(
        lambda z, t: softmax_cross_entropy(z, t, ignore_index, reduction),
        lambda z, t: F.cross_entropy(z, t, ignore_index=ignore_index, reduction=reduction),
        logits,
        target,
    )
    assert type(out.grad_fn).__name__ == "SoftmaxCrossEntropyFunctionBackward"


def test_cross_entropy_ignored_targets_get_no_gradient_and_no_weight():
    logits, target = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, -100, 2, -100, 1])
    logits.requires_grad_()
    loss = softmax_cross_entropy(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad[1].abs().sum() == 0 and grad[3].abs().sum() == 0
    kept = torch.tensor([0, 2, 4])
    torch.testing.assert_close(loss, F.cross_entropy(logits[kept], target[kept]))
    all_ignored = softmax_cross_entropy(logits, torch.full((5,), -100))
    assert torch.isnan(all_ignored) and torch.isnan(F.cross_entropy(logits, torch.full((5,), -100)))


def test_cross_entropy_does_not_overflow(compare_with_torch):
    logits = torch.randn(6, 4, dtype=torch.float64) * 1e4
    logits[0] = torch.tensor([1e4, -1e4, 1e4 - 1, 5e3])
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    compare_with_torch(softmax_cross_entropy, F.cross_entropy, logits, target)
    out = softmax_cross_entropy(logits.float(), target, reduction="none")
    assert torch.isfinite(out).all()
    # Closed form for row 0: log(1 + e^-1 + e^-5000 + e^-20000) with the maximum factored out.
    torch.testing.assert_close(out[0], torch.log1p(torch.exp(torch.tensor(-1.0))))
    torch.testing.assert_close(out, F.cross_entropy(logits, target, reduction="none").float(), rtol=1e-6, atol=1e-6)


def test_cross_entropy_gradcheck():
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, -100, 2, 1])
    for reduction in ("mean", "sum", "none"):
        assert torch.autograd.gradcheck(lambda z, r=reduction: softmax_cross_entropy(z, target, reduction=r), (logits,))


def test_cross_entropy_rejects_bad_input():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        softmax_cross_entropy(logits, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(TypeError, match="integer"):
        softmax_cross_entropy(logits, torch.tensor([0.0, 1, 2, 0]))
    with pytest.raises(ValueError, match="expected shape"):
        softmax_cross_entropy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(logits, torch.tensor([0, 1, 2, 0]), reduction="avg")
