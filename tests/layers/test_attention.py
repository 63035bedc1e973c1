"""zoo.layers.attention against PyTorch: scaled_dot_product_attention against F.scaled_dot_product_attention and
MultiheadAttention against torch.nn.MultiheadAttention (outputs, attention weights, state_dict names)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers import MultiheadAttention, attention, scaled_dot_product_attention

DOUBLE = torch.float64


def _qkv(batch=(2, 3), length=5, source=7, d_k=8, d_v=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, length, d_k, generator=generator, dtype=DOUBLE)
    k = torch.randn(*batch, source, d_k, generator=generator, dtype=DOUBLE)
    v = torch.randn(*batch, source, d_v, generator=generator, dtype=DOUBLE)
    return q, k, v


MASKS = {
    "none": lambda: None,
    "bool": lambda: torch.rand(5, 7, generator=torch.Generator().manual_seed(1)) > 0.3,
    "float_per_head": lambda: torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(2), dtype=DOUBLE),
    "float_broadcast": lambda: torch.randn(1, 1, 5, 7, generator=torch.Generator().manual_seed(3), dtype=DOUBLE),
}


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("scale", [None, 0.3])
def test_sdpa_equals_torch(mask, scale):
    q, k, v = _qkv()
    attn_mask = MASKS[mask]()
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_mask, scale=scale), expected)
    torch.testing.assert_close(attention(q, k, v, attn_mask, scale=scale, fused=False), expected)
    torch.testing.assert_close(attention(q, k, v, attn_mask, scale=scale, fused=True), expected)


def test_sdpa_causal_equals_torch_and_the_formula():
    q, k, v = _qkv(source=5)
    ours = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    # Position 0 sees only key 0: its output is value 0 exactly.
    torch.testing.assert_close(ours[..., 0, :], v[..., 0, :])


def test_sdpa_formula_by_hand():
    """softmax(q·kᵀ/√d)·v for one query, written out element by element."""
    q, k, v = _qkv(batch=(), length=1, source=3, d_k=4, d_v=2)
    scores = [sum(q[0, i] * k[j, i] for i in range(4)) / math.sqrt(4) for j in range(3)]
    weights = [math.exp(s) / sum(math.exp(t) for t in scores) for s in scores]
    expected = sum(w * v[j] for j, w in enumerate(weights))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v)[0], expected)


def test_sdpa_gradients_equal_torch():
    q, k, v = (t.requires_grad_() for t in _qkv())
    mask = MASKS["float_per_head"]()
    grads = torch.autograd.grad(scaled_dot_product_attention(q, k, v, mask).sum(), (q, k, v))
    expected = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum(), (q, k, v))
    for ours, theirs in zip(grads, expected, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_sdpa_bad_inputs():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="same feature size"):
        scaled_dot_product_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="same length"):
        scaled_dot_product_attention(q, k, v[..., :4, :])
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, torch.zeros(5, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool or floating-point"):
        scaled_dot_product_attention(q, k, v, torch.zeros(5, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, k, v, torch.zeros(5, 7), is_causal=True)


def _pair(batch_first, kdim, bias, add_bias_kv, add_zero_attn):
    kwargs = dict(bias=bias, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn, kdim=kdim, vdim=kdim)
    reference = nn.MultiheadAttention(16, 4, batch_first=batch_first, **kwargs).double().eval()
    ours = MultiheadAttention(16, 4, batch_first=batch_first, **kwargs).double().eval()
    generator = torch.Generator().manual_seed(0)
    state = {
        name: torch.randn(t.shape, generator=generator, dtype=DOUBLE) for name, t in reference.state_dict().items()
    }
    reference.load_state_dict(state)
    ours.load_state_dict(state)  # strict: the same names and shapes
    return reference, ours


CONFIGS = list(itertools.product([False, True], [None, 6], [True, False], [False, True], [False, True]))


@pytest.mark.parametrize("batch_first, kdim, bias, add_bias_kv, add_zero_attn", CONFIGS)
def test_mha_equals_torch(batch_first, kdim, bias, add_bias_kv, add_zero_attn):
    reference, ours = _pair(batch_first, kdim, bias, add_bias_kv, add_zero_attn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in reference.named_parameters()]
    batch, length, source = 2, 5, 7
    generator = torch.Generator().manual_seed(1)

    def tokens(n, e):
        return torch.randn(*((batch, n, e) if batch_first else (n, batch, e)), generator=generator, dtype=DOUBLE)

    query, key, value = tokens(length, 16), tokens(source, kdim or 16), tokens(source, kdim or 16)
    padding = torch.zeros(batch, source, dtype=torch.bool)
    padding[0, -2:] = True
    bool_mask = torch.rand(length, source, generator=generator) > 0.5
    bool_mask[:, 0] = False  # every query keeps one key
    masks = [
        {},
        {"key_padding_mask": padding},
        {"attn_mask": torch.randn(length, source, generator=generator, dtype=DOUBLE)},
        {"attn_mask": bool_mask, "key_padding_mask": padding},
        {"attn_mask": torch.randn(batch * 4, length, source, generator=generator, dtype=DOUBLE)},
    ]
    for mask in masks:
        for need_weights, average in [(True, True), (True, False), (False, True)]:
            expected = reference(query, key, value, need_weights=need_weights, average_attn_weights=average, **mask)
            got = ours(query, key, value, need_weights=need_weights, average_attn_weights=average, **mask)
            torch.testing.assert_close(got[0], expected[0])
            if need_weights:
                torch.testing.assert_close(got[1], expected[1])
            else:
                assert got[1] is None and expected[1] is None


def test_mha_unbatched_and_causal_equal_torch():
    reference, ours = _pair(True, None, True, False, False)
    x = torch.randn(6, 16, dtype=DOUBLE)
    for got, expected in zip(ours(x, x, x), reference(x, x, x), strict=True):
        torch.testing.assert_close(got, expected)
    causal = nn.Transformer.generate_square_subsequent_mask(6, dtype=DOUBLE)
    batch = x.unsqueeze(0)
    torch.testing.assert_close(
        ours(batch, batch, batch, attn_mask=causal, is_causal=True, need_weights=False)[0],
        reference(batch, batch, batch, attn_mask=causal, is_causal=True, need_weights=False)[0],
    )


def test_mha_fused_and_hand_written_paths_equal():
    _, fused = _pair(True, None, True, False, False)
    written = MultiheadAttention(16, 4, batch_first=True, fused_attn=False).double().eval()
    written.load_state_dict(fused.state_dict())
    x = torch.randn(2, 9, 16, dtype=DOUBLE)
    padding = torch.zeros(2, 9, dtype=torch.bool)
    padding[1, 5:] = True
    torch.testing.assert_close(
        fused(x, x, x, key_padding_mask=padding, need_weights=False)[0],
        written(x, x, x, key_padding_mask=padding, need_weights=False)[0],
    )


def test_mha_initialisation_matches_torch_statistics():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(64, 8)
    torch.manual_seed(0)
    ours = MultiheadAttention(64, 8)
    for (name, theirs), (_, mine) in zip(reference.state_dict().items(), ours.state_dict().items(), strict=True):
        torch.testing.assert_close(mine, theirs, msg=name)


def test_mha_bad_inputs():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiheadAttention(10, 3)
    mha = MultiheadAttention(16, 4, batch_first=True)
    x = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match="E = 16"):
        mha(torch.randn(2, 5, 8), x, x)
    with pytest.raises(ValueError, match="same length"):
        mha(x, x, torch.randn(2, 4, 16))
    with pytest.raises(ValueError, match="same batch size"):
        mha(x, torch.randn(3, 5, 16), torch.randn(3, 5, 16))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\)"):
        mha(x, x, x, attn_mask=torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\)"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool or floating-point"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="must be a tensor"):
        mha(x.tolist(), x, x)
