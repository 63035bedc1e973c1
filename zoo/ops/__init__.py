"""Detection and segmentation ops from scratch, drop-in for ``torchvision.ops`` where it has the op."""
