"""Losses: masked task losses (every label may be absent) and, later, coupling losses."""

from fermtl_tf.losses.masked import (
    MaskedBinaryCrossEntropy,
    MaskedL1,
    MaskedSoftmaxCrossEntropy,
    global_sum,
    masked_mean,
)

__all__ = [
    "MaskedBinaryCrossEntropy",
    "MaskedL1",
    "MaskedSoftmaxCrossEntropy",
    "global_sum",
    "masked_mean",
]
