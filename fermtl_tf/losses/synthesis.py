"""Synthesis losses of FERSNet (Zhao et al., Eq. 7-9) and the λ4 ramp of Eq. 10.

All three are squared errors averaged over samples:

* reconstruction (Eq. 7): ``1/n Σ ||G(z_t, I_i) - I_t_i||²``, to the *real* target image;
* cycle (Eq. 8): ``1/n Σ ||G(z_i, G(z_t, I_i)) - I_i||²``;
* identity (Eq. 9): ``1/n Σ ||f(G(z_t, I_i)) - f(I_t_i)||²`` on face-identity features f.

The paper writes ``||·||²₂`` but calls Eq. 7 "the mean squared error"; ``reduction``
chooses the per-sample reduction: ``"mean"`` (default, MSE over pixels / features) or
``"sum"`` (the squared L2 norm as printed). See docs/FIDELITY.md, "FERSNet". The sample
count is global over replicas (``fermtl_tf/losses/masked.py``).
"""

import tensorflow as tf

from fermtl_tf.losses.masked import masked_mean

SQUARED_ERROR_REDUCTIONS = ("mean", "sum")


def squared_error(prediction, target, reduction="mean"):
    """Per-sample squared error (mean or sum over all non-batch axes), averaged over samples.

    Serves Eq. 7 (prediction G(z_t, I), target I_t), Eq. 8 (G(z, G(z_t, I)), I) and Eq. 9
    (f(G(z_t, I)), f(I_t)).
    """
    if reduction not in SQUARED_ERROR_REDUCTIONS:
        raise ValueError(
            f"squared-error reduction must be one of {SQUARED_ERROR_REDUCTIONS}; "
            f"got {reduction!r}."
        )
    error = tf.square(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32))
    error = tf.reshape(error, [tf.shape(error)[0], -1])
    per_sample = tf.reduce_mean(error, 1) if reduction == "mean" else tf.reduce_sum(error, 1)
    return masked_mean(per_sample, tf.ones_like(per_sample))


def linear_ramp(step, ramp_steps, start, end):
    """``start`` at step 0, linearly to ``end`` at ``ramp_steps``, then ``end``.

    λ4 of Eq. 10: "set to 0.1 at the beginning, and gradually increased to 0.5 during the
    training process" (§IV-A, following Song et al. [14]). ``ramp_steps`` <= 0 gives
    ``end`` from the start.
    """
    step = tf.cast(step, tf.float32)
    ramp_steps = tf.cast(ramp_steps, tf.float32)
    fraction = tf.where(
        ramp_steps > 0, tf.clip_by_value(step / tf.maximum(ramp_steps, 1.0), 0.0, 1.0), 1.0
    )
    return start + (end - start) * fraction
