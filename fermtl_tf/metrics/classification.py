"""Classification metrics as the papers' tables report them (numpy in, Python numbers out).

Every metric takes ``(y_true, y_pred)`` in that order, as scikit-learn and Keras do.
Expression metrics take integer labels; the action-unit metrics take 0/1 labels, predicted
probabilities (or 0/1 predictions) and an optional ``mask`` saying which AU labels exist.

Conventions chosen where the papers are silent, each matching scikit-learn so that it can
be checked against it:

* :func:`mean_diagonal` and :func:`uar` average the recall of the classes that occur in
  ``y_true``; a class with no true sample has no defined recall and is left out of the
  mean (not counted as 0).
* :func:`macro_f1` averages over the *full* class list ``range(num_classes)`` with
  scikit-learn's ``zero_division=0``: a class that is neither present nor predicted
  scores F1 = 0 and still counts in the mean.
* Per-AU binary F1 is 0 when an AU has annotated entries but no positive in truth or
  prediction (``zero_division=0``); an AU with no annotated entry at all is left out of
  the AU mean and reported as NaN per AU.
"""

import numpy as np


def _labels(name, values):
    """``values`` as a 1-D int64 array; NaN, fractions and negatives are errors."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {array.shape}")
    if array.dtype.kind == "f":
        if np.isnan(array).any():
            raise ValueError(f"{name} contains NaN")
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer class indices, got fractions")
    elif array.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if (array < 0).any():
        raise ValueError(f"{name} contains negative class indices")
    return array


def _label_pair(y_true, y_pred, num_classes=None):
    y_true, y_pred = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("no samples to evaluate (y_true is empty)")
    if num_classes is not None:
        largest = max(int(y_true.max()), int(y_pred.max()))
        if largest >= num_classes:
            raise ValueError(f"class index {largest} out of range for num_classes={num_classes}")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts ``[num_classes, num_classes]``: row = true class, column = predicted class."""
    y_true, y_pred = _label_pair(y_true, y_pred, num_classes)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted class equals the true class."""
    y_true, y_pred = _label_pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def _recall_of_present_classes(y_true, y_pred):
    y_true, y_pred = _label_pair(y_true, y_pred)
    classes = np.unique(y_true)
    return np.array([np.mean(y_pred[y_true == c] == c) for c in classes])


def per_class_accuracy(y_true, y_pred, num_classes):
    """Accuracy of each true class (its recall), ``[num_classes]`` floats.

    The diagonal of the row-normalised confusion matrix: Li et al. 2023 Table 2's 14
    per-emotion columns. A class with no true sample has no accuracy: NaN.
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    totals = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), totals, out=np.full(num_classes, np.nan),
                     where=totals > 0)


def mean_diagonal(y_true, y_pred):
    """Mean of the diagonal of the row-normalised confusion matrix.

    The "mean diagonal of the confusion matrix" of RAF-DB (Kollias et al., Table 5) and
    RAF-CE (Li et al. 2023, Table 2 "Diag."). Rows of classes absent from ``y_true``
    cannot be normalised and are excluded from the mean.
    """
    return float(np.mean(_recall_of_present_classes(y_true, y_pred)))


def uar(y_true, y_pred):
    """Unweighted average recall: the mean per-class recall (Kollias et al., Table 7).

    Numerically the same quantity as :func:`mean_diagonal` (each diagonal entry of the
    row-normalised confusion matrix is that class's recall); both names exist because
    the papers use both. Classes absent from ``y_true`` are excluded.
    """
    return float(np.mean(_recall_of_present_classes(y_true, y_pred)))


def _f1_from_counts(tp, fp, fn):
    """F1 = 2TP / (2TP + FP + FN), 0 where the denominator is 0 (``zero_division=0``)."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def macro_f1(y_true, y_pred, num_classes):
    """Unweighted mean of per-class F1 over all ``num_classes`` classes.

    Equals ``sklearn.metrics.f1_score(average="macro", labels=range(num_classes),
    zero_division=0)``: classes never seen nor predicted contribute F1 = 0, so a model
    is not rewarded for a test split that happens to miss a class.
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix)
    f1 = _f1_from_counts(tp, matrix.sum(axis=0) - tp, matrix.sum(axis=1) - tp)
    return float(np.mean(f1))


def _au_arrays(true, pred, mask, threshold):
    """Binarised predictions, binary truth and a boolean mask, all ``[N, K]``."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"AU predictions must be [N, K], got shape {pred.shape}")
    if pred.shape != true.shape:
        raise ValueError(f"AU predictions have shape {pred.shape} but labels {true.shape}")
    mask = np.ones_like(true, dtype=bool) if mask is None else np.asarray(mask) > 0
    if mask.shape != true.shape:
        raise ValueError(f"AU mask has shape {mask.shape} but labels {true.shape}")
    if np.isnan(pred[mask]).any() or np.isnan(true[mask]).any():
        raise ValueError("AU predictions or labels contain NaN at annotated entries")
    if not np.isin(true[mask], (0.0, 1.0)).all():
        raise ValueError("AU labels (y_true) must be 0/1 occurrences at annotated entries")
    return pred >= threshold, true > 0.5, mask


def _mean_over_annotated(per_au):
    annotated = per_au[~np.isnan(per_au)]
    if annotated.size == 0:
        raise ValueError("no AU has an annotated entry (mask is all zero)")
    return float(np.mean(annotated))


def _per_au_f1(y_true, y_pred, mask, threshold):
    positive, actual, mask = _au_arrays(y_true, y_pred, mask, threshold)
    tp = np.sum(positive & actual & mask, axis=0)
    fp = np.sum(positive & ~actual & mask, axis=0)
    fn = np.sum(~positive & actual & mask, axis=0)
    f1 = _f1_from_counts(tp, fp, fn)
    return np.where(mask.any(axis=0), f1, np.nan)


def _per_au_accuracy(y_true, y_pred, mask, threshold):
    positive, actual, mask = _au_arrays(y_true, y_pred, mask, threshold)
    correct = np.sum((positive == actual) & mask, axis=0).astype(np.float64)
    count = mask.sum(axis=0)
    return np.divide(correct, count, out=np.full(count.shape, np.nan), where=count > 0)


def au_f1(y_true, y_pred, mask=None, threshold=0.5, per_au=False):
    """Binary F1 per AU (prediction ``>= threshold``) over annotated entries, averaged.

    The F1 score of DISFA, BP4D, BP4D+ and GFT in Kollias et al. (Sec. 4.2 iii,
    Tables 3, 5, 6). ``y_true`` holds 0/1 labels ``[N, K]``, ``y_pred`` probabilities or
    0/1 predictions ``[N, K]``; entries with ``mask == 0`` are ignored. With
    ``per_au=True`` the list of per-AU scores is returned instead (NaN for an AU without
    any annotated entry).
    """
    scores = _per_au_f1(y_true, y_pred, mask, threshold)
    return [float(s) for s in scores] if per_au else _mean_over_annotated(scores)


def au_accuracy(y_true, y_pred, mask=None, threshold=0.5, per_au=False):
    """Per-AU accuracy over annotated entries, averaged over AUs (same conventions as au_f1)."""
    scores = _per_au_accuracy(y_true, y_pred, mask, threshold)
    return [float(s) for s in scores] if per_au else _mean_over_annotated(scores)


def afa(y_true, y_pred, mask=None, threshold=0.5):
    """EmotioNet challenge AU score: (mean per-AU F1 + mean per-AU accuracy) / 2.

    Kollias et al., Sec. 4.2 iii and the 'AFA Score' column of Tables 3 and 5.
    """
    return (au_f1(y_true, y_pred, mask, threshold)
            + au_accuracy(y_true, y_pred, mask, threshold)) / 2
