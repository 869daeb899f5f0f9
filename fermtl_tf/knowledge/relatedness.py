"""Task relatedness for FaceBehaviorNet: p(AU | emotion) tables and their empirical inference.

Kollias et al., "Distribution Matching for Heterogeneous Multi-Task Learning", §3.1.1 and
Table 1, give two sources of relatedness between the basic emotions and the action units:

* ``"cognitive"`` -- the study of Du et al. (2014) (the paper's [15]): per emotion, the
  *prototypical* AUs (marked active by every annotator) and the *observational* AUs with
  the fraction ``w`` of annotators who marked them;
* ``"affwild2"`` -- the empirical column: per emotion, the fraction ``w`` of Aff-Wild2
  images of that emotion in which the AU is active. It has no prototypical AUs; every
  listed AU is weighted by its ``w``.

The numbers live once, in :mod:`fermtl_tf.knowledge.expression_au` (``BASIC_STUDY``,
``BASIC_AFFWILD2``), where SynthFace samples from them; this module reads them back as
relatedness: a prototypical AU there has probability ``PROTOTYPICAL_P`` (a generative
choice of SynthFace), here it has weight 1 as in Eq. 5. Neutral has no AUs in either
source (it is not in Table 1).

What the coupling losses need from the tables (all ``[E, K]`` over an emotion vocabulary
and an AU vocabulary; AUs outside the vocabulary are dropped from every rule):

* Eq. 3 (distribution matching): ``p(AU_i | emo)`` is 1 for prototypical and observational
  AUs, 0 otherwise -- :func:`relatedness_matrix` with ``observational="binary"``; footnote 4
  mentions the variant ``p = w`` for observational AUs -- ``observational="weighted"``;
* Eq. 5 (soft co-annotation) and §3.1.2 (co-annotation): the weights ``w_au`` (1, ``w`` or
  0) -- ``observational="weighted"``; "all weights equal 1 if without reweighting" --
  ``"binary"``;
* Eq. 8 (zero-shot compound score): ``I_au`` uses ``p(AU | compound)`` from Du et al.;
  :func:`relatedness_matrix` accepts any ``{class: {AU: weight}}`` table as ``source``.

:func:`infer_conditional` builds such a table from any dataset with overlapping labels,
the way §3.2.1 builds Table 2 (attributes per CelebA identity) and Table 1's Aff-Wild2
column (AUs per expression).
"""

from collections.abc import Mapping

import numpy as np

from fermtl_tf.knowledge.expression_au import BASIC_AFFWILD2, BASIC_STUDY, PROTOTYPICAL_P
from fermtl_tf.knowledge.vocabularies import BASIC7, au_name

#: The 17 AUs of FaceBehaviorNet. Footnote 2 calls them "an aggregate of action units in
#: all datasets": the union of the AUs annotated in the AU datasets of §4.1 -- EmotioNet
#: (1,2,4,5,6,9,12,17,20,25,26), DISFA (+15), GFT (+10,14,23,24), BP4D/FERA 2015 (+7),
#: BP4D+/FERA 2017 (no new AU) -- which is exactly 17 AUs. Table 1 uses the same AUs
#: except AU14 (in no emotion) and AU11 (observational for sadness, w = 0.26, annotated
#: in none of the datasets, so no head could learn it).
FACEBEHAVIORNET_AUS = tuple(
    au_name(n) for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
)

#: Names of the built-in relatedness sources (Table 1's two columns).
SOURCES = ("cognitive", "affwild2")

#: How observational AUs enter a matrix: weight 1 ("binary") or their ``w`` ("weighted").
OBSERVATIONAL_MODES = ("binary", "weighted")


def _is_prototypical(probability):
    return np.isclose(probability, PROTOTYPICAL_P)


def prototypical_aus(source="cognitive"):
    """``{emotion: frozenset of AU names}`` marked by every annotator (Table 1, left)."""
    if source == "cognitive":
        return {emotion: frozenset(au for au, p in aus.items() if _is_prototypical(p))
                for emotion, aus in BASIC_STUDY.items()}
    if source == "affwild2":
        return {emotion: frozenset() for emotion in BASIC_AFFWILD2}
    raise ValueError(f"unknown relatedness source {source!r}; known: {SOURCES}")


def au_weights(source="cognitive"):
    """``{emotion: {AU name: weight}}``: prototypical AUs 1, the others their ``w``.

    The ``w_au`` of Eq. 5 for every AU an emotion relates to (absent AUs have weight 0).
    """
    if source == "cognitive":
        return {emotion: {au: 1.0 if _is_prototypical(p) else float(p)
                          for au, p in aus.items()}
                for emotion, aus in BASIC_STUDY.items()}
    if source == "affwild2":
        return {emotion: {au: float(w) for au, w in aus.items()}
                for emotion, aus in BASIC_AFFWILD2.items()}
    raise ValueError(f"unknown relatedness source {source!r}; known: {SOURCES}")


def relatedness_matrix(emotions=BASIC7, au_names=FACEBEHAVIORNET_AUS, source="cognitive",
                       observational="binary"):
    """``[E, K]`` float32 matrix ``R[e, k]`` = p(AU_k | emotion_e) (Eq. 3) or ``w_au`` (Eq. 5).

    Args:
        emotions: class names, in the order of the model's emotion output.
        au_names: AU names (``"AU12"``), in the order of the model's AU output. Names the
            table does not mention (``"AU43"``, ``"AU12L"``) get an all-zero column.
        source: ``"cognitive"``, ``"affwild2"`` (Table 1), or a mapping
            ``{class: {AU name: weight}}`` (e.g. a compound-emotion table for Eq. 8).
        observational: ``"binary"`` -- every related AU has 1 (Eq. 3 as printed; Eq. 5
            "without reweighting"); ``"weighted"`` -- prototypical 1, others their ``w``
            (Eq. 5; footnote 4's variant of Eq. 3).
    """
    if observational not in OBSERVATIONAL_MODES:
        raise ValueError(f"observational must be one of {OBSERVATIONAL_MODES}, "
                         f"got {observational!r}")
    table = source if isinstance(source, Mapping) else au_weights(source)
    unknown = [emotion for emotion in emotions if emotion not in table]
    if unknown:
        raise KeyError(f"emotion(s) {unknown} have no relatedness row in source "
                       f"{_describe(source)}; known: {sorted(table)}")
    matrix = np.zeros((len(emotions), len(au_names)), np.float32)
    for row, emotion in enumerate(emotions):
        for column, au in enumerate(au_names):
            weight = float(table[emotion].get(au, 0.0))
            matrix[row, column] = (weight > 0) if observational == "binary" else weight
    return matrix


def _describe(source):
    return repr(source) if isinstance(source, str) else "(custom table)"


def infer_conditional(labels_a, labels_b, mask_a=None, mask_b=None, num_classes_a=None,
                      fill_value=0.0, return_counts=False):
    """Empirical p(b_k | a = j) from samples annotated with both ``a`` and ``b_k``.

    §3.2.1: "for each identity and for each attribute, we divided the number of images in
    which the attribute existed by the total amount of images that the specific identity
    existed" (Table 2); Table 1's Aff-Wild2 column is the same statistic for AUs given an
    expression. Only samples that carry both labels count (co-annotation), per column of
    ``b``, so a dataset whose AU annotation covers a subset of its images still works.

    Args:
        labels_a: ``[N]`` integer class of each sample (identity, expression).
        labels_b: ``[N, K]`` binary labels (attributes, AU occurrences) in [0, 1]; soft
            values are counted fractionally.
        mask_a: ``[N]`` 1 where ``labels_a`` is annotated (default: all).
        mask_b: ``[N]`` or ``[N, K]`` 1 where ``labels_b`` is annotated (default: all).
        num_classes_a: number of rows ``J`` (default ``max(labels_a) + 1``).
        fill_value: value of ``p(b_k | j)`` when no sample of class ``j`` has ``b_k``
            annotated (0 as Eq. 10 assumes for pairs the table does not list).
        return_counts: also return the ``[J, K]`` number of co-annotated samples.

    Returns:
        ``[J, K]`` float64 probabilities (and the counts if ``return_counts``).
    """
    labels_a = np.asarray(labels_a)
    labels_b = np.asarray(labels_b, dtype=np.float64)
    if labels_a.ndim != 1:
        raise ValueError(f"labels_a must be [N] class indices, got shape {labels_a.shape}")
    if labels_b.ndim != 2 or len(labels_b) != len(labels_a):
        raise ValueError(f"labels_b must be [N, K] with N = {len(labels_a)}, "
                         f"got shape {labels_b.shape}")
    mask_a = np.ones(len(labels_a)) if mask_a is None else np.asarray(mask_a, np.float64)
    mask_b = np.ones_like(labels_b) if mask_b is None else np.asarray(mask_b, np.float64)
    if mask_b.ndim == 1:
        mask_b = np.broadcast_to(mask_b[:, None], labels_b.shape)
    if mask_a.shape != labels_a.shape or mask_b.shape != labels_b.shape:
        raise ValueError(f"mask shapes {mask_a.shape}, {mask_b.shape} do not match labels "
                         f"{labels_a.shape}, {labels_b.shape}")
    annotated = mask_a > 0
    if not np.issubdtype(labels_a.dtype, np.integer):
        raise ValueError(f"labels_a must hold integer classes, got dtype {labels_a.dtype}")
    if annotated.any() and labels_a[annotated].min() < 0:
        bad = int(np.flatnonzero(annotated & (labels_a < 0))[0])
        raise ValueError(f"labels_a[{bad}] = {labels_a[bad]} is negative but annotated")
    valid_b = labels_b[mask_b > 0]
    if valid_b.size and (valid_b.min() < 0 or valid_b.max() > 1):
        raise ValueError("labels_b must lie in [0, 1] where annotated (threshold AU "
                         "intensities into occurrences first)")
    classes = num_classes_a
    if classes is None:
        classes = int(labels_a[annotated].max()) + 1 if annotated.any() else 0
    one_hot = np.zeros((len(labels_a), classes))
    rows = np.flatnonzero(annotated)
    if rows.size and labels_a[rows].max() >= classes:
        raise ValueError(f"labels_a has class {labels_a[rows].max()} >= num_classes_a "
                         f"= {classes}")
    one_hot[rows, labels_a[rows]] = 1.0
    both = (mask_b > 0).astype(np.float64)
    counts = one_hot.T @ both
    positives = one_hot.T @ (both * labels_b)
    probabilities = np.where(counts > 0, positives / np.maximum(counts, 1), fill_value)
    return (probabilities, counts) if return_counts else probabilities
