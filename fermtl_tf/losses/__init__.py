"""Losses: masked task losses (every label may be absent), CCC, coupling and alignment losses."""

from fermtl_tf.losses.alignment import (
    AlignmentLoss,
    alignment_am,
    alignment_dm1,
    alignment_dm2,
    au_from_emotion,
    emotion_from_au,
    expected_au,
)
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
    "AlignmentLoss",
    "alignment_am",
    "alignment_dm1",
    "alignment_dm2",
    "au_from_emotion",
    "emotion_from_au",
    "expected_au",
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
