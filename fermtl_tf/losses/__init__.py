"""Losses: masked task losses (every label may be absent), CCC, coupling and metric losses."""

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
    "global_sum",
    "masked_mean",
    "online_positive_mining",
    "tuple_clusters_loss",
    "tuplet_loss",
]
