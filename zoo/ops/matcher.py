"""Assigning predictions to ground truth, and sampling a balanced training batch (Ren et al., 2015, sec. 3.1.2).

:class:`Matcher` gives each prediction ``n`` (an anchor or a proposal) the ground-truth box ``m`` of highest
quality ``Q[m, n]`` (usually IoU) and keeps it only if ``Q >= high_threshold``; below ``low_threshold`` it is
marked ``BELOW_LOW_THRESHOLD`` (-1, background), in between ``BETWEEN_THRESHOLDS`` (-2, ignored). With
``allow_low_quality_matches`` (the RPN's rule (i): "the anchor with the highest IoU with a ground-truth box" is
positive even when that IoU is low) every prediction that ties for the best quality of some ground-truth box is
given back its best match, whatever its quality.

:class:`BalancedPositiveNegativeSampler` draws, per image, at most ``batch_size_per_image * positive_fraction``
positives (labels >= 1) and fills the rest of the batch with negatives (label 0); label -1 is never drawn.

Drop-in for ``torchvision.models.detection._utils.Matcher`` and ``BalancedPositiveNegativeSampler``: the same
matches (ties resolved by ``Tensor.max``, i.e. the first ground truth of highest quality), the same errors for
an empty matrix, and the same random draws from the same RNG state (two ``torch.randperm`` calls per image,
positives first).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops._graph import check_all

__all__ = ["Matcher", "SSDMatcher", "BalancedPositiveNegativeSampler"]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN


class Matcher:
    """Match each column (prediction) of an ``[M, N]`` quality matrix to a row (ground truth) or to a negative code.

    Args:
        high_threshold: qualities ``>= high_threshold`` are matches.
        low_threshold: qualities in ``[low_threshold, high_threshold)`` are ``BETWEEN_THRESHOLDS``, lower ones
            ``BELOW_LOW_THRESHOLD``.
        allow_low_quality_matches: also match, to their best ground truth, the predictions that have the
            highest quality of some ground-truth box (ties included).
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False) -> None:
        if not (_is_number(high_threshold) and _is_number(low_threshold)):
            raise TypeError(f"thresholds: expected numbers, got high={high_threshold!r}, low={low_threshold!r}")
        if low_threshold > high_threshold:
            raise ValueError(
                f"low_threshold must be <= high_threshold, got low={low_threshold} > high={high_threshold}"
            )
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(high_threshold={self.high_threshold}, low_threshold={self.low_threshold}, "
            f"allow_low_quality_matches={self.allow_low_quality_matches})"
        )

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        """Matches ``[N]`` (int64): a ground-truth index in ``[0, M)``, or -1 / -2, for each prediction."""
        quality = match_quality_matrix
        if not isinstance(quality, Tensor) or quality.dim() != 2:
            shape = list(quality.shape) if isinstance(quality, Tensor) else type(quality).__name__
            raise ValueError(f"match_quality_matrix: expected a tensor [M ground truths, N predictions], got {shape}")
        if quality.numel() == 0:
            # As in torchvision: training needs at least one box on each side (callers handle images without gt).
            side = "ground-truth" if quality.shape[0] == 0 else "proposal"
            raise ValueError(f"No {side} boxes available for one of the images during training")
        if quality.is_floating_point():
            message = "match_quality_matrix: expected no NaN qualities"
            check_all(~quality.isnan(), lambda: message, message)
        best_quality, matches = quality.max(dim=0)
        best_matches = matches.clone()
        matches[best_quality < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        between = (best_quality >= self.low_threshold) & (best_quality < self.high_threshold)
        matches[between] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_for_some_gt = (quality == quality.max(dim=1, keepdim=True).values).any(dim=0)
            matches[best_for_some_gt] = best_matches[best_for_some_gt]
        return matches


class SSDMatcher(Matcher):
    """SSD's matching (Liu et al., 2016, sec. 2.2, "Matching strategy"): each default box takes the ground
    truth of highest IoU when that IoU is at least ``threshold`` (0.5), and each ground-truth box also takes
    its own best default box, whatever their IoU (the "best jaccard overlap" rule, which the last ground truth
    wins where two share a best box). Drop-in for torchvision's ``SSDMatcher``."""

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold, threshold, allow_low_quality_matches=False)

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        matches = super().__call__(match_quality_matrix)
        best_prediction = match_quality_matrix.max(dim=1).indices
        matches[best_prediction] = torch.arange(len(best_prediction), dtype=torch.int64, device=matches.device)
        return matches


class BalancedPositiveNegativeSampler:
    """Sample a fixed-size, class-balanced subset of the labelled predictions of each image.

    Args:
        batch_size_per_image: predictions to draw per image (fewer when there are not enough).
        positive_fraction: the largest share of positives in the batch; negatives fill the rest.

    Calling it with per-image label tensors (``>= 1`` positive, ``0`` negative, ``-1`` ignored) returns two
    lists of ``uint8`` masks, the sampled positives and the sampled negatives, as torchvision does. The draw uses
    ``torch.randperm`` from ``generator`` (default: the global RNG) exactly as torchvision does, so with the same
    RNG state both pick the same elements.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        if isinstance(batch_size_per_image, bool) or not isinstance(batch_size_per_image, int):
            raise TypeError(f"batch_size_per_image: expected an int, got {type(batch_size_per_image).__name__}")
        if batch_size_per_image < 0:
            raise ValueError(f"batch_size_per_image: expected a non-negative int, got {batch_size_per_image}")
        if not _is_number(positive_fraction) or not 0 <= positive_fraction <= 1:
            raise ValueError(f"positive_fraction: expected a number in [0, 1], got {positive_fraction!r}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size_per_image={self.batch_size_per_image}, "
            f"positive_fraction={self.positive_fraction})"
        )

    def __call__(
        self, matched_idxs: Sequence[Tensor], generator: torch.Generator | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        if isinstance(matched_idxs, Tensor) or not isinstance(matched_idxs, Sequence):
            raise TypeError(f"matched_idxs: expected a list of per-image label tensors, got {type(matched_idxs)}")
        positive_masks, negative_masks = [], []
        # A loop over the images of the batch: each image draws its own sample.
        for index, labels in enumerate(matched_idxs):
            if not isinstance(labels, Tensor) or labels.dim() != 1:
                shape = list(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
                raise ValueError(f"matched_idxs[{index}]: expected a 1-D label tensor, got {shape}")
            positive_mask, negative_mask = self._sample(labels, generator)
            positive_masks.append(positive_mask)
            negative_masks.append(negative_mask)
        return positive_masks, negative_masks

    def _sample(self, labels: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        positives = (labels >= 1).nonzero().flatten()
        negatives = (labels == 0).nonzero().flatten()
        num_positive = min(len(positives), int(self.batch_size_per_image * self.positive_fraction))
        num_negative = min(len(negatives), self.batch_size_per_image - num_positive)
        # Two permutations, positives first, of the full candidate lists: the RNG consumption of torchvision.
        positive_draw = torch.randperm(len(positives), generator=generator, device=labels.device)[:num_positive]
        negative_draw = torch.randperm(len(negatives), generator=generator, device=labels.device)[:num_negative]
        positive_mask = torch.zeros_like(labels, dtype=torch.uint8)
        negative_mask = torch.zeros_like(labels, dtype=torch.uint8)
        positive_mask[positives[positive_draw]] = 1
        negative_mask[negatives[negative_draw]] = 1
        return positive_mask, negative_mask
