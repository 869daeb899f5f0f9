"""Losses: masked task losses (every label may be absent), CCC and coupling losses,
adversarial and synthesis losses (FERSNet)."""

from fermtl_tf.losses.adversarial import discriminator_loss, generator_loss
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
)
from fermtl_tf.losses.synthesis import linear_ramp, squared_error

__all__ = [
    "CCCLoss",
    "CoAnnotation",
    "DistributionMatchingLoss",
    "MaskedBinaryCrossEntropy",
    "MaskedBinaryCrossEntropyPerImage",
    "MaskedL1",
    "MaskedSoftmaxCrossEntropy",
    "SoftCoAnnotationLoss",
    "discriminator_loss",
    "generator_loss",
    "global_sum",
    "linear_ramp",
    "masked_mean",
    "squared_error",
]
