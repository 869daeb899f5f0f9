"""Liu et al. 2017 metric losses (Eq. 1, Algorithm 1, Eq. 3, Eq. 5-10) against numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fermtl_tf.losses as losses
from fermtl_tf.losses.tuple_clusters import (
    AdaptiveTupleClusters,
    TupleClustersLoss,
    TupletLoss,
    tuple_clusters_loss_per_tuple,
    tuplet_loss_per_tuple,
)

RNG = np.random.default_rng(11)


# --- numpy written from the paper -------------------------------------------------------

def np_mining(positives, negatives):
    """Algorithm 1 for one tuple, step by step."""
    centre = positives.mean(axis=0)
    d_pos = [float(np.sum((p - centre) ** 2)) for p in positives]
    nearest = min(float(np.sum((n - centre) ** 2)) for n in negatives)
    keep = np.array([d <= nearest for d in d_pos])
    if not keep.any():
        keep[int(np.argmin(d_pos))] = True
    return keep, positives[keep].mean(axis=0)


def np_eq3(positives, negatives, T, tau):
    keep, centre = np_mining(positives, negatives)
    pos = [max(0.0, np.sum((p - centre) ** 2) - T + tau / 2) for p in positives[keep]]
    neg = [max(0.0, T + tau / 2 - np.sum((n - centre) ** 2)) for n in negatives]
    return np.mean(pos) + np.mean(neg)


def np_eq1(anchor, positive, negatives, tau):
    d_pos = np.sum((anchor - positive) ** 2)
    return np.log(1 + sum(np.exp(d_pos + tau - np.sum((anchor - n) ** 2)) for n in negatives))


def np_h(f, c, A, B, lin, b):
    return 0.5 * f @ A @ f + 0.5 * c @ A @ c + f @ B @ c + lin @ (f + c) + b


def np_eq10(positives, negatives, A, B, lin, b, positive_label, margin=1.0):
    keep, centre = np_mining(positives, negatives)
    terms = [max(0.0, positive_label * np_h(p, centre, A, B, lin, b) + margin)
             for p in positives[keep]]
    terms += [max(0.0, -positive_label * np_h(n, centre, A, B, lin, b) + margin)
              for n in negatives]
    return np.mean(terms)


# --- hand-made embeddings ----------------------------------------------------------------

POSITIVES = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], "float32")
NEGATIVES = np.array([[3, 3.5], [-4, 0]], "float32")


def test_mining_drops_the_positive_beyond_the_nearest_negative():
    # c+ = (1.5, 1.5); D(p) = 4.5, 2.5, 2.5, 24.5; nearest negative (3, 3.5): 6.25.
    keep, centre = losses.online_positive_mining(POSITIVES, NEGATIVES)
    np.testing.assert_array_equal(keep.numpy(), [True, True, True, False])
    np.testing.assert_allclose(centre.numpy(), [1 / 3, 1 / 3], rtol=1e-6)


def test_mining_keeps_the_nearest_positive_when_all_would_be_dropped():
    # A negative at (1, 1.5) lies at D = 0.25 from c+ = (1.5, 1.5), nearer than every
    # positive; the positive nearest to c+ ((0, 1.2): D = 2.34) alone is kept.
    positives = np.array([[0, 0], [1, 0], [0, 1.2], [5, 5]], "float32")
    negatives = np.array([[1, 1.5], [-4, 0]], "float32")
    keep, centre = losses.online_positive_mining(positives, negatives)
    first = positives.mean(0)
    assert np.sum((negatives[0] - first) ** 2) < min(np.sum((positives - first) ** 2, 1))
    np.testing.assert_array_equal(keep.numpy(), [False, False, True, False])
    np.testing.assert_allclose(centre.numpy(), positives[2])


def test_eq3_on_the_hand_made_tuple():
    # After mining c+ = (1/3, 1/3): D = 2/9, 5/9, 5/9; T = 1, tau = 1 gives positive
    # hinges 0, 1/18, 1/18 (mean 1/27) and no negative inside 1.5.
    value = losses.tuple_clusters_loss(POSITIVES, NEGATIVES, 1.0, 1.0)
    np.testing.assert_allclose(value.numpy(), 1 / 27, rtol=1e-5)


def test_batched_losses_match_numpy_per_tuple():
    positives = RNG.normal(size=(5, 6, 4)).astype("float32")
    negatives = RNG.normal(size=(5, 3, 4)).astype("float32") + 0.5
    per_tuple, keep = tuple_clusters_loss_per_tuple(positives, negatives, 2.0, 1.5)
    expected = [np_eq3(p, n, 2.0, 1.5) for p, n in zip(positives, negatives, strict=True)]
    np.testing.assert_allclose(per_tuple.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        keep.numpy(), [np_mining(p, n)[0] for p, n in zip(positives, negatives, strict=True)])
    np.testing.assert_allclose(losses.tuple_clusters_loss(positives, negatives, 2.0, 1.5),
                               np.mean(expected), rtol=1e-5)
    anchors, pos = positives[:, 0], positives[:, 1]
    expected = [np_eq1(a, p, n, 0.7) for a, p, n in zip(anchors, pos, negatives, strict=True)]
    np.testing.assert_allclose(tuplet_loss_per_tuple(anchors, pos, negatives, 0.7).numpy(),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(losses.tuplet_loss(anchors, pos, negatives, 0.7),
                               np.mean(expected), rtol=1e-5)


def test_tuplet_loss_is_stable_for_large_distances():
    anchor = np.zeros((1, 2), "float32")
    positive = np.array([[30.0, 0.0]], "float32")
    negatives = np.zeros((1, 2, 2), "float32")
    value = tuplet_loss_per_tuple(anchor, positive, negatives, 1.0).numpy()
    np.testing.assert_allclose(value, [901.0 + np.log(2.0)], rtol=1e-6)


def test_triplet_loss_is_the_special_case():
    a, p, n = (RNG.normal(size=(8, 3)).astype("float32") for _ in range(3))
    d = lambda x, y: np.sum((x - y) ** 2, -1)  # noqa: E731
    # Eq. 1 with a single negative: the soft-margin triplet log(1 + exp(D+ + tau - D-)).
    soft = tuplet_loss_per_tuple(a, p, n[:, None], 0.5).numpy()
    np.testing.assert_allclose(soft, np.log1p(np.exp(d(a, p) + 0.5 - d(a, n))), rtol=1e-5)
    # Eq. 3 on the pair {a, p} and one negative, with T = D(f+, c+) + tau/2: the triplet
    # hinge with the centre as anchor (the coupled-clusters form, Liu et al. §2).
    positives = np.stack([a, p], 1)
    centre = (a + p) / 2
    mined, keep = tuple_clusters_loss_per_tuple(
        positives, n[:, None], (d(a, centre) + 0.25)[:, None], 0.5)
    both = keep.numpy().all(-1)
    assert both.any()
    triplet = np.maximum(0, d(a, centre) + 0.5 - d(n, centre))
    np.testing.assert_allclose(mined.numpy()[both], triplet[both], rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_the_updated_centre_in_a_tf_function():
    positives = tf.Variable(RNG.normal(size=(3, 4, 2)).astype("float32"))
    negatives = tf.Variable(RNG.normal(size=(3, 2, 2)).astype("float32"))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = losses.tuple_clusters_loss(positives, negatives, 3.0, 1.0)
        return tape.gradient(value, [positives, negatives])

    grads = step()
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert np.abs(grads[0].numpy()).sum() > 0


# --- the adaptive form (Eq. 5-10) ----------------------------------------------------------

def _layer_with_random_weights(dim=3, **kwargs):
    layer = AdaptiveTupleClusters(**kwargs)
    layer.build((None, 4, dim), (None, 3, dim))
    layer.factor_a.assign(RNG.normal(size=layer.factor_a.shape).astype("float32"))
    layer.factor_b.assign(RNG.normal(size=layer.factor_b.shape).astype("float32"))
    layer.linear.assign(RNG.normal(size=(dim,)).astype("float32"))
    layer.bias.assign(-1.5)
    return layer


@pytest.mark.parametrize("signs", [(1, -1, 1), (1, 1, -1), (-1, 1, -1)])
def test_adaptive_loss_matches_numpy(signs):
    sign_a, sign_b, label = signs
    layer = _layer_with_random_weights(sign_a=sign_a, sign_b=sign_b, positive_label=label)
    la, lb = layer.factor_a.numpy(), layer.factor_b.numpy()
    A, B = sign_a * la.T @ la, sign_b * lb.T @ lb
    lin, b = layer.linear.numpy(), float(layer.bias.numpy())
    positives = RNG.normal(size=(6, 4, 3)).astype("float32")
    negatives = RNG.normal(size=(6, 3, 3)).astype("float32")
    value, _ = layer(positives, negatives)
    expected = [np_eq10(p, n, A, B, lin, b, label) for p, n in zip(positives, negatives,
                                                                    strict=True)]
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_default_and_all_signs_flipped_are_the_same_family():
    default = _layer_with_random_weights()
    flipped = AdaptiveTupleClusters(sign_a=-1, sign_b=1, positive_label=-1)
    flipped.build((None, 4, 3), (None, 3, 3))
    flipped.factor_a.assign(default.factor_a)
    flipped.factor_b.assign(default.factor_b)
    flipped.linear.assign(-default.linear)
    flipped.bias.assign(-default.bias)
    positives = RNG.normal(size=(4, 4, 3)).astype("float32")
    negatives = RNG.normal(size=(4, 3, 3)).astype("float32")
    np.testing.assert_allclose(default(positives, negatives)[0].numpy(),
                               flipped(positives, negatives)[0].numpy(), rtol=1e-5)


def test_initial_threshold_is_a_distance_to_the_centre_only_with_b_nsd():
    f = RNG.normal(size=(1, 5, 3)).astype("float32")
    c = RNG.normal(size=(1, 3)).astype("float32")
    default = AdaptiveTupleClusters(initial_reference=2.0)
    printed = AdaptiveTupleClusters(sign_b=1, initial_reference=2.0)
    for layer in (default, printed):
        layer.build((None, 5, 3), (None, 1, 3))
    np.testing.assert_allclose(default.quadratic_form(f, c).numpy(),
                               np.sum((f - c[:, None]) ** 2, -1) - 2.0, rtol=1e-5, atol=1e-5)
    # Eq. 8 as printed (B = L_B'L_B): H depends on f + c+, not on their distance.
    np.testing.assert_allclose(printed.quadratic_form(f, c).numpy(),
                               np.sum((f + c[:, None]) ** 2, -1) - 2.0, rtol=1e-5, atol=1e-5)


def test_a_stays_psd_and_b_nsd_through_training():
    layer = _layer_with_random_weights(dim=4)
    optimizer = keras.optimizers.Adam(0.2)
    positives = RNG.normal(size=(8, 4, 4)).astype("float32")
    negatives = RNG.normal(size=(8, 3, 4)).astype("float32")
    for _ in range(15):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(layer(positives, negatives)[0])
        grads = tape.gradient(value, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables, strict=True))
    A, B = (m.numpy() for m in layer.matrices())
    assert np.linalg.eigvalsh(A).min() >= -1e-4
    assert np.linalg.eigvalsh(B).max() <= 1e-4
    assert np.abs(np.linalg.eigvalsh(A)).max() > 0.1


def test_losses_serialise():
    for loss in (TupletLoss(margin=0.3), TupleClustersLoss(reference=2.0, margin=0.5)):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    layer = _layer_with_random_weights(sign_b=1, rank=2, positive_label=-1)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.get_config()["sign_b"] == 1 and clone.get_config()["rank"] == 2
    assert clone.built  # rebuilt from the saved build config
    clone.set_weights(layer.get_weights())
    positives = RNG.normal(size=(2, 4, 3)).astype("float32")
    negatives = RNG.normal(size=(2, 3, 3)).astype("float32")
    np.testing.assert_allclose(clone(positives, negatives)[0], layer(positives, negatives)[0])


def test_loss_classes_average_over_masked_tuples():
    positives = RNG.normal(size=(4, 3, 2)).astype("float32")
    negatives = RNG.normal(size=(4, 2, 2)).astype("float32")
    weight = np.array([1, 0, 1, 1], "float32")
    per_tuple, _ = tuple_clusters_loss_per_tuple(positives, negatives, 1.0, 1.0)
    value = TupleClustersLoss(1.0, 1.0)(positives, negatives, sample_weight=weight)
    np.testing.assert_allclose(value, per_tuple.numpy()[weight > 0].mean(), rtol=1e-6)
    per_tuple = tuplet_loss_per_tuple(positives[:, 0], positives[:, 1], negatives, 1.0)
    value = TupletLoss(1.0)(positives[:, 0], positives[:, 1], negatives, sample_weight=weight)
    np.testing.assert_allclose(value, per_tuple.numpy()[weight > 0].mean(), rtol=1e-6)


@pytest.mark.parametrize("positive_label, clusters", [(1, True), (-1, False)])
def test_which_labels_pull_positives_in_under_a_psd_b_nsd(positive_label, clusters):
    # Gradient descent on free embeddings with A = 2I, B = -2I (the initialisation),
    # c = 0, b = -2, i.e. H = D(f, c+) - 2: the default labels shrink the positive cluster and push the
    # negatives out; Eq. 10's printed labels do the opposite (docs/FIDELITY.md).
    layer = AdaptiveTupleClusters(positive_label=positive_label)
    layer.build((None, 4, 2), (None, 3, 2))
    layer.bias.assign(-2.0)  # H = D(f, c+) - 2 for both label conventions
    # Positives at D = 1.44 from their centre, negatives at D = 2.56: every positive is
    # kept and every hinge term is active (T0 - 1 < D < T0 + 1).
    angles = np.deg2rad([45, 165, 285])
    positives = tf.Variable(1.2 * np.array([[[1, 0], [0, 1], [-1, 0], [0, -1]]], "float32"))
    negatives = tf.Variable(1.6 * np.stack([np.cos(angles), np.sin(angles)], -1)[None]
                            .astype("float32"))

    def spreads():
        centre = tf.reduce_mean(positives, 1)
        return (float(tf.reduce_mean(tf.reduce_sum((positives - centre[:, None]) ** 2, -1))),
                float(tf.reduce_mean(tf.reduce_sum((negatives - centre[:, None]) ** 2, -1))))

    before = spreads()
    for _ in range(30):
        with tf.GradientTape() as tape:
            value = layer(positives, negatives)[0]
        for variable, grad in zip((positives, negatives),
                                  tape.gradient(value, [positives, negatives]), strict=True):
            variable.assign_sub(0.05 * grad)
    after = spreads()
    assert (after[0] < before[0]) == clusters
    assert (after[1] > before[1]) == clusters
