"""Zero-shot compound expressions from FaceBehaviorNet's predictions (Kollias et al.,
§3.1.4, Eq. 8).

For each compound class ``c`` = (emo1, emo2) the candidate score is

    C_s(c) = I_au + F_emo + D_va
    I_au  = sum_k p(AU_k | x) p(AU_k | c) / sum_k p(AU_k | c)        (AUs of the model)
    F_emo = p(emo1 | x) + p(emo2 | x)
    D_va  = 1 if valence(x) > 0 else 0, only for happily surprised / happily disgusted

and the prediction is the class with the largest score.

p(AU | compound) comes from Du et al. (2014) in the paper; that table is not among our
sources, so :func:`compound_au_table` uses the in-the-wild compound AU statistics of MML
(``expression_au.COMPOUND_WILD``, RAF-CE) where the class is listed, else the union of
the two components' prototypical AUs (``expression_au.compound_fallback``). A *basic*
class of a mixed vocabulary (EmotioNet's 6 basic + 10 compound) is the compound of an
emotion with itself: its AUs are Table 1's (prototypical 1, observational ``w``) and
``F_emo = 2 p(emo | x)`` (Eq. 8 with emo1 = emo2). Both are recorded in docs/FIDELITY.md.
"""

import numpy as np

from fermtl_tf.knowledge.expression_au import (
    COMPOUND_COMPONENTS,
    COMPOUND_WILD,
    compound_fallback,
)
from fermtl_tf.knowledge.relatedness import FACEBEHAVIORNET_AUS, au_weights, relatedness_matrix
from fermtl_tf.knowledge.vocabularies import BASIC7, RAFDB_COMPOUND11

#: Compound classes whose valence is positive (Eq. 8's D_va applies to them only).
POSITIVE_COMPOUNDS = ("happily_surprised", "happily_disgusted")
#: EmotioNet's basic + compound set (EmotioNet Challenge 2017, track 2): the 6 basic
#: emotions and 10 compounds. The challenge's exact compound list is not in our papers;
#: we take RAF-DB's 11 compounds without disgustedly surprised (see docs/FIDELITY.md).
EMOTIONET16 = ("anger", "disgust", "fear", "happiness", "sadness", "surprise",
               *RAFDB_COMPOUND11[:10])
#: Named compound vocabularies for the zero-shot experiments of Table 7.
ZERO_SHOT_VOCABULARIES = {"rafdb_compound11": RAFDB_COMPOUND11, "emotionet16": EMOTIONET16}


def components(name):
    """(emo1, emo2) of a compound class; (e, e) for a basic emotion."""
    if name in BASIC7:
        return name, name
    if name in COMPOUND_COMPONENTS:
        return COMPOUND_COMPONENTS[name]
    parts = name.split("_")
    raise KeyError(f"unknown compound class {name!r} (got parts {parts}); known: "
                   f"{sorted(COMPOUND_COMPONENTS)} and the basic emotions {list(BASIC7)}")


def compound_au_table(classes):
    """``{class: {AU: p(AU | class)}}`` for Eq. 8's I_au, and ``{class: table origin}``."""
    basic = au_weights("cognitive")
    table, origin = {}, {}
    for name in classes:
        if name in BASIC7:
            table[name], origin[name] = basic[name], "table1_cognitive"
        elif name in COMPOUND_WILD:
            table[name], origin[name] = COMPOUND_WILD[name], "mml_compound_wild"
        else:
            table[name] = compound_fallback(*components(name))
            origin[name] = "prototypical_union"
    return table, origin


def candidate_scores(expression_probs, au_probs, valence, classes=RAFDB_COMPOUND11,
                     emotions=BASIC7, au_names=FACEBEHAVIORNET_AUS, au_table=None):
    """Eq. 8 scores ``[N, C]`` from the model's predictions (numpy or TF tensors).

    Args:
        expression_probs: ``[N, E]`` softmax over ``emotions``.
        au_probs: ``[N, K]`` sigmoid over ``au_names``.
        valence: ``[N]`` predicted valence (D_va is 1 where it is > 0).
        classes: the compound (or mixed) vocabulary, e.g. :data:`RAFDB_COMPOUND11`.
        au_table: ``{class: {AU: p}}``; default :func:`compound_au_table`.
    """
    expression_probs = np.asarray(expression_probs, np.float64)
    au_probs = np.asarray(au_probs, np.float64)
    valence = np.asarray(valence, np.float64).reshape(-1)
    emotions, classes = list(emotions), list(classes)
    if au_table is None:
        au_table, _ = compound_au_table(classes)
    weights = relatedness_matrix(classes, au_names, au_table, "weighted").astype(np.float64)
    totals = weights.sum(axis=1)
    indicator = np.divide(au_probs @ weights.T, totals, out=np.zeros((len(au_probs),
                                                                      len(classes))),
                          where=totals > 0)
    missing = sorted({e for c in classes for e in components(c)} - set(emotions))
    if missing:
        raise KeyError(f"emotion(s) {missing} of the compound classes are not in the "
                       f"expression vocabulary {emotions}")
    first = [emotions.index(components(c)[0]) for c in classes]
    second = [emotions.index(components(c)[1]) for c in classes]
    emotion_term = expression_probs[:, first] + expression_probs[:, second]
    positive = np.array([c in POSITIVE_COMPOUNDS for c in classes], np.float64)
    valence_term = (valence[:, None] > 0) * positive[None, :]
    return indicator + emotion_term + valence_term


def zero_shot_predict(expression_probs, au_probs, valence, **kwargs):
    """Index of the class with the largest Eq. 8 score, ``[N]``."""
    return np.argmax(candidate_scores(expression_probs, au_probs, valence, **kwargs), axis=-1)
