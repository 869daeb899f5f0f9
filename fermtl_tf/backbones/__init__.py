"""Backbones: feature extractors mapping normalised images to a feature vector."""

from fermtl_tf.backbones.resnet import build_resnet

__all__ = ["build_resnet"]
