"""Constants shared by models, data and tasks, in a module with no dependencies (so a model can use them
without importing the data loaders, and with them PyTorch Lightning)."""

__all__ = ["IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "SYNTHETIC_MEAN", "SYNTHETIC_STD"]

# Per-channel RGB mean and standard deviation of ImageNet, as torchvision's and timm's transforms use them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The built-in synthetic scenes are normalised with these (their pixels lie in [0, 1] around 0.5).
SYNTHETIC_MEAN = (0.5, 0.5, 0.5)
SYNTHETIC_STD = (0.25, 0.25, 0.25)
# Target value that losses and metrics skip (VOC's object borders; partly covered synthetic pixels).
IGNORE_INDEX = 255
