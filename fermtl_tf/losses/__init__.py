"""Losses: masked task losses (every label may be absent), CCC and coupling losses."""

from fermtl_tf.losses.ccc import CCCLoss
from fermtl_tf.losses.coupling import (
    CoAnnotation,
    DistributionMatchingLoss,
    SoftCoAnnotationLoss,
)
from fermtl_tf.losses.masked import (
    MaskedBinaryCrossEntropy,
    MaskedBinaryCrossEntropyPerImage,
    MaskedL1,
    MaskedSoftmaxCrossEntropy,
    global_sum,
    masked_mean,
    reduce_per_sample,
)

__all__ = [
    "CCCLoss",
    "CoAnnotation",
    "DistributionMatchingLoss",
    "MaskedBinaryCrossEntropy",
    "MaskedBinaryCrossEntropyPerImage",
    "MaskedL1",
    "MaskedSoftmaxCrossEntropy",
    "SoftCoAnnotationLoss",
    "global_sum",
    "masked_mean",
    "reduce_per_sample",
]
