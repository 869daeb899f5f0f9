"""Evaluation metrics of the papers' tables: numpy arrays in, Python floats (or lists) out.

These compute each number once over a whole evaluation set; they are for reporting, not
for use inside a training graph.
"""

from fermtl_tf.metrics.classification import (
    accuracy,
    afa,
    au_accuracy,
    au_f1,
    confusion_matrix,
    macro_f1,
    mean_diagonal,
    uar,
)
from fermtl_tf.metrics.landmarks import nme, normalizing_distance
from fermtl_tf.metrics.regression import ccc, median_filter_by_sequence

__all__ = [
    "accuracy",
    "afa",
    "au_accuracy",
    "au_f1",
    "ccc",
    "confusion_matrix",
    "macro_f1",
    "mean_diagonal",
    "median_filter_by_sequence",
    "nme",
    "normalizing_distance",
    "uar",
]
