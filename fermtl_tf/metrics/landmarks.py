"""Normalised mean error (NME) of 68-point landmarks, in percent.

Hu et al. (2018) Sec. 4.1 "Facial Landmarks" and Table 6 evaluate 300-W with "the
distance between estimated landmarks and the ground truths, normalised by the
inter-pupil distance"; the inter-ocular (outer eye corner) variant is the 300-W
challenge's. Per image: mean point-to-point Euclidean error / normaliser of the *true*
shape; the reported number is the mean over images, times 100.

NME is invariant to a uniform scaling of both shapes, so (0, 1) coordinates and pixel
coordinates give the same value as long as x and y are scaled by the same factor.
"""

import numpy as np

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


def normalizing_distance(true, normalization="inter_pupil"):
    """Per-image normaliser ``[N]`` of true shapes ``[N, 68, 2]``.

    ``inter_pupil``: distance between the eye centres, the means of points 36-41 and
    42-47 (0-based). ``inter_ocular``: distance between outer eye corners 36 and 45.
    """
    true = _shapes("true", true)
    if normalization == "inter_pupil":
        first = true[:, list(RIGHT_EYE)].mean(axis=1)
        second = true[:, list(LEFT_EYE)].mean(axis=1)
    elif normalization == "inter_ocular":
        first, second = true[:, OUTER_EYE_CORNERS[0]], true[:, OUTER_EYE_CORNERS[1]]
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return np.linalg.norm(first - second, axis=-1)


def nme(pred, true, normalization="inter_pupil", per_image=False):
    """Normalised mean error in percent; ``per_image=True`` returns the per-image list."""
    pred, true = _shapes("pred", pred), _shapes("true", true)
    if pred.shape != true.shape:
        raise ValueError(f"pred has shape {pred.shape} but true has shape {true.shape}")
    distance = normalizing_distance(true, normalization)
    degenerate = np.flatnonzero(distance <= 0)
    if degenerate.size:
        raise ValueError(f"{normalization} distance is 0 for image(s) {degenerate.tolist()}")
    errors = np.linalg.norm(pred - true, axis=-1).mean(axis=1) / distance * 100.0
    return [float(e) for e in errors] if per_image else float(errors.mean())
