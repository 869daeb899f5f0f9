"""Alignment loss between expression and AU predictions (Li et al. 2023, MML, §4.1).

The relatedness table ``R [K, J]`` holds ``p(y_j^AU | y_k^emo)`` as frequencies (Table 1,
before any sigmoid); ``p_emo [B, K]`` are softmax and ``p_au [B, J]`` sigmoid
probabilities. Every function returns one value per sample, ``[B]`` (Eq. 12 sums the
per-sample terms with per-sample meta weights).

* Eq. 4: ``t_j = sum_k p_k R_kj`` (Kollias et al.'s AU distribution, no sigmoid);
* Eq. 5: ``q_j = sum_k p_k Sigmoid(R_kj)`` -- the sigmoid acts on *every* entry, so an AU
  unrelated to emotion k contributes Sigmoid(0) = 0.5 ("in the reasonable gap");
* §5.3 (lab statistics, Table 3): ``q_j = Sigmoid(sum_k p_k R_kj)`` -- ``sigmoid="outside"``;
* Eq. 6: ``L_DM1 = -sum_j p_j^AU log q_j^AU``;
* Eq. 7: ``q_k^emo = sum_j p_j^AU R_kj / sum_j R_kj``;
* Eq. 8: ``L_DM2 = -sum_k p_k^emo log q_k^emo``;
* Eq. 9: ``L_AM = L_DM1 + L_DM2``.

Two readings of Eq. 6 (``dm1_form``). As printed (``"printed"``), the minimum over the
AU predictions is ``p^AU = 0`` for every AU whatever ``q`` says (each term ``-p log q`` is
non-negative and linear in ``p``), so the loss pulls all AUs off. Read as the
cross-entropy of two *Bernoulli* distributions per AU (``"bernoulli"``), the missing
``(1 - p) log(1 - q)`` completes it: ``-sum_j [p_j log q_j + (1 - p_j) log(1 - q_j)]``. Its
minimum over ``q`` is ``q = p`` (the two distributions match, as §4.1 says), and its
gradient on ``p_j`` is ``-logit(q_j)``: zero for an AU unrelated to the predicted
emotion (q = 0.5) and ``-R_kj`` when ``p^emo`` is one-hot on k -- the Eq. 5 sigmoid
then makes the table's frequency the push on the AU. See docs/FIDELITY.md.

L_DM2 (Eq. 8) is kept as printed: ``p^emo`` lies on the simplex, so its minimum over the
expression prediction is the emotion whose AUs are most present -- it does follow its
target.

Logs are of ``max(q, epsilon)`` so that a zero row of the table cannot give ``-inf``.
"""

import keras
import numpy as np
import tensorflow as tf

#: Where the sigmoid of Eq. 5 sits: on each table entry (Eq. 5, in-the-wild statistics),
#: on the mixture (§5.3, lab statistics), or nowhere (Eq. 4, Kollias et al.).
SIGMOID_POSITIONS = ("inside", "outside", "none")

#: Readings of Eq. 6 (see the module docstring).
DM1_FORMS = ("printed", "bernoulli")

#: Floor inside every log.
LOG_EPSILON = 1e-7


def _check(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _table(relatedness, like):
    if not tf.is_tensor(relatedness):
        relatedness = np.asarray(relatedness, np.float64)  # no float32 detour
    return tf.cast(relatedness, like.dtype)


def _log(x, epsilon):
    return tf.math.log(tf.maximum(x, epsilon))


def expected_au(p_emo, relatedness):
    """Eq. 4: ``t_j^AU = sum_k p_k^emo p(AU_j | emo_k)``, shape [B, J]."""
    p_emo = tf.convert_to_tensor(p_emo)
    return tf.matmul(p_emo, _table(relatedness, p_emo))


def au_from_emotion(p_emo, relatedness, sigmoid="inside"):
    """``q^AU`` [B, J]: Eq. 5 (``"inside"``), §5.3 lab form (``"outside"``) or Eq. 4."""
    _check("sigmoid", sigmoid, SIGMOID_POSITIONS)
    p_emo = tf.convert_to_tensor(p_emo)
    table = _table(relatedness, p_emo)
    if sigmoid == "inside":
        return tf.matmul(p_emo, tf.sigmoid(table))
    mixture = tf.matmul(p_emo, table)
    return tf.sigmoid(mixture) if sigmoid == "outside" else mixture


def emotion_from_au(p_au, relatedness, epsilon=LOG_EPSILON):
    """Eq. 7: ``q_k^emo = sum_j p_j^AU R_kj / sum_j R_kj``, shape [B, K].

    A class whose row is all zero (no AU of the vocabulary relates to it) gets 0.
    """
    p_au = tf.convert_to_tensor(p_au)
    table = _table(relatedness, p_au)
    return tf.matmul(p_au, table, transpose_b=True) / tf.maximum(
        tf.reduce_sum(table, axis=1), epsilon)


def alignment_dm1(p_emo, p_au, relatedness, sigmoid="inside", form="printed",
                  epsilon=LOG_EPSILON):
    """Eq. 6 (with Eq. 5): ``L_DM1`` per sample [B]; ``form`` "printed" or "bernoulli"."""
    _check("form", form, DM1_FORMS)
    p_au = tf.convert_to_tensor(p_au)
    q_au = au_from_emotion(p_emo, relatedness, sigmoid)
    terms = p_au * _log(q_au, epsilon)
    if form == "bernoulli":
        terms += (1.0 - p_au) * _log(1.0 - q_au, epsilon)
    return -tf.reduce_sum(terms, axis=-1)


def alignment_dm2(p_emo, p_au, relatedness, epsilon=LOG_EPSILON):
    """Eq. 8 (with Eq. 7): ``L_DM2 = -sum_k p_k^emo log q_k^emo`` per sample [B]."""
    p_emo = tf.convert_to_tensor(p_emo)
    q_emo = emotion_from_au(p_au, relatedness, epsilon)
    return -tf.reduce_sum(p_emo * _log(q_emo, epsilon), axis=-1)


def alignment_am(p_emo, p_au, relatedness, sigmoid="inside", dm1_form="printed",
                 epsilon=LOG_EPSILON):
    """Eq. 9: ``L_AM = L_DM1 + L_DM2`` per sample [B]."""
    return (alignment_dm1(p_emo, p_au, relatedness, sigmoid, dm1_form, epsilon)
            + alignment_dm2(p_emo, p_au, relatedness, epsilon))


@keras.saving.register_keras_serializable(package="fermtl_tf")
class AlignmentLoss(keras.losses.Loss):
    """One term of the MML alignment loss as a serialisable, per-sample ([B]) loss.

    ``term``: ``"dm1"`` (Eq. 6), ``"dm2"`` (Eq. 8) or ``"am"`` (Eq. 9, their sum).
    Called as ``loss(p_emo, p_au)`` on probabilities; returns [B] (no reduction: the
    meta-weighted sum of Eq. 12 is the caller's).

    Args:
        relatedness: ``[K, J]`` table p(AU_j | emo_k) (nested lists or an array).
        term: which equation.
        sigmoid: :data:`SIGMOID_POSITIONS` (``"inside"`` Eq. 5, ``"outside"`` lab form).
        dm1_form: :data:`DM1_FORMS`.
        epsilon: floor inside the logs.
    """

    TERMS = ("dm1", "dm2", "am")

    def __init__(self, relatedness, term="am", sigmoid="inside", dm1_form="printed",
                 epsilon=LOG_EPSILON, name="alignment", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.relatedness = np.asarray(relatedness, np.float64).tolist()
        if np.ndim(self.relatedness) != 2:
            raise ValueError(f"relatedness must be a [classes, AUs] table, got shape "
                             f"{np.shape(self.relatedness)}")
        self.term = _check("term", term, self.TERMS)
        self.sigmoid = _check("sigmoid", sigmoid, SIGMOID_POSITIONS)
        self.dm1_form = _check("dm1_form", dm1_form, DM1_FORMS)
        self.epsilon = float(epsilon)

    def __call__(self, p_emo, p_au, sample_weight=None):
        with tf.name_scope(self.name):
            return self.call(p_emo, p_au)

    def call(self, p_emo, p_au):
        p_emo = tf.convert_to_tensor(p_emo)
        p_au = tf.cast(p_au, p_emo.dtype)
        dm1 = (alignment_dm1(p_emo, p_au, self.relatedness, self.sigmoid, self.dm1_form,
                             self.epsilon) if self.term != "dm2" else 0.0)
        dm2 = (alignment_dm2(p_emo, p_au, self.relatedness, self.epsilon)
               if self.term != "dm1" else 0.0)
        return dm1 + dm2

    def get_config(self):
        return {"name": self.name, "relatedness": self.relatedness, "term": self.term,
                "sigmoid": self.sigmoid, "dm1_form": self.dm1_form, "epsilon": self.epsilon}
