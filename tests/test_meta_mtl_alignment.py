"""MML alignment loss (Li et al. 2023, §4.1, Eq. 4-9) against numpy written from the paper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.knowledge.vocabularies import RAFCE14
from fermtl_tf.losses import (
    AlignmentLoss,
    alignment_am,
    alignment_dm1,
    alignment_dm2,
    au_from_emotion,
    emotion_from_au,
    expected_au,
)
from fermtl_tf.methods.meta_mtl.au_statistics import COMPOUND_LAB, relatedness_table

RNG = np.random.default_rng(3)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def random_inputs(batch=5, classes=4, aus=6):
    logits = RNG.normal(size=(batch, classes))
    p_emo = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p_au = sigmoid(RNG.normal(size=(batch, aus)))
    table = RNG.uniform(0, 1, size=(classes, aus)) * (RNG.uniform(size=(classes, aus)) > 0.4)
    table[:, 0] = 0.0  # an AU no class relates to
    return p_emo, p_au, table


def numpy_losses(p_emo, p_au, table, sigmoid_position="inside", form="printed"):
    """Eq. 5 (or §5.3), 6, 7, 8 sample by sample, AU by AU, class by class."""
    batch, classes = p_emo.shape
    aus = p_au.shape[1]
    dm1, dm2 = np.zeros(batch), np.zeros(batch)
    for b in range(batch):
        for j in range(aus):
            if sigmoid_position == "inside":
                q = sum(p_emo[b, k] * sigmoid(table[k, j]) for k in range(classes))
            else:
                q = sigmoid(sum(p_emo[b, k] * table[k, j] for k in range(classes)))
            dm1[b] -= p_au[b, j] * np.log(q)
            if form == "bernoulli":
                dm1[b] -= (1 - p_au[b, j]) * np.log(1 - q)
        for k in range(classes):
            q = sum(p_au[b, j] * table[k, j] for j in range(aus)) / sum(table[k])
            dm2[b] -= p_emo[b, k] * np.log(q)
    return dm1, dm2


@pytest.mark.parametrize("sigmoid_position", ["inside", "outside"])
@pytest.mark.parametrize("form", ["printed", "bernoulli"])
def test_dm1_dm2_am_match_numpy(sigmoid_position, form):
    p_emo, p_au, table = random_inputs()
    dm1, dm2 = numpy_losses(p_emo, p_au, table, sigmoid_position, form)
    np.testing.assert_allclose(
        alignment_dm1(p_emo, p_au, table, sigmoid=sigmoid_position, form=form), dm1, rtol=1e-10)
    np.testing.assert_allclose(alignment_dm2(p_emo, p_au, table), dm2, rtol=1e-10)
    np.testing.assert_allclose(
        alignment_am(p_emo, p_au, table, sigmoid_position, form), dm1 + dm2, rtol=1e-10)


def test_public_api_defaults_are_eq6_and_eq8_as_printed():
    p_emo, p_au, table = random_inputs(batch=3)
    dm1, dm2 = numpy_losses(p_emo, p_au, table)
    np.testing.assert_allclose(alignment_dm1(p_emo, p_au, table), dm1, rtol=1e-10)
    np.testing.assert_allclose(alignment_dm2(p_emo, p_au, table), dm2, rtol=1e-10)
    assert alignment_dm1(p_emo, p_au, table).shape == (3,)


def test_eq4_worked_au9_example():
    """§4.1: t_9 = 0.24 p_HD + 0.29 p_SA + 0.56 p_FA + 0.33 p_AD."""
    table = relatedness_table(RAFCE14, ["AU9", "AU12"], "wild")
    p_emo = RNG.dirichlet(np.ones(14), size=4)
    index = {name: RAFCE14.index(name) for name in
             ("happily_disgusted", "sadly_angry", "fearfully_angry", "angrily_disgusted")}
    expected = (0.24 * p_emo[:, index["happily_disgusted"]]
                + 0.29 * p_emo[:, index["sadly_angry"]]
                + 0.56 * p_emo[:, index["fearfully_angry"]]
                + 0.33 * p_emo[:, index["angrily_disgusted"]])
    np.testing.assert_allclose(expected_au(p_emo, table)[:, 0], expected, rtol=1e-6)


def test_eq5_puts_sigmoid_on_every_entry_and_eq7_normalises_rows():
    table = np.array([[0.0, 2.0], [1.0, 1.0]])
    p_emo = np.array([[1.0, 0.0], [0.25, 0.75]])
    q_au = au_from_emotion(p_emo, table).numpy()
    np.testing.assert_allclose(q_au[0], [0.5, sigmoid(2.0)])
    np.testing.assert_allclose(q_au[1], [0.25 * 0.5 + 0.75 * sigmoid(1.0),
                                         0.25 * sigmoid(2.0) + 0.75 * sigmoid(1.0)])
    q_lab = au_from_emotion(p_emo, table, sigmoid="outside").numpy()
    np.testing.assert_allclose(q_lab[1], sigmoid(np.array([0.75, 0.5 + 0.75])))
    q_emo = emotion_from_au(np.array([[1.0, 0.5]]), table).numpy()
    np.testing.assert_allclose(q_emo[0], [(0 * 1 + 2 * 0.5) / 2, (1 + 0.5) / 2])


def test_printed_dm1_minimum_ignores_q_but_bernoulli_is_minimal_at_q():
    """Why ``bernoulli`` exists: gradient of each reading with respect to p^AU."""
    table = np.array([[0.0, 1.5]])
    p_emo = tf.constant([[1.0]], tf.float64)
    p_au = tf.Variable([[0.3, 0.3]], dtype=tf.float64)
    for form, expected in (("printed", -np.log([0.5, sigmoid(1.5)])),
                           ("bernoulli", [0.0, -1.5])):
        with tf.GradientTape() as tape:
            loss = alignment_dm1(p_emo, p_au, table, form=form)
        np.testing.assert_allclose(tape.gradient(loss, p_au)[0], expected, atol=1e-12)


def test_zero_row_gives_finite_dm2():
    table = np.array([[0.0, 0.0], [1.0, 0.0]])
    loss = alignment_dm2(np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]]), table)
    assert np.isfinite(loss.numpy()).all()


def test_lab_table_is_binary_over_du_observed_aus():
    aus = ["AU1", "AU4", "AU7", "AU12", "AU16", "AU25"]
    lab = relatedness_table(RAFCE14, aus, "lab")
    assert set(np.unique(lab)) <= {0.0, 1.0}
    row = lab[RAFCE14.index("sadly_angry")]
    np.testing.assert_array_equal(row, [float(a in COMPOUND_LAB["sadly_angry"]) for a in aus])
    # AU16 is exclusively in-the-wild (§3.2, Observation 1): never observed in the lab.
    assert lab[:, aus.index("AU16")].sum() == 0
    assert relatedness_table(RAFCE14, aus, "wild")[:, aus.index("AU16")].sum() > 0


def test_sided_aus_take_the_sideless_value_unless_disabled():
    table = relatedness_table(["happily_surprised"], ["AU12L", "AU12R", "AU12"], "wild")
    np.testing.assert_allclose(table[0], [0.58, 0.58, 0.58])
    unmerged = relatedness_table(["happily_surprised"], ["AU12L"], "wild", merge_sides=False)
    assert unmerged[0, 0] == 0.0


def test_unknown_class_is_named():
    with pytest.raises(KeyError, match="happiness"):
        relatedness_table(["happiness"], ["AU1"], "wild")


@pytest.mark.parametrize("term", ["dm1", "dm2", "am"])
def test_alignment_loss_object_per_sample_and_serialises(term):
    p_emo, p_au, table = random_inputs(batch=4)
    loss = AlignmentLoss(table, term=term, sigmoid="outside", dm1_form="bernoulli")
    dm1, dm2 = numpy_losses(p_emo, p_au, table, "outside", "bernoulli")
    expected = {"dm1": dm1, "dm2": dm2, "am": dm1 + dm2}[term]
    values = loss(p_emo.astype("float32"), p_au.astype("float32"))
    assert values.shape == (4,)
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, AlignmentLoss) and clone.get_config() == loss.get_config()
    np.testing.assert_allclose(clone(p_emo.astype("float32"), p_au.astype("float32")), values)


def test_alignment_loss_works_in_tf_function():
    p_emo, p_au, table = random_inputs(batch=2)
    loss = AlignmentLoss(table)
    graph = tf.function(lambda a, b: loss(a, b))
    np.testing.assert_allclose(graph(tf.constant(p_emo, tf.float32), tf.constant(p_au, tf.float32)),
                               loss(p_emo.astype("float32"), p_au.astype("float32")), rtol=1e-6)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="term"):
        AlignmentLoss(np.ones((2, 2)), term="dm3")
    with pytest.raises(ValueError, match="sigmoid"):
        au_from_emotion(np.ones((1, 2)), np.ones((2, 2)), sigmoid="middle")
