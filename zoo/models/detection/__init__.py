"""Object detectors, one file per family or role (as torchvision's ``models/detection``)."""
