"""Inverted dropout: the output and gradient are those of the mask it drew, x · m / (1 - p); gradcheck."""

import pytest
import torch

from zoo.fundamentals.autograd.dropout import dropout


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_is_the_masked_scaled_input(compare_with_torch, p, dtype):
    x = torch.rand(4, 5, 6, dtype=dtype) + 0.5  # no zeros, so the kept elements are the non-zero outputs
    mask = dropout(x, p, generator=torch.Generator().manual_seed(7)) != 0
    # The reference: the same mask applied with plain tensor ops, differentiated by autograd.
    out = compare_with_torch(
        lambda x: dropout(x, p, generator=torch.Generator().manual_seed(7)), lambda x: x * mask / (1 - p), x
    )
    assert type(out.grad_fn).__name__ == "DropoutFunctionBackward"
    if p == 0:
        assert mask.all()


def test_dropout_keep_rate_and_expectation():
    x = torch.ones(200_000)
    out = dropout(x, 0.3, generator=torch.Generator().manual_seed(0))
    kept = (out != 0).double().mean().item()
    assert abs(kept - 0.7) < 5 * (0.7 * 0.3 / x.numel()) ** 0.5  # 5 binomial standard deviations
    assert abs(out.double().mean().item() - 1.0) < 0.01  # inverted scaling keeps E[y] = x
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1 / 0.7]))


def test_dropout_seeding_and_eval_mode():
    x = torch.randn(50)
    a = dropout(x, 0.5, generator=torch.Generator().manual_seed(3))
    b = dropout(x, 0.5, generator=torch.Generator().manual_seed(3))
    c = dropout(x, 0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert dropout(x, 0.5, training=False) is x


def test_dropout_gradcheck():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    # A fresh generator with the same seed on every call: gradcheck needs the same mask each time.
    assert torch.autograd.gradcheck(lambda x: dropout(x, 0.4, generator=torch.Generator().manual_seed(1)), (x,))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(torch.randn(3), p)


def test_dropout_rejects_bad_input():
    with pytest.raises(TypeError, match="floating"):
        dropout(torch.ones(3, dtype=torch.long), 0.5)
    with pytest.raises(TypeError, match="Generator"):
        dropout(torch.randn(3), 0.5, generator=0)
