"""Sequence-level expression prediction: one vote per sequence from its frames' scores.

Liu et al. (2017) Sec. 4.1 score CK+ and MMI per sequence, from the frames each
sequence contributes (CK+: the last three, MMI: the three middle ones):

* ``"max"`` (CK+): "the final sequence-level predictions are made by selecting the
  class with the highest possibility of the three images", i.e. the class of the
  largest probability over frames and classes, ``argmax_c max_f p[f, c]``;
* ``"mean"`` (MMI): "choosing the class with the highest average score of the three
  images", ``argmax_c mean_f p[f, c]``.

The median filter of Kollias et al. (per-frame smoothing, ``--median-window``) is a
different operation and stays in :mod:`fermtl_tf.evaluation.runner`.
"""

import numpy as np

SEQUENCE_VOTES = ("max", "mean")


def vote_by_sequence(probs, y_true, sequence_ids, mode):
    """Per-sequence class scores and labels from per-frame probabilities.

    Args:
        probs: [N, C] class probabilities of the labelled frames.
        y_true: [N] class indices; every frame of a sequence must carry the same one.
        sequence_ids: [N] sequence names; an empty name makes the frame its own
            sequence (a still image).
        mode: ``"max"`` or ``"mean"`` (:data:`SEQUENCE_VOTES`).

    Returns ``(scores [S, C], labels [S], sequence names [S])``, sequences in order of
    their first frame. ValueError names a sequence whose frames disagree on the label.
    """
    if mode not in SEQUENCE_VOTES:
        raise ValueError(f"unknown sequence vote {mode!r}; known: {list(SEQUENCE_VOTES)}")
    probs, y_true = np.asarray(probs, np.float64), np.asarray(y_true)
    keys = [name if name else f"#frame{row}" for row, name in enumerate(sequence_ids)]
    names, first, group = np.unique(np.array(keys, dtype=object), return_index=True,
                                    return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[group]
    labels = y_true[first[order]]
    disagree = np.flatnonzero(y_true != labels[group])
    if disagree.size:
        name = names[order][group[disagree[0]]]
        raise ValueError(f"sequence {name!r} has frames with different expression labels")
    if mode == "max":
        scores = np.full((len(order), probs.shape[1]), -np.inf)
        np.maximum.at(scores, group, probs)
    else:
        scores = np.zeros((len(order), probs.shape[1]))
        np.add.at(scores, group, probs)
        scores /= np.bincount(group, minlength=len(order))[:, None]
    return scores, labels, [str(name) for name in names[order]]
