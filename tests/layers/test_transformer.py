"""zoo.layers.transformer against torch.nn: the same state_dict names, and the same outputs after loading
torch's weights, post-norm and pre-norm, ReLU and GELU, with masks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

DOUBLE = torch.float64
D, HEADS, FF = 16, 4, 32


def _copy_weights(reference: nn.Module, ours: nn.Module, seed: int = 0) -> None:
    """Random weights (not torch's initial γ = 1, β = 0) into both; the load is strict."""
    generator = torch.Generator().manual_seed(seed)
    state = {n: torch.randn(t.shape, generator=generator, dtype=t.dtype) for n, t in reference.state_dict().items()}
    reference.load_state_dict(state)
    ours.load_state_dict(state)


def _tokens(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DOUBLE)


LAYER_CASES = [
    pytest.param(norm_first, activation, batch_first, id=f"norm_first={norm_first}-{activation}-bf={batch_first}")
    for norm_first in (False, True)
    for activation in ("relu", "gelu")
    for batch_first in (False, True)
]


@pytest.mark.parametrize("norm_first, activation, batch_first", LAYER_CASES)
def test_encoder_layer_equals_torch(norm_first, activation, batch_first):
    kwargs = dict(dim_feedforward=FF, activation=activation, norm_first=norm_first, batch_first=batch_first)
    reference = nn.TransformerEncoderLayer(D, HEADS, **kwargs).double().eval()
    ours = TransformerEncoderLayer(D, HEADS, **kwargs).double().eval()
    _copy_weights(reference, ours)
    x = _tokens(*((2, 6, D) if batch_first else (6, 2, D)))
    causal = nn.Transformer.generate_square_subsequent_mask(6, dtype=DOUBLE)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    torch.testing.assert_close(ours(x), reference(x))
    torch.testing.assert_close(ours(x, src_mask=causal, is_causal=True), reference(x, src_mask=causal, is_causal=True))
    torch.testing.assert_close(ours(x, src_key_padding_mask=padding), reference(x, src_key_padding_mask=padding))


@pytest.mark.parametrize("norm_first, activation, batch_first", LAYER_CASES)
def test_decoder_layer_equals_torch(norm_first, activation, batch_first):
    kwargs = dict(dim_feedforward=FF, activation=activation, norm_first=norm_first, batch_first=batch_first)
    reference = nn.TransformerDecoderLayer(D, HEADS, **kwargs).double().eval()
    ours = TransformerDecoderLayer(D, HEADS, **kwargs).double().eval()
    _copy_weights(reference, ours)
    tgt = _tokens(*((2, 5, D) if batch_first else (5, 2, D)), seed=2)
    memory = _tokens(*((2, 7, D) if batch_first else (7, 2, D)), seed=3)
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=DOUBLE)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[0, 5:] = True
    masks = {"tgt_mask": causal, "tgt_is_causal": True, "memory_key_padding_mask": padding}
    torch.testing.assert_close(ours(tgt, memory), reference(tgt, memory))
    torch.testing.assert_close(ours(tgt, memory, **masks), reference(tgt, memory, **masks))


def test_full_transformer_equals_torch():
    kwargs = dict(d_model=D, nhead=HEADS, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=FF)
    reference = nn.Transformer(**kwargs, batch_first=True).double().eval()
    ours = Transformer(**kwargs, batch_first=True).double().eval()
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    _copy_weights(reference, ours)
    src, tgt = _tokens(2, 7, D, seed=4), _tokens(2, 5, D, seed=5)
    tgt_mask = Transformer.generate_square_subsequent_mask(5, dtype=DOUBLE)
    torch.testing.assert_close(tgt_mask, nn.Transformer.generate_square_subsequent_mask(5, dtype=DOUBLE))
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 6:] = True
    args = {"tgt_mask": tgt_mask, "memory_key_padding_mask": padding}
    torch.testing.assert_close(ours(src, tgt, **args), reference(src, tgt, **args))


def test_paper_transformer_parameter_count():
    """The base model of the paper: 6 + 6 layers, d_model 512, 8 heads, FFN 2048, from the closed form."""
    d, f = 512, 2048
    attention = 4 * d * d + 4 * d
    ffn = 2 * d * f + f + d
    expected = 6 * (attention + ffn + 4 * d) + 6 * (2 * attention + ffn + 6 * d) + 2 * 2 * d  # + final norms
    assert sum(p.numel() for p in Transformer().parameters()) == expected


def test_stacks_with_padding_equal_torch_on_unpadded_positions():
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, batch_first=True)
    reference = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(D), enable_nested_tensor=False).double().eval()
    ours = TransformerEncoder(TransformerEncoderLayer(D, HEADS, FF, batch_first=True), 2, nn.LayerNorm(D))
    ours = ours.double().eval()
    _copy_weights(reference, ours)
    x = _tokens(2, 6, D, seed=6)
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[0, 3:] = True
    torch.testing.assert_close(ours(x, src_key_padding_mask=padding), reference(x, src_key_padding_mask=padding))

    decoder_ref = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, HEADS, FF), 2).double().eval()
    decoder = TransformerDecoder(TransformerDecoderLayer(D, HEADS, FF), 2).double().eval()
    _copy_weights(decoder_ref, decoder)
    tgt, memory = _tokens(4, 2, D, seed=7), _tokens(6, 2, D, seed=8)
    torch.testing.assert_close(decoder(tgt, memory), decoder_ref(tgt, memory))


def test_gradients_equal_torch():
    reference = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, activation=F.gelu).double()
    ours = TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, activation=F.gelu).double()
    _copy_weights(reference, ours)
    x = _tokens(5, 2, D, seed=9)
    reference(x).square().sum().backward()
    ours(x).square().sum().backward()
    for (name, theirs), (_, mine) in zip(reference.named_parameters(), ours.named_parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, msg=name)


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerEncoderLayer(10, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        TransformerEncoderLayer(16, 4, activation="swish")
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        TransformerEncoder(TransformerEncoderLayer(16, 4), 0)
    with pytest.raises(ValueError, match="is_causal=True is a hint"):
        TransformerEncoderLayer(16, 4)(torch.randn(3, 1, 16), is_causal=True)
    with pytest.raises(ValueError, match="d_model = 16"):
        Transformer(16, 4, 1, 1, 32)(torch.randn(3, 1, 8), torch.randn(3, 1, 8))
    with pytest.raises(ValueError, match="same batch size"):
        Transformer(16, 4, 1, 1, 32)(torch.randn(3, 1, 16), torch.randn(3, 2, 16))
