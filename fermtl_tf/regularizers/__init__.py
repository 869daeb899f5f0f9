"""Keras regularisers: tensor trace norms for stacked multi-task weights (Hu et al. 2018)."""

from fermtl_tf.regularizers.randomized_svd import randomized_svd, sketch
from fermtl_tf.regularizers.trace_norm import (
    TensorTraceNorm,
    matrix_trace_norm,
    reduce_unfoldings,
    tensor_trace_norm,
    tt_unfold,
    unfold,
    unfoldings,
)

__all__ = [
    "TensorTraceNorm",
    "matrix_trace_norm",
    "randomized_svd",
    "reduce_unfoldings",
    "sketch",
    "tensor_trace_norm",
    "tt_unfold",
    "unfold",
    "unfoldings",
]
