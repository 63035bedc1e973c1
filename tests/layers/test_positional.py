"""Position encodings against the formula of Vaswani et al. (§3.5) and DETR's 2-D sine encoding against Hugging Face
transformers' ``DetrSinePositionEmbedding``."""

import math

import pytest
import torch

from zoo.layers import LearnedPositionEmbedding, SinePositionEmbedding2d, SinusoidalPositionalEncoding


def test_sinusoidal_encoding_is_the_papers_formula():
    d = 16
    positions = torch.tensor([0, 1, 2, 7, 50, 999])
    encoding = SinusoidalPositionalEncoding(d)(positions)
    assert encoding.shape == (len(positions), d)
    for row, p in enumerate(positions.tolist()):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert encoding[row, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert encoding[row, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_sinusoidal_encoding_of_real_positions_and_batches():
    module = SinusoidalPositionalEncoding(8, temperature=100)
    positions = torch.rand(2, 3, dtype=torch.float64) * 10
    encoding = module(positions)
    assert encoding.shape == (2, 3, 8) and encoding.dtype == torch.float64
    assert encoding[1, 2, 5].item() == pytest.approx(math.cos(positions[1, 2].item() / 100 ** (4 / 8)))


def test_sine_2d_equals_transformers_detr_embedding():
    from transformers.models.detr.modeling_detr import DetrSinePositionEmbedding

    mask = torch.zeros(3, 6, 9, dtype=torch.bool)
    mask[0] = True
    mask[1, :4, :5] = True
    mask[2, :6, :2] = True
    ours = SinePositionEmbedding2d(32)(mask)
    theirs = DetrSinePositionEmbedding(32, normalize=True)(torch.Size([3, 7, 6, 9]), "cpu", torch.float32, mask=mask)
    assert ours.shape == (3, 64, 6, 9)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    unnormalised = DetrSinePositionEmbedding(32)(torch.Size([3, 7, 6, 9]), "cpu", torch.float32, mask=mask)
    torch.testing.assert_close(SinePositionEmbedding2d(32, normalize=False)(mask), unnormalised, rtol=0, atol=1e-6)


def test_sine_2d_rows_then_columns_from_the_1d_encoding():
    mask = torch.ones(1, 4, 5, dtype=torch.bool)
    encoding = SinePositionEmbedding2d(6, normalize=False)(mask)
    one_d = SinusoidalPositionalEncoding(6)
    torch.testing.assert_close(encoding[0, :6, 2, 3], one_d(torch.tensor(3.0)))  # row 2: the third, y' = 3
    torch.testing.assert_close(encoding[0, 6:, 2, 3], one_d(torch.tensor(4.0)))  # column 3: x' = 4


def test_learned_embedding_is_a_table():
    module = LearnedPositionEmbedding(10, 4)
    assert sum(p.numel() for p in module.parameters()) == 40
    positions = torch.tensor([[0, 9], [3, 3]])
    torch.testing.assert_close(module(positions), module.embedding.weight[positions])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SinusoidalPositionalEncoding(7), "even"),
        (lambda: SinusoidalPositionalEncoding(0), "positive int"),
        (lambda: SinusoidalPositionalEncoding(8, temperature=0), "temperature"),
        (lambda: SinePositionEmbedding2d(8, normalize=False, scale=1.0), "normalize=True"),
        (lambda: LearnedPositionEmbedding(0, 4), "num_positions"),
    ],
)
def test_bad_arguments_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        SinePositionEmbedding2d(8)(torch.ones(4, 5))
    with pytest.raises(TypeError, match="integer"):
        LearnedPositionEmbedding(10, 4)(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="0..9"):
        LearnedPositionEmbedding(10, 4)(torch.tensor([10]))
    with pytest.raises(TypeError, match="tensor"):
        SinusoidalPositionalEncoding(8)([1, 2])
