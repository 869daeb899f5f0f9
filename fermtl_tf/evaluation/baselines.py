"""Trivial reference predictors, so a reported figure can be read against a floor.

A landmark NME means little without the error of always predicting the mean shape, and
an accuracy little without chance; the demo and the results docs print both beside the
model's numbers.
"""

import numpy as np

from fermtl_tf import metrics
from fermtl_tf.data.pipeline import load_manifest, make_dataset


def _labelled(data_dir, split, key, image_size):
    """Stack ``key`` over the samples of ``split`` whose ``<key>_mask`` is 1."""
    dataset = make_dataset(data_dir, split=split, batch_size=256, image_size=image_size,
                           training=False, normalization="none")
    values = []
    for batch in dataset:
        mask = batch[f"{key}_mask"].numpy() > 0
        values.append(batch[key].numpy()[mask])
    return np.concatenate(values) if values else np.zeros((0,))


def mean_shape_nme(data_dir, train_split="train", test_split="test", image_size=(96, 96),
                   normalization="inter_ocular"):
    """NME (%) of predicting the mean training shape for every test face.

    The mean is taken over the (0, 1) crop coordinates of the training split; NME is
    scale-invariant, so the coordinates are compared as they are.
    """
    train = _labelled(data_dir, train_split, "landmarks", image_size)
    test = _labelled(data_dir, test_split, "landmarks", image_size)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"{data_dir}: no labelled landmarks in split "
                         f"{train_split if len(train) == 0 else test_split!r}")
    prediction = np.broadcast_to(train.mean(axis=0), test.shape)
    return metrics.nme(test, prediction, normalization=normalization)


def chance_accuracy(data_dir, train_split="train", test_split="test", image_size=(96, 96)):
    """Accuracy of always predicting the most frequent training class, and 1 / classes.

    Returns ``{"majority": ..., "uniform": ...}``; ``uniform`` counts every class of the
    dataset's vocabulary, present in the test split or not.
    """
    train = _labelled(data_dir, train_split, "expression", image_size).astype(int)
    test = _labelled(data_dir, test_split, "expression", image_size).astype(int)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"{data_dir}: no labelled expressions in split "
                         f"{train_split if len(train) == 0 else test_split!r}")
    majority = np.bincount(train).argmax()
    num_classes = len(load_manifest(data_dir)["vocabularies"]["expression"])
    return {"majority": float(np.mean(test == majority)), "uniform": 1.0 / num_classes}
