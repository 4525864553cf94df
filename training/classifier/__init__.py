"""torchvision ResNet18 lesion classifier (PyTorch process only)."""
