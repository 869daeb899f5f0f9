"""Keras layers for multi-task sharing: stacked-task layers, gradient reversal (and its
schedule callback), cross-stitch, ConvFLU."""

from fermtl_tf.layers.convflu import ConvFLU
from fermtl_tf.layers.cross_stitch import CrossStitch
from fermtl_tf.layers.gradient_reversal import (
    GradientReversal,
    GradientReversalSchedule,
    ganin_lambda,
)
from fermtl_tf.layers.stacked_batch_norm import StackedBatchNormalization
from fermtl_tf.layers.stacked_conv import StackedConv2D
from fermtl_tf.layers.stacked_dense import StackedDense

__all__ = [
    "ConvFLU",
    "CrossStitch",
    "GradientReversal",
    "GradientReversalSchedule",
    "StackedBatchNormalization",
    "StackedConv2D",
    "StackedDense",
    "ganin_lambda",
]
