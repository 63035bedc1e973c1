"""Counting attention: zoo's fvcore handle for the fused kernel, the closed forms for attention, multi-head
attention, the transformer layers and patch embedding, against fvcore's own matmul count of the hand-written
path and torch.utils.flop_counter.FlopCounterMode (2 FLOPs per MAC; it counts matrix products and convolutions,
not norms)."""

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from zoo.analysis import formulas
from zoo.analysis.flops import OP_HANDLES, count_flops
from zoo.layers import MultiheadAttention, TransformerDecoderLayer, TransformerEncoderLayer, attention


def fvcore_macs(module: nn.Module, *inputs, handles: bool = True) -> int:
    analysis = FlopCountAnalysis(module, inputs)
    if handles:
        analysis.set_op_handle(**OP_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return int(analysis.total())


def torch_flops(module: nn.Module, *inputs) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops()


class Attend(nn.Module):
    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.fused = fused

    def forward(self, q, k, v):
        return attention(q, k, v, fused=self.fused)


SHAPES = [((2, 4, 10, 8), (2, 4, 12, 8), (2, 4, 12, 8)), ((1, 3, 7, 16), (1, 3, 7, 16), (1, 3, 7, 4))]


@pytest.mark.parametrize("shapes", SHAPES)
def test_fused_attention_is_counted_as_its_two_matrix_products(shapes):
    q, k, v = (torch.randn(s) for s in shapes)
    expected = formulas.attention_macs(*shapes)
    batch, heads, length, d_k = shapes[0]
    assert expected == batch * heads * length * shapes[1][-2] * (d_k + shapes[2][-1])
    # fvcore's own matmul handle on the hand-written path, and torch's counter (2 FLOPs per MAC) on it.
    assert fvcore_macs(Attend(fused=False), q, k, v, handles=False) == expected
    assert torch_flops(Attend(fused=False), q, k, v) == 2 * expected
    # zoo's handle on the fused kernel gives the same.
    assert fvcore_macs(Attend(fused=True), q, k, v) == expected
    assert fvcore_macs(Attend(fused=True), q, k, v, handles=False) == 0  # what fvcore gives without it


@pytest.mark.parametrize("kdim", [None, 12])
def test_multihead_attention_closed_form(kdim):
    mha = MultiheadAttention(32, 4, kdim=kdim, vdim=kdim, batch_first=True, fused_attn=False).eval()
    query, key = torch.randn(2, 9, 32), torch.randn(2, 11, kdim or 32)
    expected = formulas.multihead_attention_macs(2, 9, 11, 32, kdim, kdim)

    wrapper = _CrossAttention(mha)
    assert torch_flops(wrapper, query, key) == 2 * expected
    mha.fused_attn = True
    assert fvcore_macs(wrapper, query, key) == expected


class _CrossAttention(nn.Module):
    def __init__(self, mha: MultiheadAttention) -> None:
        super().__init__()
        self.mha = mha

    def forward(self, query, key):
        return self.mha(query, key, key, need_weights=False)[0]


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_layers_closed_form(norm_first):
    d, f = 32, 64
    encoder = TransformerEncoderLayer(d, 4, f, batch_first=True, norm_first=norm_first).eval()
    decoder = TransformerDecoderLayer(d, 4, f, batch_first=True, norm_first=norm_first).eval()
    src, tgt = torch.randn(2, 10, d), torch.randn(2, 6, d)
    encoder_macs = formulas.transformer_encoder_layer_macs(2, 10, d, f)
    decoder_macs = formulas.transformer_decoder_layer_macs(2, 6, 10, d, f)
    assert fvcore_macs(encoder, src) == encoder_macs
    assert fvcore_macs(decoder, tgt, src) == decoder_macs
    # FlopCounterMode does not count the LayerNorms (5 MACs per element each, fvcore's estimate).
    for layer in (encoder, decoder):
        for module in layer.modules():
            if isinstance(module, MultiheadAttention):
                module.fused_attn = False
    assert torch_flops(encoder, src) == 2 * (encoder_macs - 2 * formulas.norm_macs((2, 10, d)))
    assert torch_flops(decoder, tgt, src) == 2 * (decoder_macs - 3 * formulas.norm_macs((2, 6, d)))


def test_patch_embedding_closed_form():
    embed = nn.Conv2d(3, 48, kernel_size=8, stride=8)
    x = torch.randn(2, 3, 32, 40)
    expected = formulas.patch_embed_macs(2, 32, 40, 8, 3, 48)
    assert expected == 2 * 4 * 5 * 48 * 8 * 8 * 3
    assert fvcore_macs(embed, x) == expected
    assert torch_flops(embed, x) == 2 * expected


def test_count_flops_rows_for_attention_modules():
    """count_flops gives multi-head attention a row for its own work, and the rows add up to the total."""

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = TransformerEncoderLayer(32, 4, 64, batch_first=True)

        def forward(self, x):
            return self.layer(x.flatten(2).transpose(1, 2))

    result = count_flops(Encoder(), (32, 4, 5))
    assert result.macs == result.macs_closed_form == formulas.transformer_encoder_layer_macs(1, 20, 32, 64)
    rows = {row.name: row for row in result.layers}
    assert rows["layer.self_attn"].macs == rows["layer.self_attn"].macs_closed_form > 0
    assert sum(row.macs for row in result.layers) == result.macs
    assert sum(row.params for row in result.layers) == result.params
