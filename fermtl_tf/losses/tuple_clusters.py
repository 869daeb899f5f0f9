"""(N+1)-tuplet and (N+M)-tuple clusters losses with online positive mining (Liu et al. 2017).

Liu, Kumar, You, Jia, "Adaptive Deep Metric Learning for Identity-Aware Facial
Expression Recognition" (CVPRW 2017), §2-3:

* :func:`tuplet_loss` -- Eq. 1, the (N+1)-tuplet loss of Sohn (2016) with a margin:
  ``log(1 + sum_j exp(D(f, f+) + tau - D(f, f_j-)))`` (the 1B/2B(N+1) baselines);
* :func:`online_positive_mining` -- Algorithm 1: drop the positives farther from the
  positive centre c+ than the nearest negative, recompute c+ over the M* kept;
* :func:`tuple_clusters_loss` -- Eq. 3 with a fixed reference distance T and margin tau:
  kept positives inside the ball of radius T - tau/2 around c+, negatives outside T + tau/2;
* :class:`AdaptiveTupleClusters` -- Eq. 5-10: T becomes a learned quadratic form and
  ``H(f, c+) = 1/2 f'Af + 1/2 c+'Ac+ + f'Bc+ + c'(f + c+) + b`` enters a hinge averaged
  over the N + M* mined examples (Eq. 10).

``D`` is the squared Euclidean distance throughout (Eq. 4 with M = I).

Batched form: every function takes any number of leading *tuple* axes -- positives
``[..., M, d]``, negatives ``[..., N, d]`` -- so one call handles the X queries of an
iteration (§3: "2(N+M) * X" distance computations). The per-tuple functions return
``[...]``; the scalar forms average over the tuples.

Signs of the adaptive form (see docs/FIDELITY.md, "Liu et al. 2017"): with
``H = T - D`` (the definition under Eq. 5) and a constant T one gets ``A = -2M`` and
``B = +2M``, the opposite of §3's "A is PSD and B is NSD"; Eq. 10's labels (l = -1 for
positives) go with ``H = T - D``, while A PSD / B NSD makes H grow with the distance to
c+, i.e. ``H ~ D - T``. We keep A = L_A'L_A (PSD) and B = -L_B'L_B (NSD) as §3 asks and
default the positive label to +1 so that the hinge pulls positives in and pushes
negatives out; ``sign_b=+1`` (Eq. 8 as printed) and ``positive_label=-1`` (Eq. 10 as
printed) are options. The pair (sign_a, sign_b, positive_label) = (-1, +1, -1) is the
same family of functions as the default with every parameter negated.
"""

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.losses.masked import masked_mean


def squared_distances(points, centre):
    """``||points_k - centre||^2`` over the last axis: ``[..., K, d]``, ``[..., d]`` -> ``[..., K]``."""
    return tf.reduce_sum(tf.square(points - centre[..., None, :]), axis=-1)


def online_positive_mining(positives, negatives):
    """Algorithm 1 (Liu et al. 2017, §3): the positives to keep and the updated centre c+.

    1. c+ = mean of the M positives; 2. D(f_i+, c+) and D(f_j-, c+);
    3. keep the positives with ``D(f_i+, c+) <= min_j D(f_j-, c+)``;
    4. c+ = mean of the M* kept.
    When every positive lies beyond the nearest negative, the one nearest to the first
    centre is kept (M* >= 1), so c+ is always defined. The selection carries no
    gradient; the updated centre does (it is a mean of embeddings).

    Args:
        positives: ``[..., M, d]`` embeddings of the positive set.
        negatives: ``[..., N, d]`` embeddings of the negative set.

    Returns:
        ``(keep, centre)``: boolean ``[..., M]`` and the updated c+ ``[..., d]``.
    """
    positives = tf.cast(positives, tf.float32)
    negatives = tf.cast(negatives, tf.float32)
    first_centre = tf.reduce_mean(positives, axis=-2)
    positive_distance = tf.stop_gradient(squared_distances(positives, first_centre))
    negative_distance = tf.stop_gradient(squared_distances(negatives, first_centre))
    nearest_negative = tf.reduce_min(negative_distance, axis=-1, keepdims=True)
    keep = positive_distance <= nearest_negative
    nearest_positive = tf.one_hot(tf.argmin(positive_distance, axis=-1),
                                  tf.shape(positives)[-2], on_value=True, off_value=False)
    none_kept = tf.logical_not(tf.reduce_any(keep, axis=-1, keepdims=True))
    keep = tf.where(none_kept, nearest_positive, keep)
    weights = tf.cast(keep, tf.float32)
    centre = (tf.reduce_sum(positives * weights[..., None], axis=-2)
              / tf.reduce_sum(weights, axis=-1, keepdims=True))
    return keep, centre


def _mean_over(values, weights):
    """Weighted mean over the last axis (weights 0/1, at least one 1 per row)."""
    return tf.reduce_sum(values * weights, axis=-1) / tf.reduce_sum(weights, axis=-1)


def tuple_clusters_loss_per_tuple(positives, negatives, reference, margin):
    """Eq. 3 per tuple after Algorithm 1: ``([...] loss, [..., M] keep)``.

    ``1/M* sum_i max(0, D(f_i+, c+) - T + tau/2) + 1/N sum_j max(0, T + tau/2 - D(f_j-, c+))``
    over the M* mined positives, with the updated c+.
    """
    negatives = tf.cast(negatives, tf.float32)
    keep, centre = online_positive_mining(positives, negatives)
    positives = tf.cast(positives, tf.float32)
    half = 0.5 * margin
    positive_hinge = tf.nn.relu(squared_distances(positives, centre) - reference + half)
    negative_hinge = tf.nn.relu(reference + half - squared_distances(negatives, centre))
    loss = (_mean_over(positive_hinge, tf.cast(keep, tf.float32))
            + tf.reduce_mean(negative_hinge, axis=-1))
    return loss, keep


def tuple_clusters_loss(positives, negatives, T, tau):
    """Eq. 3 (Liu et al. 2017, §3) after online positive mining, as a scalar.

    ``positives`` ``[M, d]`` and ``negatives`` ``[N, d]`` give the loss of one tuple;
    with leading tuple axes (``[X, M, d]``, ``[X, N, d]``) the mean over the X tuples.
    ``T`` is the reference distance, ``tau`` the margin; D is the squared Euclidean distance.
    """
    loss, _ = tuple_clusters_loss_per_tuple(positives, negatives, T, tau)
    return tf.reduce_mean(loss)


def tuplet_loss_per_tuple(anchor, positive, negatives, margin):
    """Eq. 1 per tuple: ``log(1 + sum_j exp(D(f, f+) + tau - D(f, f_j-)))`` -> ``[...]``.

    ``anchor`` and ``positive`` ``[..., d]``, ``negatives`` ``[..., N, d]`` (Eq. 1's
    N - 1 negatives). Computed as a log-sum-exp over ``[0, z_1, ..., z_N]`` for stability.
    """
    anchor = tf.cast(anchor, tf.float32)
    positive_distance = tf.reduce_sum(tf.square(anchor - tf.cast(positive, tf.float32)), axis=-1)
    negative_distance = squared_distances(tf.cast(negatives, tf.float32), anchor)
    logits = positive_distance[..., None] + margin - negative_distance
    logits = tf.concat([tf.zeros_like(logits[..., :1]), logits], axis=-1)
    return tf.reduce_logsumexp(logits, axis=-1)


def tuplet_loss(anchor, positive, negatives, tau):
    """Eq. 1 as a scalar: one tuple, or the mean over leading tuple axes."""
    return tf.reduce_mean(tuplet_loss_per_tuple(anchor, positive, negatives, tau))


def _check_sign(name, value):
    if value not in (1, -1):
        raise ValueError(f"{name} must be +1 or -1, got {value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TupletLoss(keras.losses.Loss):
    """Eq. 1, the (N+1)-tuplet loss, averaged over tuples with a global denominator.

    Call: ``loss(anchor [X, d], positive [X, d], negatives [X, N, d], sample_weight=None)``;
    ``sample_weight`` ``[X]`` masks tuples (each replica returns its share of the global
    mean, see :mod:`fermtl_tf.losses.masked`).
    """

    def __init__(self, margin=1.0, name="tuplet_loss", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.margin = float(margin)

    def __call__(self, anchor, positive, negatives, sample_weight=None):
        with tf.name_scope(self.name):
            losses = tuplet_loss_per_tuple(anchor, positive, negatives, self.margin)
            return masked_mean(losses, _tuple_mask(sample_weight, losses))

    def get_config(self):
        return {"name": self.name, "margin": self.margin}


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TupleClustersLoss(keras.losses.Loss):
    """Eq. 3 with fixed T and tau after Algorithm 1, averaged over tuples (global denominator).

    Call: ``loss(positives [X, M, d], negatives [X, N, d], sample_weight=None)``.
    """

    def __init__(self, reference=1.0, margin=1.0, name="tuple_clusters_loss", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.reference = float(reference)
        self.margin = float(margin)

    def __call__(self, positives, negatives, sample_weight=None):
        with tf.name_scope(self.name):
            losses, _ = tuple_clusters_loss_per_tuple(positives, negatives, self.reference,
                                                      self.margin)
            return masked_mean(losses, _tuple_mask(sample_weight, losses))

    def get_config(self):
        return {"name": self.name, "reference": self.reference, "margin": self.margin}


def _tuple_mask(sample_weight, losses):
    if sample_weight is None:
        return tf.ones_like(losses)
    return tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(losses))


@keras.saving.register_keras_serializable(package="fermtl_tf")
class AdaptiveTupleClusters(keras.layers.Layer):
    """Eq. 5-10: the (N+M)-tuple clusters loss with a learned quadratic threshold.

    ``H(f, c+) = 1/2 f'Af + 1/2 c+'Ac+ + f'Bc+ + c'(f + c+) + b`` (Eq. 7-8) with
    ``A = sign_a L_A'L_A`` and ``B = sign_b L_B'L_B`` through trainable factors
    ``L_A, L_B`` ``[rank, d]`` (so A and B keep their definiteness through training), a
    vector ``c`` and a bias ``b``. The loss of one tuple is Eq. 10,
    ``1/(N + M*) sum_k max(0, l(x_k) H(f_k, c+) + margin)``, over the M* positives kept
    by Algorithm 1 and the N negatives; ``l = positive_label`` for positives and
    ``-positive_label`` for negatives (Eq. 10 fixes tau/2 = margin = 1).

    Initialisation: ``L_A = L_B = sqrt(2) I`` (truncated to ``rank`` rows), ``c = 0``,
    ``b = -positive_label * initial_reference``, so that with the default signs H starts
    as ``D(f, c+) - T0`` (with all three signs flipped, as ``T0 - D``) and the loss as
    Eq. 3 with ``T = T0`` and ``tau = 2 margin``.

    Args:
        sign_a: +1 (A PSD, §3, default) or -1.
        sign_b: -1 (B NSD, §3, default) or +1 (Eq. 8 as printed: B = L_B'L_B).
        positive_label: l(x) of positives; +1 by default (consistent with A PSD, B NSD),
            -1 as printed in Eq. 10 (consistent with H = T - D, i.e. A NSD, B PSD).
        rank: rows of L_A and L_B (default: the embedding size).
        margin: the constant of the hinge (tau/2 = 1 in Eq. 10).
        initial_reference: T0, the reference distance H starts from.

    Call: ``layer(positives [..., M, d], negatives [..., N, d])`` -> ``(loss [...], keep
    [..., M])``.
    """

    def __init__(self, sign_a=1, sign_b=-1, positive_label=1, rank=None, margin=1.0,
                 initial_reference=1.0, **kwargs):
        super().__init__(**kwargs)
        self.sign_a = _check_sign("sign_a", sign_a)
        self.sign_b = _check_sign("sign_b", sign_b)
        self.positive_label = _check_sign("positive_label", positive_label)
        self.rank = None if rank is None else int(rank)
        self.margin = float(margin)
        self.initial_reference = float(initial_reference)

    def build(self, positives_shape, negatives_shape=None):
        dim = int(positives_shape[-1])
        rank = self.rank or dim
        factor = np.sqrt(2.0) * np.eye(rank, dim, dtype="float32")
        self.factor_a = self.add_weight(
            name="factor_a", shape=(rank, dim),
            initializer=keras.initializers.Constant(factor))
        self.factor_b = self.add_weight(
            name="factor_b", shape=(rank, dim),
            initializer=keras.initializers.Constant(factor))
        self.linear = self.add_weight(name="linear", shape=(dim,), initializer="zeros")
        bias = -float(self.positive_label) * self.initial_reference
        self.bias = self.add_weight(name="bias", shape=(),
                                    initializer=keras.initializers.Constant(bias))

    def matrices(self):
        """``(A, B)`` as ``[d, d]`` tensors."""
        a = tf.matmul(self.factor_a, self.factor_a, transpose_a=True)
        b = tf.matmul(self.factor_b, self.factor_b, transpose_a=True)
        return self.sign_a * a, self.sign_b * b

    def quadratic_form(self, points, centre):
        """``H(f_k, c+)`` (Eq. 8) for ``points`` ``[..., K, d]`` and ``centre`` ``[..., d]``.

        Uses the factorised form ``1/2 |L_A f|^2 + 1/2 |L_A c|^2 + (L_B f)'(L_B c) + ...``.
        """
        centre = centre[..., None, :]

        def project(factor, x):  # L x for every vector: one matrix product, [..., rank]
            return tf.tensordot(x, factor, axes=[[-1], [1]])

        quadratic = 0.5 * self.sign_a * (tf.reduce_sum(tf.square(project(self.factor_a, points)), -1)
                                         + tf.reduce_sum(tf.square(project(self.factor_a, centre)), -1))
        cross = self.sign_b * tf.reduce_sum(
            project(self.factor_b, points) * project(self.factor_b, centre), -1)
        linear = tf.reduce_sum((points + centre) * self.linear, -1)
        return quadratic + cross + linear + self.bias

    def call(self, positives, negatives):
        positives = tf.cast(positives, tf.float32)
        negatives = tf.cast(negatives, tf.float32)
        keep, centre = online_positive_mining(positives, negatives)
        label = float(self.positive_label)
        positive_hinge = tf.nn.relu(label * self.quadratic_form(positives, centre) + self.margin)
        negative_hinge = tf.nn.relu(-label * self.quadratic_form(negatives, centre) + self.margin)
        kept = tf.cast(keep, tf.float32)
        total = tf.reduce_sum(positive_hinge * kept, -1) + tf.reduce_sum(negative_hinge, -1)
        count = tf.reduce_sum(kept, -1) + tf.cast(tf.shape(negatives)[-2], tf.float32)
        return total / count, keep

    def compute_output_shape(self, positives_shape, negatives_shape=None):
        return tuple(positives_shape[:-2]), tuple(positives_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(sign_a=self.sign_a, sign_b=self.sign_b, positive_label=self.positive_label,
                      rank=self.rank, margin=self.margin,
                      initial_reference=self.initial_reference)
        return config
