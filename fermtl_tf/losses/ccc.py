"""``CCCLoss``: 1 - concordance correlation over the labelled samples of the whole batch.

Kollias et al. (FaceBehaviorNet), Eq. 2: ``L_VA = 1 - CCC(y_va, y_va_hat)`` with
``CCC = (rho_a + rho_v) / 2`` and, per dimension,

    rho = 2 cov(y, y_hat) / (var(y) + var(y_hat) + (mean(y) - mean(y_hat))^2),

population (divide-by-N) moments over the batch (the printed ``E^2[(y - E y)^2]`` is read
as a plain variance, as in ``fermtl_tf/metrics/regression.py``). §4.4 explains why the
batch must be large: "the CCC cost function needs an adequate sequence of predictions".

The CCC is not a mean of per-sample terms, so it cannot be split into replica shares the
way ``masked.py`` does. Instead each replica computes the six raw sums ``sum m``,
``sum m y``, ``sum m y_hat``, ``sum m y^2``, ``sum m y_hat^2``, ``sum m y y_hat``, all-reduces
them (:func:`~fermtl_tf.losses.masked.global_sum`) and evaluates the CCC of the *global*
batch: N replicas compute exactly the loss of one device on the global batch. The CCC is
a function of those sums only, so its gradient with respect to a replica's predictions
flows through that replica's own sums; the remote part enters as a constant
(``stop_gradient``). Keras sums the replicas' gradients, which then add up to the
one-device gradient. The value returned is ``L / N`` (with that gradient), so that, as for
the masked losses, the replicas' values add up to the loss the trackers log. Sums are
taken in float64, so the raw-moment form loses no precision.

Degenerate batches, all with finite gradients:

* fewer than 2 labelled samples in a dimension: its term ``1 - rho`` is 0 (one sample says
  nothing about concordance), so a batch without VA labels gives loss 0;
* a zero denominator (labels and predictions the same constant): it is clamped to
  ``epsilon``; the covariance is then 0, so ``rho = 0`` and the term is 1.
"""

import keras
import tensorflow as tf

from fermtl_tf.losses.masked import DEFAULT_EPSILON, global_sum


def _as_columns(values):
    """[B] -> [B, 1]; [B, D] unchanged."""
    values = tf.convert_to_tensor(values)
    return values[:, None] if values.shape.rank == 1 else values


def _replicas():
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def global_moment_sums(y_true, y_pred, mask):
    """``[6, D]`` float64 sums over all replicas; gradient through this replica's only."""
    y_true = tf.cast(y_true, tf.float64)
    y_pred = tf.cast(y_pred, tf.float64)
    mask = tf.cast(mask, tf.float64)
    labelled = mask > 0
    y_true = tf.where(labelled, y_true, tf.zeros_like(y_true))
    y_pred = tf.where(labelled, y_pred, tf.zeros_like(y_pred))
    local = tf.stack([
        tf.reduce_sum(mask, 0),
        tf.reduce_sum(mask * y_true, 0),
        tf.reduce_sum(mask * y_pred, 0),
        tf.reduce_sum(mask * y_true * y_true, 0),
        tf.reduce_sum(mask * y_pred * y_pred, 0),
        tf.reduce_sum(mask * y_true * y_pred, 0),
    ])
    return local + tf.stop_gradient(global_sum(local) - local)


def ccc_from_sums(sums, epsilon=DEFAULT_EPSILON):
    """Per-dimension CCC from :func:`global_moment_sums`, population moments; 0 if n < 2."""
    count, sum_t, sum_p, sum_tt, sum_pp, sum_tp = tf.unstack(sums)
    n = tf.maximum(count, 1.0)
    mean_t, mean_p = sum_t / n, sum_p / n
    var_t = sum_tt / n - mean_t * mean_t
    var_p = sum_pp / n - mean_p * mean_p
    covariance = sum_tp / n - mean_t * mean_p
    denominator = tf.maximum(var_t + var_p + (mean_t - mean_p) ** 2, epsilon)
    return tf.where(count >= 2, 2.0 * covariance / denominator, tf.ones_like(count))


@keras.saving.register_keras_serializable(package="fermtl_tf")
class CCCLoss(keras.losses.Loss):
    """``1 - mean_d CCC_d`` over the labelled samples of the global batch (Eq. 2, L_VA).

    ``y_true``/``y_pred``: ``[B, D]`` (valence and arousal stacked, giving
    ``1 - (rho_v + rho_a) / 2``) or ``[B]`` (one dimension). ``sample_weight``: presence
    mask ``va_mask`` ``[B]`` (or ``[B, D]``); ``None`` means all labelled. Called like the
    masked losses, by ``MultiTaskModel.compute_task_losses``; not for ``compile(loss=...)``.

    Example:
        >>> loss = CCCLoss()
        >>> loss(tf.stack([valence, arousal], -1), va_pred, sample_weight=va_mask)
    """

    def __init__(self, epsilon=DEFAULT_EPSILON, name="ccc_loss", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.epsilon = float(epsilon)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            y_true = _as_columns(y_true)
            y_pred = _as_columns(y_pred)
            mask = tf.ones_like(y_pred) if sample_weight is None else sample_weight
            mask = tf.broadcast_to(_as_columns(mask), tf.shape(y_pred))
            sums = global_moment_sums(y_true, y_pred, mask)
            rho = ccc_from_sums(sums, self.epsilon)
            loss = tf.cast(tf.reduce_mean(1.0 - rho), tf.float32)
            replicas = float(_replicas())
            # Value L / N (replica shares add up to L); gradient that of L (module doc).
            return tf.stop_gradient(loss / replicas) + (loss - tf.stop_gradient(loss))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "epsilon": self.epsilon}
