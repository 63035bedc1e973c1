"""``compare_with_torch``: forward values and every input gradient of our op against autograd through PyTorch's."""

import pytest
import torch

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _compare(ours, reference, *inputs):
    """Run both on leaf copies of ``inputs`` (floating tensors get gradients), backpropagate the same random
    ``grad_output`` and compare the outputs and the gradients; return our output."""
    leaves = [
        [x.detach().clone().requires_grad_(x.is_floating_point()) if torch.is_tensor(x) else x for x in inputs]
        for _ in range(2)
    ]
    out, expected = ours(*leaves[0]), reference(*leaves[1])
    dtype = expected.dtype
    torch.testing.assert_close(out, expected, **TOL[dtype])
    grad_output = torch.randn_like(expected)
    wrt = [i for i, x in enumerate(inputs) if torch.is_tensor(x) and x.is_floating_point()]
    grads = torch.autograd.grad(out, [leaves[0][i] for i in wrt], grad_output)
    expected_grads = torch.autograd.grad(expected, [leaves[1][i] for i in wrt], grad_output)
    for index, grad, expected_grad in zip(wrt, grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, **TOL[dtype], msg=lambda m, i=index: f"input {i}: {m}")
    return out


@pytest.fixture
def compare_with_torch():
    return _compare
