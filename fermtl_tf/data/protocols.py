"""Evaluation protocols: identity-independent folds and frame selection in sequences.

Subject-independent k-fold cross-validation (CK+, Oulu-CASIA in Hu et al. 2018 and
Liu et al. 2017) requires that no identity appears in two folds; sequence datasets
keep only some frames (the last/peak frames of CK+, one frame in five for LSEMSW).
The train / validation / test folds of one round of cross-validation come from
:func:`fold_roles`. Everything here is deterministic: no random numbers, ties broken by
sorted order.
"""

from collections import Counter

import numpy as np

FRAME_SELECTIONS = ("all", "last", "middle", "every")


def identity_folds(identities, num_folds):
    """Assign every identity to one of ``num_folds`` folds; return ``{identity: fold}``.

    Balanced by identity count first, image count second: identities are taken in
    order of decreasing image count (ties by identity), and each goes to the fold
    with the fewest identities, among those the one with the fewest images, lowest
    index on a tie. So fold sizes in identities differ by at most one, and the large
    identities are spread before the small ones fill the gaps.
    Unknown identities (``-1`` or ``None``) are not assigned.
    """
    if int(num_folds) < 1:
        raise ValueError(f"num_folds must be >= 1, got {num_folds}")
    counts = Counter(i for i in identities if i is not None and i != -1)
    order = sorted(counts, key=lambda ident: (-counts[ident], ident))
    num_identities = [0] * num_folds
    num_images = [0] * num_folds
    assignment = {}
    for ident in order:
        fold = min(range(num_folds), key=lambda f: (num_identities[f], num_images[f], f))
        assignment[ident] = fold
        num_identities[fold] += 1
        num_images[fold] += counts[ident]
    return assignment


def fold_roles(num_folds, test_fold, val_folds=1):
    """``(train folds, validation folds, test folds)`` of one round of k-fold cross-validation.

    The test fold is ``test_fold``; the validation folds are the ``val_folds`` folds that
    follow it, cyclically (``(test_fold + 1) % num_folds``, ...); the others train, in
    ascending order. Over the ``num_folds`` rounds every fold is tested once and
    validates ``val_folds`` times. Liu et al. (2017) Sec. 4.1 on CK+: 8 folds, "data from
    6 subsets is used for training and the others are used for validation and testing"
    -> ``fold_roles(8, k)``; which subset validates is not said, the next one is our
    choice (docs/FIDELITY.md). ``val_folds=0`` is plain k-fold (Zhao Sec. IV-B, Hu
    Sec. 4.1): train on all other folds, no validation fold.
    """
    num_folds, test_fold, val_folds = int(num_folds), int(test_fold), int(val_folds)
    if num_folds < 2:
        raise ValueError(f"k-fold cross-validation needs num_folds >= 2, got {num_folds}")
    if not 0 <= test_fold < num_folds:
        raise ValueError(f"test_fold must be in 0..{num_folds - 1}, got {test_fold}")
    if not 0 <= val_folds <= num_folds - 2:
        raise ValueError(f"val_folds must be in 0..{num_folds - 2} (one fold must remain "
                         f"for training), got {val_folds}")
    val = tuple((test_fold + step) % num_folds for step in range(1, val_folds + 1))
    train = tuple(f for f in range(num_folds) if f != test_fold and f not in val)
    return train, val, (test_fold,)


def select_frames(sequence_ids, frame_indices, mode="all", n=1):
    """Boolean mask of the frames kept by a frame-selection protocol.

    ``mode``: ``"all"``; ``"last"`` keeps the last ``n`` frames of each sequence (by
    ``frame_index``); ``"middle"`` keeps ``n`` consecutive frames centred in the
    sequence (start ``(length - n) // 2``); ``"every"`` keeps one frame in ``n``
    (positions 0, n, 2n, ... in frame order). Rows with an empty sequence id are
    single-frame sequences and always kept.
    """
    if mode not in FRAME_SELECTIONS:
        raise ValueError(f"unknown frame selection {mode!r}; known: {list(FRAME_SELECTIONS)}")
    if int(n) < 1:
        raise ValueError(f"frame selection needs n >= 1, got {n}")
    keep = np.ones(len(sequence_ids), dtype=bool)
    if mode == "all":
        return keep
    sequences = {}
    for row, sequence in enumerate(sequence_ids):
        if sequence:
            sequences.setdefault(sequence, []).append(row)
    for rows in sequences.values():
        ordered = sorted(rows, key=lambda r: (frame_indices[r], r))
        if mode == "last":
            chosen = ordered[-n:]
        elif mode == "middle":
            start = max(0, (len(ordered) - n) // 2)
            chosen = ordered[start : start + n]
        else:
            chosen = ordered[::n]
        keep[rows] = False
        keep[chosen] = True
    return keep
