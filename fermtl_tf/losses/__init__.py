"""Losses: masked task losses (every label may be absent), CCC, coupling, alignment,
metric-learning and synthesis (GAN, reconstruction, cycle, identity) losses."""

from fermtl_tf.losses.adversarial import discriminator_loss, generator_loss
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
from fermtl_tf.losses.synthesis import linear_ramp, squared_error
from fermtl_tf.losses.tuple_clusters import (
    AdaptiveTupleClusters,
    TupleClustersLoss,
    TupletLoss,
    online_positive_mining,
    tuple_clusters_loss,
    tuplet_loss,
)

__all__ = [
    "AdaptiveTupleClusters",
    "AlignmentLoss",
    "CCCLoss",
    "CoAnnotation",
    "DistributionMatchingLoss",
    "MaskedBinaryCrossEntropy",
    "MaskedBinaryCrossEntropyPerImage",
    "MaskedL1",
    "MaskedSoftmaxCrossEntropy",
    "SoftCoAnnotationLoss",
    "TupleClustersLoss",
    "TupletLoss",
    "alignment_am",
    "alignment_dm1",
    "alignment_dm2",
    "au_from_emotion",
    "discriminator_loss",
    "emotion_from_au",
    "expected_au",
    "generator_loss",
    "global_sum",
    "linear_ramp",
    "masked_mean",
    "online_positive_mining",
    "reduce_per_sample",
    "squared_error",
    "tuple_clusters_loss",
    "tuplet_loss",
]
