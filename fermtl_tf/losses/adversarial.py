"""Adversarial losses of a conditional (PatchGAN) GAN: Zhao et al. (FERSNet), Eq. 6.

    L_GAN = E[log D(z_t, I_t)] + E[log(1 - D(z_t, G(z_t, I)))]

D maximises L_GAN; G minimises its second term. The discriminator outputs *logits*
(one per patch for a PatchGAN, Isola et al. 2017), so ``log D = log σ(logit)`` is computed
as a sigmoid cross-entropy, which is exact and stable. Every expectation is a mean over
patches and samples; the sample count is global over replicas (see
``fermtl_tf/losses/masked.py``), so each replica returns its share.
"""

import tensorflow as tf

from fermtl_tf.losses.masked import masked_mean

#: Generator objectives: "minimax" minimises E[log(1 - D(G))] as Eq. 6 is written;
#: "non_saturating" minimises -E[log D(G)], the form Goodfellow et al. and Isola et al.
#: train with (same fixed point, gradients that do not vanish when D wins).
GENERATOR_OBJECTIVES = ("non_saturating", "minimax")


def _per_sample_mean(values):
    """Mean over every axis but the batch axis: one value per sample."""
    values = tf.cast(values, tf.float32)
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def _batch_mean(per_sample):
    return masked_mean(per_sample, tf.ones_like(per_sample))


def log_sigmoid(logits):
    """log σ(logits) without overflow: -softplus(-logits)."""
    return -tf.nn.softplus(-tf.cast(logits, tf.float32))


def discriminator_loss(real_logits, fake_logits):
    """``-L_GAN`` of Eq. 6, what D minimises: -E[log D(real)] - E[log(1 - D(fake))].

    ``real_logits`` is D(z_t, I_t) on the real target images, ``fake_logits`` is
    D(z_t, G(z_t, I)); both ``[B, ...]`` (a patch map per sample).
    """
    real = _per_sample_mean(-log_sigmoid(real_logits))
    fake = _per_sample_mean(-log_sigmoid(-tf.cast(fake_logits, tf.float32)))  # log(1-σ(x)) = log σ(-x)
    return _batch_mean(real + fake)


def generator_loss(fake_logits, objective="non_saturating"):
    """G's adversarial term (weighted by λ1 in Eq. 10).

    ``"minimax"``: E[log(1 - D(z_t, G(z_t, I)))], Eq. 6's second term as written (G
    minimises it). ``"non_saturating"``: -E[log D(z_t, G(z_t, I))].
    """
    if objective == "non_saturating":
        return _batch_mean(_per_sample_mean(-log_sigmoid(fake_logits)))
    if objective == "minimax":
        return _batch_mean(_per_sample_mean(log_sigmoid(-tf.cast(fake_logits, tf.float32))))
    raise ValueError(
        f"generator GAN objective must be one of {GENERATOR_OBJECTIVES}; got {objective!r}."
    )
