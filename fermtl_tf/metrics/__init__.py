"""Evaluation metrics of the papers' tables: numpy arrays in, Python floats (or lists) out.

Every function takes ``(y_true, y_pred)`` in that order (scikit-learn's and Keras' order).
These compute each number once over a whole evaluation set; they are for reporting, not
for use inside a training graph -- except :func:`nme_per_image` and
:class:`NormalizedMeanError`, the TF form of :func:`nme` for validating landmark tasks.
"""

from fermtl_tf.metrics.classification import (
    accuracy,
    afa,
    au_accuracy,
    au_f1,
    confusion_matrix,
    macro_f1,
    mean_diagonal,
    per_class_accuracy,
    uar,
)
from fermtl_tf.metrics.landmarks import (
    NormalizedMeanError,
    nme,
    nme_per_image,
    normalizing_distance,
)
from fermtl_tf.metrics.regression import ccc, median_filter_by_sequence

__all__ = [
    "NormalizedMeanError",
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
    "nme_per_image",
    "normalizing_distance",
    "per_class_accuracy",
    "uar",
]
