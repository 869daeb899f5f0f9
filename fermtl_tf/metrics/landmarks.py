"""Normalised mean error (NME) of 68-point landmarks, in percent.

Hu et al. (2018) Sec. 4.1 "Facial Landmarks" and Table 6 evaluate 300-W with "the
distance between estimated landmarks and the ground truths, normalised by the
inter-pupil distance"; the inter-ocular (outer eye corner) variant is the 300-W
challenge's. Per image: mean point-to-point Euclidean error / normaliser of the *true*
shape; the reported number is the mean over images, times 100.

NME is invariant to a uniform scaling of both shapes, so (0, 1) coordinates and pixel
coordinates give the same value as long as x and y are scaled by the same factor (not
after a per-coordinate whitening: undo that first).

:func:`nme` is the reporting function (numpy, whole set). :func:`nme_per_image` and
:class:`NormalizedMeanError` compute the same per-image NME with TF ops for a validation
metric of landmark tasks inside a compiled step; their mean over images is the same number,
so a streaming mean is exact.
"""

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.knowledge.landmarks import LEFT_EYE, NUM_LANDMARKS, OUTER_EYE_CORNERS, RIGHT_EYE

NORMALIZATIONS = ("inter_pupil", "inter_ocular")


def _shapes(name, values):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(
            f"{name} must be [N, {NUM_LANDMARKS}, 2] (or [{NUM_LANDMARKS}, 2]) landmarks, "
            f"got shape {np.shape(values)}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return array


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return normalization


def normalizing_distance(y_true, normalization="inter_pupil"):
    """Per-image normaliser ``[N]`` of true shapes ``[N, 68, 2]``.

    ``inter_pupil``: distance between the eye centres, the means of points 36-41 and
    42-47 (0-based). ``inter_ocular``: distance between outer eye corners 36 and 45.
    """
    y_true = _shapes("y_true", y_true)
    if _check_normalization(normalization) == "inter_pupil":
        first = y_true[:, list(RIGHT_EYE)].mean(axis=1)
        second = y_true[:, list(LEFT_EYE)].mean(axis=1)
    else:
        first, second = y_true[:, OUTER_EYE_CORNERS[0]], y_true[:, OUTER_EYE_CORNERS[1]]
    return np.linalg.norm(first - second, axis=-1)


def nme(y_true, y_pred, normalization="inter_pupil", per_image=False):
    """Normalised mean error in percent; ``per_image=True`` returns the per-image list."""
    y_true, y_pred = _shapes("y_true", y_true), _shapes("y_pred", y_pred)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"y_pred has shape {y_pred.shape} but y_true has shape {y_true.shape}")
    distance = normalizing_distance(y_true, normalization)
    degenerate = np.flatnonzero(distance <= 0)
    if degenerate.size:
        raise ValueError(f"{normalization} distance is 0 for image(s) {degenerate.tolist()}")
    errors = np.linalg.norm(y_pred - y_true, axis=-1).mean(axis=1) / distance * 100.0
    return [float(e) for e in errors] if per_image else float(errors.mean())


def nme_per_image(y_true, y_pred, normalization="inter_pupil"):
    """Per-image NME in percent ``[B]`` with TF ops, for validation inside a compiled step.

    ``y_true``, ``y_pred``: ``[B, 68, 2]`` (or ``[B, 136]``, x and y interleaved). Same
    definition as :func:`nme`; an image whose normaliser is 0 (e.g. an all-zero padding row
    without a landmark label) gets 0 rather than NaN, so weight such rows out with the
    landmark mask.
    """
    _check_normalization(normalization)
    y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1, NUM_LANDMARKS, 2])
    y_pred = tf.reshape(tf.cast(y_pred, tf.float32), [-1, NUM_LANDMARKS, 2])
    if normalization == "inter_pupil":
        first = tf.reduce_mean(tf.gather(y_true, list(RIGHT_EYE), axis=1), axis=1)
        second = tf.reduce_mean(tf.gather(y_true, list(LEFT_EYE), axis=1), axis=1)
    else:
        first, second = y_true[:, OUTER_EYE_CORNERS[0]], y_true[:, OUTER_EYE_CORNERS[1]]
    distance = tf.norm(first - second, axis=-1)
    error = tf.reduce_mean(tf.norm(y_pred - y_true, axis=-1), axis=-1)
    return 100.0 * tf.math.divide_no_nan(error, distance)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class NormalizedMeanError(keras.metrics.Mean):
    """Streaming NME in percent: the mean of :func:`nme_per_image` over the images seen,
    weighted by ``sample_weight`` (the landmark mask ``[B]``).

    Hu et al. 2018, §4.1 and Table 6: the inter-pupil normalised error of 300-W; the
    validation metric of a landmark task (``normalization="inter_ocular"`` for the 300-W
    challenge's variant).

    Example:
        >>> metric = NormalizedMeanError()
        >>> metric.update_state(batch["landmarks"], outputs["landmarks"],
        ...                     sample_weight=batch["landmarks_mask"])
    """

    def __init__(self, normalization="inter_pupil", name=None, dtype=None):
        super().__init__(name=name or f"nme_{_check_normalization(normalization)}",
                         dtype=dtype)
        self.normalization = normalization

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = nme_per_image(y_true, y_pred, self.normalization)
        if sample_weight is not None:
            sample_weight = tf.reshape(tf.cast(sample_weight, values.dtype), [-1])
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "normalization": self.normalization}
