"""FaceBehaviorNet coupling (§3.1.2, Eq. 2-7, 10-11) against numpy written from the paper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.knowledge.relatedness import FACEBEHAVIORNET_AUS, relatedness_matrix
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.losses.coupling import (
    CoAnnotation,
    DistributionMatchingLoss,
    SoftCoAnnotationLoss,
)
from fermtl_tf.losses.masked import MaskedBinaryCrossEntropyPerImage

RNG = np.random.default_rng(0)
AUS = list(FACEBEHAVIORNET_AUS)
EMOTIONS = list(BASIC7)
EPS = 1e-7


def au_vector(*names, value=1.0):
    vector = np.zeros(len(AUS), "float32")
    for name in names:
        vector[AUS.index(name)] = value
    return vector


def emotion_vector(**probabilities):
    vector = np.zeros(len(EMOTIONS), "float32")
    for name, p in probabilities.items():
        vector[EMOTIONS.index(name)] = p
    return vector


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gradients_at(loss, first, second):
    first, second = tf.Variable(first), tf.Variable(second)
    with tf.GradientTape() as tape:
        value = loss(first, second)
    return [value, *tape.gradient(value, [first, second])]


# --- distribution matching (Eq. 3-4) ----------------------------------------------------


def numpy_dm(emotion_probs, au_probs, table, direction="p_log_q", form="bernoulli"):
    """Eq. 3, then Eq. 4 as per-AU Bernoulli cross entropy or as printed (-p log q)."""
    q = emotion_probs @ table  # Eq. 3
    p = au_probs
    if direction == "q_log_p":  # the target is q, the matched distribution p
        p, q = q, p
    terms = -p * np.log(np.clip(q, EPS, 1))
    if form == "bernoulli":
        terms -= (1 - p) * np.log(np.clip(1 - q, EPS, 1))
    return terms.sum(axis=1).mean()


@pytest.mark.parametrize("form", ["bernoulli", "printed"])
@pytest.mark.parametrize("direction", ["p_log_q", "q_log_p"])
def test_distribution_matching_matches_eq3_eq4_from_logits(direction, form):
    emotion_logits = RNG.normal(size=(4, 7)).astype("float32")
    au_logits = RNG.normal(size=(4, 17)).astype("float32")
    table = relatedness_matrix(BASIC7, FACEBEHAVIORNET_AUS, "cognitive", "binary")
    expected = numpy_dm(softmax(emotion_logits), sigmoid(au_logits), table, direction, form)
    got = DistributionMatchingLoss(direction=direction, form=form)(emotion_logits, au_logits)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_bernoulli_is_the_default_form():
    assert DistributionMatchingLoss().form == "bernoulli"


def test_bernoulli_form_on_hand_inputs():
    # Relatedness [[1, 0], [0.5, 1]], p(class) = (0.5, 0.5): q = (0.75, 0.5).
    table = np.array([[1.0, 0.0], [0.5, 1.0]], "float32")
    classes = np.array([[0.5, 0.5]], "float32")
    labels = np.array([[0.8, 0.1]], "float32")
    expected = -(0.8 * np.log(0.75) + 0.2 * np.log(0.25)) - (0.1 * np.log(0.5) + 0.9 * np.log(0.5))
    got = DistributionMatchingLoss(relatedness=table, from_logits=False)(classes, labels)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


@pytest.mark.parametrize("direction", ["p_log_q", "q_log_p"])
def test_bernoulli_an_au_agreeing_with_q_costs_less_than_a_switched_off_au(direction):
    # One AU, q = 0.9 (class certain, p(AU|class) = 0.9): p = 0.9 must beat p = 0.01.
    loss = DistributionMatchingLoss(relatedness=[[0.9]], from_logits=False, direction=direction)
    certain = np.ones((1, 1), "float32")
    agreeing = float(loss(certain, np.array([[0.9]], "float32")))
    switched_off = float(loss(certain, np.array([[0.01]], "float32")))
    assert agreeing < switched_off


def test_printed_form_prefers_a_switched_off_au_whatever_q():
    # The failure the Bernoulli form fixes: -p log q is smallest at p = 0 even for q = 0.9.
    loss = DistributionMatchingLoss(relatedness=[[0.9]], from_logits=False, form="printed")
    certain = np.ones((1, 1), "float32")
    assert float(loss(certain, np.array([[0.01]], "float32"))) < float(
        loss(certain, np.array([[0.9]], "float32")))


def test_au2_mixture_is_p_surprise_plus_p_fear_as_in_the_paper_example():
    emotions = emotion_vector(surprise=0.3, fear=0.5, happiness=0.2)[None]
    aus = au_vector("AU2")[None]
    got = DistributionMatchingLoss(from_logits=False, form="printed")(emotions, aus)
    np.testing.assert_allclose(float(got), -np.log(0.8), rtol=1e-6)
    # Bernoulli: AU2 on (q = 0.8) plus every other AU off, -log(1 - q) each.
    q = emotions @ relatedness_matrix(BASIC7, FACEBEHAVIORNET_AUS, "cognitive", "binary")
    others = np.delete(q[0], AUS.index("AU2"))
    expected = -np.log(0.8) - np.log(np.clip(1 - others, EPS, 1)).sum()
    got = DistributionMatchingLoss(from_logits=False)(emotions, aus)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


@pytest.mark.parametrize("form", ["bernoulli", "printed"])
def test_certain_happiness_with_exactly_its_aus_gives_zero_loss(form):
    # §3.1.2: p(happiness|x) = 1 -> q = 1 for AU12, AU25, AU6 and 0 for the other 14.
    emotions = emotion_vector(happiness=1.0)[None]
    aus = au_vector("AU12", "AU25", "AU6")[None]
    assert float(DistributionMatchingLoss(from_logits=False, form=form)(emotions, aus)) == 0.0


def test_weighted_variant_uses_observational_weights_footnote4():
    emotions = emotion_vector(happiness=1.0)[None]
    aus = au_vector("AU6")[None]
    got = DistributionMatchingLoss(observational="weighted", from_logits=False,
                                   form="printed")(emotions, aus)
    np.testing.assert_allclose(float(got), -np.log(0.51), rtol=1e-6)


def test_affwild2_source_defaults_to_its_image_fractions():
    emotions = emotion_vector(disgust=1.0)[None]
    aus = au_vector("AU10")[None]
    got = DistributionMatchingLoss(source="affwild2", from_logits=False,
                                   form="printed")(emotions, aus)
    np.testing.assert_allclose(float(got), -np.log(0.85), rtol=1e-6)


@pytest.mark.parametrize("form", ["bernoulli", "printed"])
def test_identities_and_attributes_use_the_given_table_eq10_eq11(form):
    # Table 2: 5 o'clock shadow and Male for identities #1 and #5000.
    table = np.array([[0.34483, 1.0], [0.8, 1.0]], "float32")
    ids = np.array([[0.25, 0.75]], "float32")
    attributes = np.array([[0.6, 0.9]], "float32")
    expected = numpy_dm(ids, attributes, table, form=form)
    got = DistributionMatchingLoss(relatedness=table, from_logits=False, form=form)(
        ids, attributes)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


@pytest.mark.parametrize("form", ["bernoulli", "printed"])
def test_distribution_matching_excluded_sample_changes_nothing(form):
    emotion_logits = RNG.normal(size=(3, 7)).astype("float32")
    au_logits = RNG.normal(size=(3, 17)).astype("float32")
    loss = DistributionMatchingLoss(form=form)
    got = loss(emotion_logits, au_logits, sample_weight=np.array([1, 0, 1], "float32"))
    expected = loss(emotion_logits[[0, 2]], au_logits[[0, 2]])
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)
    # The excluded sample gets no gradient either.
    _, emotion_grad, au_grad = gradients_at(
        lambda e, a: loss(e, a, sample_weight=np.array([1, 0, 1], "float32")),
        emotion_logits, au_logits)
    assert not np.any(emotion_grad.numpy()[1]) and not np.any(au_grad.numpy()[1])


def test_unknown_form_is_rejected():
    with pytest.raises(ValueError, match="form must be one of"):
        DistributionMatchingLoss(form="kl")


@pytest.mark.parametrize("form", ["bernoulli", "printed"])
@pytest.mark.parametrize("direction", ["p_log_q", "q_log_p"])
def test_distribution_matching_gradients_finite_at_probabilities_0_and_1(direction, form):
    emotions = np.stack([emotion_vector(happiness=1.0), emotion_vector(neutral=1.0)])
    aus = np.stack([au_vector("AU12", "AU14"), au_vector("AU1")])  # AU14: q = 0, p = 1
    loss = DistributionMatchingLoss(direction=direction, form=form, from_logits=False)
    for tensor in gradients_at(loss, emotions, aus):
        assert np.all(np.isfinite(tensor.numpy()))


# --- soft co-annotation (Eq. 5-7) --------------------------------------------------------


def numpy_sca(au_labels, au_mask, emotion_probs, weights, direction="p_log_q"):
    """Eq. 5 over the annotated AUs, Eq. 6 softmax, Eq. 7, mean over images with AUs."""
    numerator = (au_labels * au_mask) @ weights.T
    denominator = au_mask @ weights.T
    indicator = np.divide(numerator, denominator, out=np.zeros_like(numerator),
                          where=denominator > 0)
    q = softmax(indicator)
    if direction == "p_log_q":
        per_image = -(emotion_probs * np.log(q)).sum(axis=1)
    else:
        per_image = -(q * np.log(emotion_probs)).sum(axis=1)
    has_aus = au_mask.sum(axis=1) > 0
    return per_image[has_aus].mean()


def test_happiness_indicator_is_the_paper_example():
    # I(happiness|x) = (y_AU12 + y_AU25 + 0.51 y_AU6) / (1 + 1 + 0.51)
    labels = au_vector("AU12", "AU6")[None]
    q = SoftCoAnnotationLoss().soft_label(labels, np.ones_like(labels)).numpy()[0]
    indicator_happy = (1 + 0 + 0.51) / 2.51
    indicator_surprise = (0 + 0 + 0 + 0 + 0) / 4.66
    ratio = np.exp(indicator_happy - indicator_surprise)
    happy, surprise = EMOTIONS.index("happiness"), EMOTIONS.index("surprise")
    np.testing.assert_allclose(q[happy] / q[surprise], ratio, rtol=1e-5)


@pytest.mark.parametrize("direction", ["p_log_q", "q_log_p"])
@pytest.mark.parametrize("observational", ["weighted", "binary"])
def test_soft_co_annotation_matches_eq5_to_eq7(direction, observational):
    labels = RNG.integers(0, 2, (5, 17)).astype("float32")
    mask = RNG.integers(0, 2, (5, 17)).astype("float32")
    mask[3] = 0  # an image without AU labels
    logits = RNG.normal(size=(5, 7)).astype("float32")
    weights = relatedness_matrix(BASIC7, FACEBEHAVIORNET_AUS, "cognitive", observational)
    expected = numpy_sca(labels, mask, softmax(logits), weights, direction)
    loss = SoftCoAnnotationLoss(observational=observational, direction=direction)
    np.testing.assert_allclose(float(loss(labels, logits, sample_weight=mask)), expected,
                               rtol=1e-5)


def test_unannotated_au_is_left_out_of_the_indicator():
    # AU6 unannotated: I(happiness) = (1 + 1) / 2 = 1, not (1 + 1 + 0) / 2.51.
    labels = au_vector("AU12", "AU25")[None]
    mask = np.ones_like(labels)
    mask[0, AUS.index("AU6")] = 0
    q = SoftCoAnnotationLoss().soft_label(labels, mask).numpy()[0]
    neutral, happy = EMOTIONS.index("neutral"), EMOTIONS.index("happiness")
    np.testing.assert_allclose(q[happy] / q[neutral], np.e, rtol=1e-5)


def test_soft_co_annotation_image_without_aus_changes_nothing():
    labels = RNG.integers(0, 2, (3, 17)).astype("float32")
    logits = RNG.normal(size=(3, 7)).astype("float32")
    mask = np.ones((3, 17), "float32")
    mask[1] = 0
    loss = SoftCoAnnotationLoss()
    got = loss(labels, logits, sample_weight=mask)
    expected = loss(labels[[0, 2]], logits[[0, 2]], sample_weight=mask[[0, 2]])
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)


def test_soft_co_annotation_batch_without_aus_is_zero():
    loss = SoftCoAnnotationLoss()
    got = loss(np.ones((2, 17), "float32"), np.zeros((2, 7), "float32"),
               sample_weight=np.zeros((2, 17), "float32"))
    assert float(got) == 0.0


@pytest.mark.parametrize("direction", ["p_log_q", "q_log_p"])
def test_soft_co_annotation_gradients_finite_at_probabilities_0_and_1(direction):
    labels = np.stack([au_vector("AU12", "AU25"), au_vector()])
    emotions = np.stack([emotion_vector(happiness=1.0), emotion_vector(anger=1.0)])
    loss = SoftCoAnnotationLoss(direction=direction, from_logits=False)
    for tensor in gradients_at(loss, labels, emotions):
        assert np.all(np.isfinite(tensor.numpy()))


# --- co-annotation (§3.1.2) --------------------------------------------------------------


def co_annotate(expression, expression_mask, au, au_mask, **kwargs):
    batch = {"expression": tf.constant(expression, tf.int32),
             "expression_mask": tf.constant(expression_mask, tf.float32),
             "au": tf.constant(np.asarray(au, "float32")),
             "au_mask": tf.constant(np.asarray(au_mask, "float32"))}
    out = CoAnnotation(**kwargs)(batch)
    return {key: value.numpy() for key, value in out.items()}


def test_expression_adds_its_aus_with_observational_weights():
    happiness = EMOTIONS.index("happiness")
    out = co_annotate([happiness], [1], np.zeros((1, 17)), np.zeros((1, 17)))
    np.testing.assert_array_equal(out["au"][0], au_vector("AU12", "AU25", "AU6"))
    expected_weights = au_vector("AU12", "AU25") + au_vector("AU6", value=0.51)
    np.testing.assert_allclose(out["au_mask"][0], expected_weights)


def test_expression_without_reweighting_gives_observational_weight_one():
    happiness = EMOTIONS.index("happiness")
    out = co_annotate([happiness], [1], np.zeros((1, 17)), np.zeros((1, 17)),
                      reweight_observational=False)
    np.testing.assert_allclose(out["au_mask"][0], au_vector("AU12", "AU25", "AU6"))


def test_existing_au_labels_are_kept_and_neutral_adds_nothing():
    happiness, neutral = EMOTIONS.index("happiness"), EMOTIONS.index("neutral")
    au = np.zeros((2, 17), "float32")
    mask = np.zeros((2, 17), "float32")
    mask[0, AUS.index("AU12")] = 1  # annotated as absent
    out = co_annotate([happiness, neutral], [1, 1], au, mask)
    assert out["au"][0, AUS.index("AU12")] == 0 and out["au_mask"][0, AUS.index("AU12")] == 1
    assert out["au_mask"][0, AUS.index("AU25")] == 1
    np.testing.assert_array_equal(out["au_mask"][1], 0)


def test_aus_of_an_emotion_add_that_expression():
    au = au_vector("AU12", "AU25", "AU6")[None]
    out = co_annotate([0], [0], au, np.ones_like(au))
    assert out["expression_mask"][0] == 1
    assert EMOTIONS[out["expression"][0]] == "happiness"


def test_when_two_emotions_qualify_the_larger_requirement_wins():
    # Happiness (3 AUs) and surprise (AU1, 2, 25, 26 + AU5: 5 AUs) are both complete.
    au = au_vector("AU12", "AU25", "AU6", "AU1", "AU2", "AU26", "AU5")[None]
    out = co_annotate([0], [0], au, np.ones_like(au))
    assert EMOTIONS[out["expression"][0]] == "surprise"


def test_equal_requirements_tie_to_the_larger_weight_sum():
    # Sadness (AU4, 15 + AU1, 6, 17; AU11 is not among the 17 AUs) and disgust (AU9, 10,
    # 17 + AU4, 24) both need 5 AUs; weight sums 3.77 and 3.57.
    au = au_vector("AU4", "AU15", "AU1", "AU6", "AU17", "AU9", "AU10", "AU24")[None]
    out = co_annotate([0], [0], au, np.ones_like(au))
    assert EMOTIONS[out["expression"][0]] == "sadness"


def test_incomplete_or_unannotated_requirements_add_no_expression():
    au = np.stack([au_vector("AU12", "AU25"), au_vector("AU12", "AU25", "AU6")])
    mask = np.ones_like(au)
    mask[1, AUS.index("AU6")] = 0  # AU6 active but not annotated
    out = co_annotate([0, 0], [0, 0], au, mask)
    np.testing.assert_array_equal(out["expression_mask"], [0, 0])


def test_an_existing_expression_label_is_not_replaced():
    au = au_vector("AU12", "AU25", "AU6")[None]
    anger = EMOTIONS.index("anger")
    out = co_annotate([anger], [1], au, np.ones_like(au))
    assert out["expression"][0] == anger


def test_co_annotation_runs_in_a_compiled_function():
    transform = CoAnnotation()
    happiness = EMOTIONS.index("happiness")
    batch = {"expression": tf.constant([happiness, 0]), "expression_mask": tf.constant([1, 0]),
             "au": tf.constant(np.stack([au_vector(), au_vector("AU12", "AU25", "AU6")])),
             "au_mask": tf.constant(np.stack([np.zeros(17, "float32"), np.ones(17, "float32")]))}
    out = tf.function(transform)(batch)
    np.testing.assert_array_equal(out["expression_mask"].numpy(), [1, 1])
    assert out["au_mask"].numpy()[0].sum() == pytest.approx(2.51)


# --- Eq. 2 AU loss: per-image mean over annotated AUs -----------------------------------


def test_per_image_bce_averages_each_image_over_its_annotated_aus_eq2():
    labels = RNG.integers(0, 2, (4, 5)).astype("float32")
    logits = RNG.normal(size=(4, 5)).astype("float32")
    delta = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0.51, 1, 0, 0, 0]],
                     "float32")
    p = sigmoid(logits.astype("float64"))
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    per_image = [(bce[i] * delta[i]).sum() / delta[i].sum() for i in (0, 1, 3)]
    got = MaskedBinaryCrossEntropyPerImage()(labels, logits, sample_weight=delta)
    np.testing.assert_allclose(float(got), np.mean(per_image), rtol=1e-5)


def test_per_image_bce_of_a_batch_without_au_labels_is_zero():
    got = MaskedBinaryCrossEntropyPerImage()(np.ones((2, 3)), np.zeros((2, 3), "float32"),
                                             sample_weight=np.zeros((2, 3)))
    assert float(got) == 0.0


# --- serialisation -----------------------------------------------------------------------


@pytest.mark.parametrize("obj", [
    DistributionMatchingLoss(source="affwild2", direction="q_log_p", name="dm"),
    DistributionMatchingLoss(relatedness=[[0.5, 1.0], [0.0, 0.25]], from_logits=False,
                             form="printed"),
    SoftCoAnnotationLoss(observational="binary", epsilon=1e-5),
    CoAnnotation(emotions=("neutral", "happiness"), source="affwild2", threshold=0.3),
    MaskedBinaryCrossEntropyPerImage(epsilon=1e-3, name="au"),
])
def test_coupling_objects_round_trip_through_keras_serialisation(obj):
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(revived) is type(obj)
    assert revived.get_config() == obj.get_config()


def test_revived_distribution_matching_loss_computes_the_same_value():
    loss = DistributionMatchingLoss(observational="weighted")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    emotion_logits = RNG.normal(size=(2, 7)).astype("float32")
    au_logits = RNG.normal(size=(2, 17)).astype("float32")
    assert float(revived(emotion_logits, au_logits)) == float(loss(emotion_logits, au_logits))
