"""Semantic segmentation models, one family per file; each registers its builders with task="segmentation"."""
