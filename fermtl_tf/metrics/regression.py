"""Valence/arousal metrics and per-video smoothing of predictions.

The concordance correlation coefficient (CCC) is the criterion of the Aff-Wild,
Aff-Wild2, AffectNet and AFEW-VA columns of Kollias et al. (Sec. 4.2 i, Tables 3, 5, 6).
It is computed once over the *whole* evaluation set. ``keras.metrics.ConcordanceCorrelation``
is a ``MeanMetricWrapper``: it averages CCCs computed per batch (per row along ``axis``),
which is a different number (CCC is not additive over batches; see
``tests/test_metrics.py``), so it is never used for reported results.
"""

import numpy as np


def _finite_vector(name, values):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def ccc(y_true, y_pred):
    """Concordance correlation coefficient over the whole set, population moments.

    CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2), with variances and
    covariance divided by N: rho_i of Kollias et al. Sec. 3.1 (below Eq. 2), where the
    extracted text prints the variances as E^2[(y - E y)^2]; we read them as plain
    variances, the standard definition (Lin 1989) used by the Aff-Wild challenges.
    """
    x, y = _finite_vector("y_true", y_true), _finite_vector("y_pred", y_pred)
    if x.shape != y.shape:
        raise ValueError(f"y_true has shape {x.shape} but y_pred has shape {y.shape}")
    if x.size == 0:
        raise ValueError("no samples to evaluate (y_true is empty)")
    mean_x, mean_y = x.mean(), y.mean()
    covariance = np.mean((x - mean_x) * (y - mean_y))
    denominator = x.var() + y.var() + (mean_x - mean_y) ** 2
    if denominator == 0:
        raise ValueError("CCC is undefined: y_true and y_pred are the same constant")
    return float(2 * covariance / denominator)


def median_filter_by_sequence(values, sequence_ids, frame_index, window):
    """Centred running median of ``values`` within each sequence, in frame order.

    Per-video smoothing of frame-level predictions: the "median filtering of the per
    frame predictions" of Kollias et al. Sec. 4.3 (Aff-Wild, Table 5; the paper gives
    no window length). ``values``
    is ``[N]`` or ``[N, ...]`` (filtered along axis 0); ``sequence_ids`` groups the rows
    into videos and ``frame_index`` orders them. ``window`` is an odd number of frames;
    near a sequence's ends the window is truncated to the frames that exist. The result
    is returned in the input row order.
    """
    if not isinstance(window, int | np.integer) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window!r}")
    values = np.asarray(values, dtype=np.float64)
    sequence_ids = np.asarray(sequence_ids)
    frame_index = np.asarray(frame_index)
    if not (len(values) == len(sequence_ids) == len(frame_index)):
        raise ValueError(
            f"values ({len(values)}), sequence_ids ({len(sequence_ids)}) and frame_index "
            f"({len(frame_index)}) must have the same length"
        )
    half = window // 2
    smoothed = np.empty_like(values)
    for sequence in np.unique(sequence_ids):
        rows = np.flatnonzero(sequence_ids == sequence)
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        for position, row in enumerate(rows):
            neighbours = rows[max(0, position - half) : position + half + 1]
            smoothed[row] = np.median(values[neighbours], axis=0)
    return smoothed
