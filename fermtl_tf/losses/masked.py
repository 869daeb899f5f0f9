"""Masked task losses: every label may be absent, and replicas share one denominator.

A multi-task batch mixes samples that carry different labels (an expression image has
no landmarks, a 300-W image no expression), so every task loss is a *masked mean*

    L = sum_i m_i * l_i / max(sum_i m_i, eps)

over the samples (or sample-AU pairs) whose presence mask ``m`` is set. A batch
without any labelled sample gives exactly 0, not NaN.

Distribution: Keras' TensorFlow optimizer *sums* gradients over replicas
(``keras/src/backend/tensorflow/optimizer.py::_all_reduce_sum_gradients``). For N
replicas to make the same update as one device on the same global batch, each replica
must therefore return its share ``sum_{i in replica} m_i l_i / max(sum_{all} m_i, eps)``,
i.e. divide by the *global* mask count. :func:`global_sum` all-reduces the local count
across the replicas of the current ``tf.distribute`` replica context (a no-op on one
device), so the same code is right with and without a strategy, even when the replicas
hold different numbers of labelled samples.

The loss classes are meant to be called by ``MultiTaskModel.compute_task_losses`` with
the presence mask as ``sample_weight``; they are not meant for ``compile(loss=...)``,
whose own replica scaling would divide a second time.
"""

import keras
import tensorflow as tf

#: Lower bound of a masked mean's denominator, so that an all-unlabelled batch gives 0.
DEFAULT_EPSILON = 1e-7


def global_sum(value):
    """Sum ``value`` over the replicas of the current replica context (identity on one)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def masked_mean(values, mask, epsilon=DEFAULT_EPSILON):
    """Mean of ``values`` over the entries where ``mask`` > 0, with a global denominator.

    ``values`` and ``mask`` have the same shape; ``mask`` may hold soft weights. Entries
    with mask 0 are excluded with ``tf.where`` so that a non-finite filler value in an
    unlabelled sample cannot leak into the result.
    """
    values = tf.cast(values, tf.float32)
    mask = tf.cast(mask, tf.float32)
    weighted = tf.where(mask > 0, values * mask, tf.zeros_like(values))
    count = tf.stop_gradient(global_sum(tf.reduce_sum(mask)))
    return tf.reduce_sum(weighted) / tf.maximum(count, epsilon)


def reduce_per_sample(values, weights, scale=None, epsilon=DEFAULT_EPSILON):
    """sum_i s_i w_i v_i / max(sum_i w_i over all replicas, eps): a replica's share.

    ``values``/``weights`` [B] come from a loss's ``per_sample``; ``scale`` [B] holds
    per-sample factors (None: 1) that re-weight samples without changing the global
    denominator, so an all-ones scale gives exactly the masked mean.
    """
    weights = tf.cast(weights, tf.float32)
    scaled = weights if scale is None else weights * tf.cast(scale, tf.float32)
    values = tf.cast(values, tf.float32)
    weighted = tf.where(weights > 0, values * scaled, tf.zeros_like(values))
    count = tf.stop_gradient(global_sum(tf.reduce_sum(weights)))
    return tf.reduce_sum(weighted) / tf.maximum(count, epsilon)


def _per_sample_mean(losses, mask, epsilon):
    """(mean of each sample's masked elements [B], each sample's total mask [B])."""
    losses = tf.cast(losses, tf.float32)
    if losses.shape.rank == 1:
        return losses, mask
    flat_losses = tf.reshape(losses, [tf.shape(losses)[0], -1])
    flat_mask = tf.reshape(mask, [tf.shape(mask)[0], -1])
    weighted = tf.where(flat_mask > 0, flat_losses * flat_mask, tf.zeros_like(flat_losses))
    weight = tf.reduce_sum(flat_mask, axis=-1)
    return tf.reduce_sum(weighted, axis=-1) / tf.maximum(weight, epsilon), weight


def _broadcast_mask(mask, like):
    """Give a per-sample mask [B] the shape of per-element losses [B, ...]."""
    mask = tf.cast(mask, tf.float32)
    while mask.shape.rank < like.shape.rank:
        mask = mask[..., None]
    return tf.broadcast_to(mask, tf.shape(like))


class _MaskedLoss(keras.losses.Loss):
    """Base: ``call`` gives per-element losses, ``__call__`` their masked mean.

    ``sample_weight`` is the presence mask, per sample [B] or per element (e.g. [B, K]
    for AUs); ``None`` means every element is labelled.
    """

    def __init__(self, epsilon=DEFAULT_EPSILON, name=None, **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.epsilon = float(epsilon)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            losses = self.call(y_true, tf.cast(y_pred, tf.float32))
            if sample_weight is None:
                mask = tf.ones_like(losses)
            else:
                mask = _broadcast_mask(sample_weight, losses)
            return masked_mean(losses, mask, self.epsilon)

    def per_sample(self, y_true, y_pred, sample_weight=None):
        """``(values [B], weights [B])`` whose :func:`reduce_per_sample` is ``__call__``'s value.

        A sample's value is the masked mean of its elements and its weight their total
        mask, so that sum_i w_i v_i / sum_i w_i is the masked mean over all elements.
        Per-sample values are what a weighting with per-sample factors (a meta network)
        re-weights before the one reduction.
        """
        with tf.name_scope(self.name):
            losses = self.call(y_true, tf.cast(y_pred, tf.float32))
            mask = (tf.ones_like(losses) if sample_weight is None
                    else _broadcast_mask(sample_weight, losses))
            return _per_sample_mean(losses, mask, self.epsilon)

    def get_config(self):
        return {"name": self.name, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MaskedSoftmaxCrossEntropy(_MaskedLoss):
    """Softmax cross-entropy on integer class labels, averaged over labelled samples.

    The classification loss of every paper here (e.g. Hu et al. 2018, §2.4: "softmax
    cross-entropy loss" for mental-state recognition).

    Example:
        >>> loss = MaskedSoftmaxCrossEntropy()
        >>> loss([2, 0], [[0., 0., 5.], [1., 0., 0.]], sample_weight=[1., 0.])
    """

    def call(self, y_true, y_pred):
        # Unlabelled samples may carry -1 (identity); they are masked out, but the op
        # itself rejects out-of-range labels, so they are clamped to class 0 first.
        labels = tf.maximum(tf.cast(tf.reshape(y_true, [-1]), tf.int32), 0)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MaskedL1(_MaskedLoss):
    """Mean absolute error per sample (over points and coordinates), masked over samples.

    Hu et al. 2018, §2.4 and §4.1: "l1 regression loss" on landmark coordinates
    normalised to (0, 1). ``y_true``/``y_pred`` are [B, 68, 2] (any trailing shape).
    """

    def call(self, y_true, y_pred):
        error = tf.abs(tf.cast(y_true, tf.float32) - y_pred)
        return tf.reduce_mean(tf.reshape(error, [tf.shape(error)[0], -1]), axis=1)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MaskedBinaryCrossEntropy(_MaskedLoss):
    """Sigmoid cross-entropy from logits, averaged over the annotated (sample, AU) pairs.

    ``y_true`` [B, K] in {0, 1} (or soft targets), ``y_pred`` logits [B, K],
    ``sample_weight`` the per-AU presence mask ``au_mask`` [B, K].
    """

    def call(self, y_true, y_pred):
        labels = tf.cast(y_true, tf.float32)
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=y_pred)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MaskedBinaryCrossEntropyPerImage(MaskedBinaryCrossEntropy):
    """Sigmoid cross-entropy averaged over each image's annotated AUs, then over images.

    Kollias et al. (FaceBehaviorNet), Eq. 2: ``log p(y_au|x) = sum_i delta_i [y_i log p_i +
    (1 - y_i) log(1 - p_i)] / sum_k delta_k`` per image, and ``L_AU`` its mean over the
    images with AU labels. Unlike :class:`MaskedBinaryCrossEntropy` (a mean over all
    annotated (image, AU) pairs), an image annotated for 12 AUs weighs as much as one
    annotated for 10. ``sample_weight`` ``[B, K]`` may hold soft weights (the observational
    AU weights added by co-annotation): each image's mean is then weighted by them. An
    image counts when its weights sum to more than 0; the image count is global over
    replicas (see the module docstring).
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        return reduce_per_sample(*self.per_sample(y_true, y_pred, sample_weight),
                                 epsilon=self.epsilon)

    def per_sample(self, y_true, y_pred, sample_weight=None):
        """(each image's mean over its annotated AUs [B], 1 where it has any, else 0)."""
        per_image, weight = super().per_sample(y_true, y_pred, sample_weight)
        return per_image, tf.cast(weight > 0, tf.float32)
