"""The detectors' one image batcher against torchvision's ``GeneralizedRCNNTransform.batch_images`` and padding
written out by hand."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.transform import GeneralizedRCNNTransform as ReferenceTransform

from zoo.models.detection.batching import as_image_list, batch_images


def test_pads_to_the_stride_as_torchvision_and_records_the_sizes():
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, h, w, generator=generator) for h, w in [(30, 50), (45, 20), (33, 64)]]
    batch = batch_images(images, 32)
    assert batch.tensors.shape == (3, 3, 64, 64)  # the largest 45 × 64, each side rounded up to 32
    assert batch.image_sizes == [(30, 50), (45, 20), (33, 64)]
    reference = ReferenceTransform(800, 1333, [0.0] * 3, [1.0] * 3)
    assert torch.equal(batch.tensors, reference.batch_images(images, size_divisible=32))
    # By hand: zeros at the bottom and right of each image.
    assert torch.equal(batch.tensors[1], F.pad(images[1], (0, 64 - 20, 0, 64 - 45)))


def test_a_batch_tensor_is_returned_as_it_is_or_padded():
    images = torch.randn(2, 3, 64, 32)
    batch = batch_images(images, 32)
    assert batch.tensors is images and batch.image_sizes == [(64, 32)] * 2
    padded = batch_images(torch.ones(2, 3, 40, 50), 16)
    assert padded.tensors.shape == (2, 3, 48, 64) and padded.image_sizes == [(40, 50)] * 2
    assert padded.tensors[:, :, :40, :50].eq(1).all() and padded.tensors.sum() == 2 * 3 * 40 * 50


def test_without_padding_the_size_must_be_a_multiple():
    listed = batch_images([torch.zeros(3, 64, 32), torch.zeros(3, 32, 64)], 32, pad=False)
    assert listed.tensors.shape == (2, 3, 64, 64) and listed.image_sizes == [(64, 32), (32, 64)]
    with pytest.raises(ValueError, match=r"YOLOv3 expects .* positive multiples of 32 .*, got 48×64"):
        batch_images(torch.zeros(1, 3, 48, 64), 32, pad=False, model_name="YOLOv3")
    with pytest.raises(ValueError, match="multiples of 32"):
        batch_images([torch.zeros(3, 40, 64)], 32, pad=False)
    with pytest.raises(ValueError, match="positive"):
        batch_images(torch.zeros(1, 3, 0, 64), 32)


def test_bad_images_raise():
    with pytest.raises(ValueError, match=r"images\[1\]: expected a tensor \[C, H, W\]"):
        batch_images([torch.zeros(3, 8, 8), torch.zeros(8, 8)])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        as_image_list(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="non-empty list"):
        batch_images([])
    with pytest.raises(ValueError, match="3 input channels"):
        batch_images([torch.zeros(3, 8, 8), torch.zeros(1, 8, 8)], in_channels=3)
    with pytest.raises(ValueError, match="3 input channels"):
        batch_images(torch.zeros(2, 1, 8, 8), in_channels=3)
    with pytest.raises(TypeError, match="floating-point"):
        batch_images([torch.zeros(3, 8, 8, dtype=torch.uint8)], in_channels=3)
