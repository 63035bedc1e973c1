"""gaussian_blur against torchvision's; median_filter against scipy.ndimage.median_filter; padding modes."""

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from zoo.fundamentals.filters import PADDING_MODES, gaussian_blur, median_filter, pad2d

# Our padding mode -> scipy.ndimage's name for the same border.
SCIPY_MODE = {
    "reflect": "mirror",
    "symmetric": "reflect",
    "replicate": "nearest",
    "circular": "wrap",
    "zeros": "constant",
}
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _torchvision_sizes(kernel_size):
    return [kernel_size, kernel_size] if isinstance(kernel_size, int) else list(kernel_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 9, 12), (2, 3, 9, 12)])
@pytest.mark.parametrize(
    "kernel_size,sigma", [(3, None), (5, 1.0), ((5, 3), (1.2, 0.7)), ((1, 9), None), (7, [2.5]), ((9, 5), 3.0)]
)
def test_gaussian_blur_matches_torchvision(dtype, shape, kernel_size, sigma):
    img = torch.rand(*shape, dtype=dtype)
    expected = TF.gaussian_blur(img, _torchvision_sizes(kernel_size), sigma)
    torch.testing.assert_close(gaussian_blur(img, kernel_size, sigma), expected, **TOL[dtype])


def test_gaussian_blur_uint8_matches_torchvision():
    img = torch.randint(0, 256, (2, 3, 16, 15), dtype=torch.uint8)
    for kernel_size, sigma in [(3, None), ((5, 7), (1.3, 2.0))]:
        out = gaussian_blur(img, kernel_size, sigma)
        assert out.dtype == torch.uint8
        assert torch.equal(out, TF.gaussian_blur(img, _torchvision_sizes(kernel_size), sigma))


def test_gaussian_blur_kernel_is_the_normalised_gaussian():
    # A unit impulse far from the border reproduces the 2-D kernel: exp(-t^2 / (2 sigma^2)), normalised.
    img = torch.zeros(1, 11, 11, dtype=torch.float64)
    img[0, 5, 5] = 1
    out = gaussian_blur(img, (5, 3), (1.5, 0.8))[0, 4:7, 3:8]
    gx = torch.exp(-(torch.arange(-2.0, 3.0, dtype=torch.float64) ** 2) / (2 * 1.5**2))
    gy = torch.exp(-(torch.arange(-1.0, 2.0, dtype=torch.float64) ** 2) / (2 * 0.8**2))
    torch.testing.assert_close(out, torch.outer(gy / gy.sum(), gx / gx.sum()))


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("kernel_size", [3, (5, 3), (1, 7), 9])
@pytest.mark.parametrize("shape", [(3, 6, 7), (2, 2, 6, 7)])
def test_median_filter_matches_scipy(mode, kernel_size, shape):
    img = torch.randn(*shape)
    size = (1,) * (len(shape) - 2) + ((kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size)
    expected = scipy.ndimage.median_filter(img.numpy(), size=size, mode=SCIPY_MODE[mode], cval=0.0)
    np.testing.assert_array_equal(median_filter(img, kernel_size, mode).numpy(), expected)


def test_median_filter_integer_image_and_default_mode():
    img = torch.randint(0, 256, (3, 8, 9), dtype=torch.uint8)
    expected = scipy.ndimage.median_filter(img.numpy(), size=(1, 3, 3), mode="mirror")
    out = median_filter(img, 3)
    assert out.dtype == torch.uint8
    np.testing.assert_array_equal(out.numpy(), expected)


def test_median_filter_removes_salt_noise():
    img = torch.zeros(1, 7, 7)
    img[0, 3, 3] = 100.0
    assert median_filter(img, 3).abs().max() == 0


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad2d_matches_torch_pad(mode):
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(pad2d(x, (2, 3), mode), F.pad(x, (3, 3, 2, 2), mode=mode), rtol=0, atol=0)
    torch.testing.assert_close(pad2d(x, (2, 3), "zeros"), F.pad(x, (3, 3, 2, 2)), rtol=0, atol=0)


def test_filters_reject_bad_input():
    img = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(img, 4)
    with pytest.raises(ValueError, match="odd"):
        median_filter(img, (3, 2))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(img, 3, -1.0)
    with pytest.raises(ValueError, match="smaller than the image"):
        gaussian_blur(img, 17)
    with pytest.raises(ValueError, match="3-D or 4-D"):
        gaussian_blur(torch.rand(8, 8), 3)
    with pytest.raises(ValueError, match="padding_mode"):
        median_filter(img, 3, "mirror")
    with pytest.raises(TypeError, match="torch.Tensor"):
        median_filter(img.numpy(), 3)


def test_filters_empty_input():
    empty = torch.rand(0, 3, 8, 8)
    assert gaussian_blur(empty, 3).shape == empty.shape
    assert median_filter(empty, 3).shape == empty.shape
