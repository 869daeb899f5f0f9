"""Models: backbones and one module per method (``baseline`` = single-task ResNet)."""
