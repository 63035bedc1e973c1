"""Metrics from scratch (classification, detection, segmentation).

Each is checked against scikit-learn, pycocotools or torchmetrics in the tests.
"""
