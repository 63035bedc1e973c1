"""Gaussian keypoint heatmaps: CornerNet's radius rule and CenterNet's "umich" Gaussian splat.

Radius (Law & Deng, 2018, "CornerNet", sec. 3.2). A predicted box whose corners are each within ``r`` (in x and
in y) of the corners of a ``w x h`` ground-truth box should keep ``IoU >= o`` (``min_overlap``). The worst
placements give three cases, each a quadratic in ``r`` (``s = w + h``, ``p = w h``):

    1. both corners moved the same way (the box translated by (r, r)):
       (w - r)(h - r) / (2p - (w - r)(h - r)) = o   ->   r^2 - s r + p (1 - o) / (1 + o) = 0,  smaller root
    2. both corners moved inwards (a (w - 2r) x (h - 2r) box inside the ground truth):
       (w - 2r)(h - 2r) / p = o                     ->   4 r^2 - 2 s r + (1 - o) p = 0,        smaller root
    3. both corners moved outwards (a (w + 2r) x (h + 2r) box around it):
       p / ((w + 2r)(h + 2r)) = o                   ->   4 o r^2 + 2 o s r - (1 - o) p = 0,    positive root

and the radius is the smallest of the three roots. The roots are computed in the cancellation-free form
``r = 2c / (-b + sqrt(b^2 - 4ac))`` (cases 1, 2) and ``2|c| / (b + sqrt(b^2 - 4ac))`` (case 3).

The known bug. The published ``gaussian_radius`` of CornerNet, copied into CenterNet (Zhou et al., 2019,
"Objects as Points") and most of their descendants, computes every root as ``(b + sqrt(b^2 - 4ac)) / 2``: it
omits the ``a`` of ``2a`` (cases 2 and 3 have ``a = 4`` and ``a = 4o``) and, with its ``b = +s`` (case 1) and
``b = +2s`` (case 2), returns the larger root of those two quadratics instead of the smaller. Its cases 1 and 2
are therefore far too large, and its result is case 3's root times ``4o``. On boxes of every aspect ratio that
we tried, the correct minimum is case 2's root and the published radius is 3.3 to 4 times it at ``o = 0.7``
(1.3 to 4 times over ``o`` in [0.1, 0.99]): CenterNet's Gaussians are much wider than the geometry asks for.
``original=False`` (the default) gives the radius of the geometry above; ``original=True`` reproduces the
published formula, and with it CenterNet's training targets (which then take ``max(0, int(radius))``).

Splat (CenterNet's ``draw_umich_gaussian``). An object at integer cell ``(x, y)`` with integer radius ``r`` puts

    exp(-(dx^2 + dy^2) / (2 sigma^2)),   sigma = (2r + 1) / 6,   |dx|, |dy| <= r

into its class channel, keeping the element-wise maximum with what is there, and dropping what falls outside
the map. (The original also zeroes values below machine epsilon; within ``|dx|, |dy| <= r`` the Gaussian never
falls below ``exp(-9)``, so nothing is zeroed.) Values are computed in float64 and stored in the heatmap's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["gaussian_radius", "gaussian_radius_cases", "draw_gaussian", "draw_gaussians"]


def _radius_inputs(height: float | Tensor, width: float | Tensor, min_overlap: float) -> tuple[Tensor, Tensor]:
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, (int, float)) or not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap: expected a number in (0, 1], got {min_overlap!r}")
    sides = []
    for value, name in ((height, "height"), (width, "width")):
        if not isinstance(value, (int, float, Tensor)) or isinstance(value, bool):
            raise TypeError(f"{name}: expected a number or a tensor, got {type(value).__name__}")
        value = torch.as_tensor(value, dtype=torch.float64)
        if not (value.isfinite() & (value >= 0)).all():
            raise ValueError(f"{name}: expected finite, non-negative box sizes")
        sides.append(value)
    return sides[0], sides[1]


def _output(radius: Tensor, height: float | Tensor, width: float | Tensor) -> float | Tensor:
    """A float for scalar inputs; otherwise a tensor in the inputs' floating dtype (float32 for integers)."""
    tensors = [v for v in (height, width) if isinstance(v, Tensor)]
    if not tensors:
        return float(radius)
    dtype = torch.result_type(*tensors) if len(tensors) == 2 else tensors[0].dtype
    return radius.to(dtype=dtype if dtype.is_floating_point else torch.float32, device=tensors[0].device)


def _corrected_cases(height: Tensor, width: Tensor, overlap: float) -> tuple[Tensor, Tensor, Tensor]:
    s, p = height + width, height * width
    c1 = p * (1 - overlap) / (1 + overlap)
    q1 = torch.sqrt(s**2 - 4 * c1)
    q2 = torch.sqrt(s**2 - 4 * (1 - overlap) * p)
    q3 = torch.sqrt((overlap * s) ** 2 + 4 * overlap * (1 - overlap) * p)
    positive = s > 0  # s = 0 is a point box: every root is 0 (and every formula below 0 / 0)
    safe = torch.where(positive, s, 1.0)
    r1 = torch.where(positive, 2 * c1 / (safe + q1), 0.0)
    r2 = torch.where(positive, (1 - overlap) * p / (safe + q2), 0.0)
    r3 = torch.where(positive, (1 - overlap) * p / (overlap * safe + q3), 0.0)
    return r1, r2, r3


def _published_cases(height: Tensor, width: Tensor, overlap: float) -> tuple[Tensor, Tensor, Tensor]:
    # The published arithmetic, coefficient for coefficient, bug included (see the module docstring).
    s, p = height + width, height * width
    a1, b1, c1 = 1.0, s, p * (1 - overlap) / (1 + overlap)
    a2, b2, c2 = 4.0, 2 * s, (1 - overlap) * p
    a3, b3, c3 = 4 * overlap, -2 * overlap * s, (overlap - 1) * p
    roots = [(b + torch.sqrt(b**2 - 4 * a * c)) / 2 for a, b, c in ((a1, b1, c1), (a2, b2, c2), (a3, b3, c3))]
    return roots[0], roots[1], roots[2]


def gaussian_radius_cases(
    height: float | Tensor, width: float | Tensor, min_overlap: float = 0.7, *, original: bool = False
) -> tuple[float | Tensor, float | Tensor, float | Tensor]:
    """The three per-case radii ``(r1, r2, r3)`` of the module docstring (``original``: the published ones)."""
    h, w = _radius_inputs(height, width, min_overlap)
    cases = (_published_cases if original else _corrected_cases)(h, w, float(min_overlap))
    r1, r2, r3 = (_output(r, height, width) for r in cases)
    return r1, r2, r3


def gaussian_radius(
    height: float | Tensor, width: float | Tensor, min_overlap: float = 0.7, *, original: bool = False
) -> float | Tensor:
    """Largest corner displacement that keeps ``IoU >= min_overlap`` with a ``height x width`` box.

    ``original=False``: the radius of the correct geometry (module docstring). ``original=True``: CornerNet's /
    CenterNet's published formula, with its known bug, to reproduce their training targets. Takes numbers
    (returns a float) or broadcastable tensors (returns a tensor of sizes, element-wise).
    """
    h, w = _radius_inputs(height, width, min_overlap)
    r1, r2, r3 = (_published_cases if original else _corrected_cases)(h, w, float(min_overlap))
    return _output(torch.minimum(torch.minimum(r1, r2), r3), height, width)


def _check_heatmap(heatmap: Tensor, dims: int) -> None:
    if not isinstance(heatmap, Tensor) or heatmap.dim() != dims or not heatmap.is_floating_point():
        shape = list(heatmap.shape) if isinstance(heatmap, Tensor) else type(heatmap).__name__
        layout = "[C, H, W]" if dims == 3 else "[H, W]"
        raise ValueError(f"heatmap: expected a floating-point tensor {layout}, got {shape}")


def _check_objects(heatmap: Tensor, centers: Tensor, radii: Tensor, labels: Tensor) -> None:
    if centers.dim() != 2 or centers.shape[1] != 2:
        raise ValueError(f"centers: expected shape [N, 2] (x, y), got {list(centers.shape)}")
    count = len(centers)
    for tensor, name in ((radii, "radii"), (labels, "labels")):
        if tensor.shape != (count,):
            raise ValueError(f"{name}: expected shape [{count}] (one per center), got {list(tensor.shape)}")
    if centers.is_floating_point() and not centers.isfinite().all():
        raise ValueError("centers: expected finite coordinates")
    if radii.is_floating_point() and not (radii == radii.trunc()).all():
        raise ValueError("radii: expected integers (CenterNet draws with max(0, int(gaussian_radius(...))))")
    if (radii < 0).any():
        raise ValueError("radii: expected non-negative integers")
    if labels.is_floating_point() or ((labels < 0) | (labels >= heatmap.shape[0])).any():
        raise ValueError(f"labels: expected integer class indices in [0, {heatmap.shape[0]})")


def draw_gaussians(heatmap: Tensor, centers: Tensor, radii: Tensor, labels: Tensor) -> Tensor:
    """Splat one Gaussian per object into ``heatmap [C, H, W]`` in place (element-wise max); return it.

    ``centers [N, 2]`` are ``(x, y)`` cells, truncated towards zero like CenterNet's ``int()``; ``radii [N]``
    are integer radii and ``labels [N]`` the channel of each object. All objects are drawn at once, through
    ``(2 max(r) + 1)^2`` offsets per object; parts outside the map are dropped.
    """
    _check_heatmap(heatmap, 3)
    centers, radii, labels = (torch.as_tensor(v, device=heatmap.device) for v in (centers, radii, labels))
    _check_objects(heatmap, centers, radii, labels)
    if len(centers) == 0:
        return heatmap
    channels, height, width = heatmap.shape
    cells = centers.trunc().long()
    radii, labels = radii.long(), labels.long()
    reach = int(radii.max())
    offsets = torch.arange(-reach, reach + 1, device=heatmap.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")  # [D, D]
    sigma = (2 * radii + 1).double() / 6
    values = torch.exp(-(dx**2 + dy**2)[None].double() / (2 * sigma[:, None, None] ** 2))  # [N, D, D]
    x = cells[:, 0, None, None] + dx
    y = cells[:, 1, None, None] + dy
    inside = (dx.abs() <= radii[:, None, None]) & (dy.abs() <= radii[:, None, None])
    inside &= (x >= 0) & (x < width) & (y >= 0) & (y < height)
    flat_index = (labels[:, None, None] * height + y) * width + x
    target = heatmap if heatmap.is_contiguous() else heatmap.contiguous()
    # amax is order-independent, so overlapping objects merge the same way on every device.
    target.view(-1).scatter_reduce_(
        0, flat_index[inside], values[inside].to(heatmap.dtype), reduce="amax", include_self=True
    )
    if target is not heatmap:
        heatmap.copy_(target)
    return heatmap


def draw_gaussian(heatmap: Tensor, center: Sequence[float] | Tensor, radius: int) -> Tensor:
    """Splat one Gaussian of integer ``radius`` at ``center = (x, y)`` into ``heatmap [H, W]`` in place; return it."""
    _check_heatmap(heatmap, 2)
    if isinstance(radius, bool) or not isinstance(radius, int):
        raise TypeError(f"radius: expected an int (CenterNet uses max(0, int(radius))), got {radius!r}")
    centers = torch.as_tensor(center, device=heatmap.device).reshape(1, -1)
    draw_gaussians(heatmap[None], centers, torch.tensor([radius]), torch.zeros(1, dtype=torch.long))
    return heatmap
