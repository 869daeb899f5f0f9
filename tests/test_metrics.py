"""Metrics against scikit-learn or numpy written here from the definitions."""

import numpy as np
import pytest
from sklearn import metrics as skm

from fermtl_tf import metrics

NUM_CLASSES = 7


@pytest.fixture
def labels():
    """Random predictions where class 6 is absent from y_true and class 5 from both."""
    rng = np.random.default_rng(0)
    y_true = rng.choice([0, 1, 2, 3, 4], size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.choice([0, 1, 2, 3, 4, 6], size=200))
    return y_true, y_pred


@pytest.fixture
def au_data():
    rng = np.random.default_rng(1)
    true = (rng.random((120, 4)) < 0.3).astype(np.float32)
    probs = np.clip(true * 0.5 + rng.random((120, 4)) * 0.6, 0, 1)
    mask = (rng.random((120, 4)) < 0.8).astype(np.float32)
    return true, probs, mask  # (y_true, y_pred, mask)


def test_confusion_matrix_matches_sklearn(labels):
    y_true, y_pred = labels
    expected = skm.confusion_matrix(y_true, y_pred, labels=range(NUM_CLASSES))
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, NUM_CLASSES), expected)


def test_accuracy_matches_sklearn(labels):
    assert metrics.accuracy(*labels) == pytest.approx(skm.accuracy_score(*labels))


def test_mean_diagonal_is_macro_recall_over_classes_present(labels):
    y_true, y_pred = labels
    expected = skm.recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro")
    assert metrics.mean_diagonal(y_true, y_pred) == pytest.approx(expected)


def test_per_class_accuracy_of_a_hand_made_confusion_matrix():
    # true 0: 3 faces, 2 right; true 1: 2 faces, none right; true 2: 1 face, right;
    # class 3 never true (predicted once): no accuracy.
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 3, 0, 2, 2]
    values = metrics.per_class_accuracy(y_true, y_pred, 4)
    np.testing.assert_allclose(values[:3], [2 / 3, 0.0, 1.0])
    assert np.isnan(values[3])


def test_per_class_accuracy_is_sklearn_recall_per_class(labels):
    y_true, y_pred = labels
    present = np.unique(y_true)
    expected = skm.recall_score(y_true, y_pred, labels=present, average=None)
    values = metrics.per_class_accuracy(y_true, y_pred, NUM_CLASSES)
    np.testing.assert_allclose(values[present], expected)
    assert np.isnan(values[[5, 6]]).all()
    assert np.nanmean(values) == pytest.approx(metrics.mean_diagonal(y_true, y_pred))


def test_mean_diagonal_excludes_classes_absent_from_truth():
    # Class 0: 1/2 right, class 1: 2/2 right, class 2 only predicted -> (0.5 + 1) / 2.
    assert metrics.mean_diagonal([0, 0, 1, 1], [0, 2, 1, 1]) == pytest.approx(0.75)


def test_uar_matches_sklearn_recall(labels):
    y_true, y_pred = labels
    expected = skm.recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro")
    assert metrics.uar(y_true, y_pred) == pytest.approx(expected)


def test_macro_f1_averages_over_full_class_list(labels):
    y_true, y_pred = labels
    expected = skm.f1_score(
        y_true, y_pred, labels=range(NUM_CLASSES), average="macro", zero_division=0
    )
    assert metrics.macro_f1(y_true, y_pred, NUM_CLASSES) == pytest.approx(expected)


def test_macro_f1_rejects_class_index_out_of_range():
    with pytest.raises(ValueError, match="num_classes=3"):
        metrics.macro_f1([0, 1, 3], [0, 1, 2], 3)


def test_accuracy_rejects_length_mismatch():
    with pytest.raises(ValueError, match="shape"):
        metrics.accuracy([0, 1, 2], [0, 1])


def test_accuracy_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        metrics.accuracy([0.0, np.nan], [0, 1])


def _masked_columns(true, probs, mask):
    for k in range(true.shape[1]):
        keep = mask[:, k] > 0
        yield true[keep, k], (probs[keep, k] >= 0.5).astype(int)


def test_au_f1_matches_sklearn_per_masked_column(au_data):
    expected = np.mean(
        [skm.f1_score(t, p, zero_division=0) for t, p in _masked_columns(*au_data)]
    )
    assert metrics.au_f1(*au_data) == pytest.approx(expected)


def test_au_f1_takes_sklearn_argument_order_and_keywords():
    # Without a mask, one AU column: exactly sklearn's f1_score(y_true, y_pred).
    rng = np.random.default_rng(3)
    y_true = (rng.random(50) < 0.4).astype(int)
    y_pred = (rng.random(50) < 0.5).astype(int)
    expected = skm.f1_score(y_true, y_pred)
    assert metrics.au_f1(y_true[:, None], y_pred[:, None]) == pytest.approx(expected)
    assert metrics.au_f1(y_pred=y_pred[:, None], y_true=y_true[:, None]) == pytest.approx(expected)


def test_au_metrics_refuse_probabilities_passed_as_y_true(au_data):
    true, probs, mask = au_data
    with pytest.raises(ValueError, match="y_true"):
        metrics.au_f1(probs, true, mask)


def test_au_f1_reports_nan_for_an_au_without_annotation(au_data):
    true, probs, mask = au_data
    mask = mask.copy()
    mask[:, 2] = 0
    per_au = metrics.au_f1(true, probs, mask, per_au=True)
    assert np.isnan(per_au[2])
    assert metrics.au_f1(true, probs, mask) == pytest.approx(np.nanmean(per_au))


def test_au_accuracy_matches_sklearn_per_masked_column(au_data):
    expected = np.mean([skm.accuracy_score(t, p) for t, p in _masked_columns(*au_data)])
    assert metrics.au_accuracy(*au_data) == pytest.approx(expected)


def test_afa_is_mean_of_au_f1_and_au_accuracy(au_data):
    columns = list(_masked_columns(*au_data))
    f1 = np.mean([skm.f1_score(t, p, zero_division=0) for t, p in columns])
    acc = np.mean([skm.accuracy_score(t, p) for t, p in columns])
    assert metrics.afa(*au_data) == pytest.approx((f1 + acc) / 2)


def test_au_f1_rejects_non_binary_labels():
    with pytest.raises(ValueError, match="0/1"):
        metrics.au_f1(np.array([[0.0], [3.0]]), np.zeros((2, 1)))


def test_ccc_hand_worked_example():
    # x = 1..4, y = x + 1: var_x = var_y = cov = 1.25, mean gap 1 -> 2.5 / 3.5.
    assert metrics.ccc([1, 2, 3, 4], [2, 3, 4, 5]) == pytest.approx(5 / 7)


def _ccc_from_definition(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


# Two batches, each predicted with an offset of +1 / -1: poor within a batch, good overall.
BATCHES = [([0.0, 1.0], [1.0, 2.0]), ([10.0, 11.0], [9.0, 10.0])]


def test_whole_set_ccc_differs_from_mean_of_batch_cccs():
    per_batch = np.mean([_ccc_from_definition(t, p) for t, p in BATCHES])
    whole_true = np.concatenate([t for t, _ in BATCHES])
    whole_pred = np.concatenate([p for _, p in BATCHES])
    whole = metrics.ccc(whole_true, whole_pred)
    assert per_batch == pytest.approx(1 / 3)
    assert whole == pytest.approx(_ccc_from_definition(whole_true, whole_pred))
    assert whole - per_batch > 0.5


def test_keras_ccc_metric_averages_per_batch_values():
    keras = pytest.importorskip("keras")
    metric = keras.metrics.ConcordanceCorrelation()
    for y_true, y_pred in BATCHES:
        metric.update_state(np.array(y_true), np.array(y_pred))
    assert float(metric.result()) == pytest.approx(1 / 3, abs=1e-4)


def test_ccc_rejects_constant_identical_inputs():
    with pytest.raises(ValueError, match="undefined"):
        metrics.ccc([0.5, 0.5], [0.5, 0.5])


def _hand_made_shape():
    """68 points; eye centres at (30, 40) and (70, 40), outer corners 36=(20,40), 45=(80,40)."""
    shape = np.tile([50.0, 60.0], (68, 1))
    shape[36:42] = [[20, 40], [25, 37], [35, 37], [40, 40], [35, 43], [25, 43]]
    shape[42:48] = [[60, 40], [65, 37], [75, 37], [80, 40], [75, 43], [65, 43]]
    return shape


def test_nme_inter_pupil_of_a_uniform_shift():
    true = _hand_made_shape()
    # Every point off by (3, 4): error 5 px, eye centres 40 px apart -> 12.5 %.
    assert metrics.nme(true, true + [3.0, 4.0], "inter_pupil") == pytest.approx(12.5)


def test_nme_inter_ocular_of_a_uniform_shift():
    true = _hand_made_shape()
    # Outer corners 60 px apart -> 5 / 60 = 8.33 %.
    assert metrics.nme(true, true + [3.0, 4.0], "inter_ocular") == pytest.approx(500 / 60)


def test_nme_per_image_then_averaged():
    true = np.stack([_hand_made_shape(), _hand_made_shape() * 2])
    pred = true + np.array([[[3.0, 4.0]], [[3.0, 4.0]]])
    # Image 2 has twice the eye distance (80 px) -> 6.25 %.
    assert metrics.nme(true, pred, per_image=True) == pytest.approx([12.5, 6.25])
    assert metrics.nme(y_pred=pred, y_true=true) == pytest.approx((12.5 + 6.25) / 2)


def test_nme_normalises_by_the_true_shape_not_the_prediction():
    true = _hand_made_shape()
    pred = _hand_made_shape() * 2  # eye centres 80 px apart in the prediction only
    error = np.linalg.norm(pred - true, axis=-1).mean()
    assert metrics.nme(true, pred) == pytest.approx(error / 40 * 100)


def _numpy_inter_pupil_nme(true, pred):
    """Per image: mean point error / distance of the eye centres (means of 36-41, 42-47)."""
    centres = true[:, 36:42].mean(axis=1) - true[:, 42:48].mean(axis=1)
    error = np.sqrt(((pred - true) ** 2).sum(-1)).mean(-1)
    return 100 * error / np.sqrt((centres ** 2).sum(-1))


def test_nme_per_image_in_tf_matches_the_definition():
    rng = np.random.default_rng(5)
    true = _hand_made_shape()[None] * rng.uniform(0.5, 2, (4, 1, 1)) + rng.normal(0, 2, (4, 68, 2))
    pred = true + rng.normal(0, 3, true.shape)
    got = metrics.nme_per_image(true, pred).numpy()
    np.testing.assert_allclose(got, _numpy_inter_pupil_nme(true, pred), rtol=1e-5)
    flat = metrics.nme_per_image(true.reshape(4, 136), pred.reshape(4, 136)).numpy()
    np.testing.assert_allclose(flat, got, rtol=1e-6)
    io = metrics.nme_per_image(true, pred, "inter_ocular").numpy()
    np.testing.assert_allclose(io, metrics.nme(true, pred, "inter_ocular", per_image=True),
                               rtol=1e-5)


def test_nme_metric_streams_the_masked_mean_over_batches_in_a_compiled_step():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(6)
    true = _hand_made_shape()[None] + rng.normal(0, 2, (6, 68, 2))
    pred = true + rng.normal(0, 3, true.shape)
    mask = np.array([1, 1, 0, 1, 0, 1], np.float32)
    true[2] = 0.0  # a padding row: no label, zero normaliser
    metric = metrics.NormalizedMeanError()

    @tf.function
    def update(t, p, m):
        metric.update_state(t, p, sample_weight=m)

    for rows in (slice(0, 3), slice(3, 6)):
        update(true[rows], pred[rows], mask[rows])
    keep = mask > 0
    expected = _numpy_inter_pupil_nme(true[keep], pred[keep]).mean()
    assert metric.name == "nme_inter_pupil"
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)


def test_nme_metric_round_trips_through_keras_serialisation():
    keras = pytest.importorskip("keras")
    metric = metrics.NormalizedMeanError("inter_ocular", name="val_nme")
    revived = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(revived, metrics.NormalizedMeanError)
    assert revived.get_config() == metric.get_config()


def test_nme_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="normalization"):
        metrics.NormalizedMeanError("inter_canthal")


def test_nme_rejects_wrong_landmark_count():
    with pytest.raises(ValueError, match="68"):
        metrics.nme(np.zeros((2, 5, 2)), np.zeros((2, 5, 2)))


def test_nme_rejects_nan():
    pred = _hand_made_shape()
    pred[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.nme(_hand_made_shape(), pred)


def test_median_filter_by_sequence_smooths_each_video_in_frame_order():
    # Rows are shuffled and two videos are interleaved.
    values = [5.0, 100.0, 1.0, 7.0, 3.0, 200.0, 9.0]
    sequence = ["a", "b", "a", "a", "a", "b", "a"]
    frames = [2, 0, 0, 3, 1, 1, 4]
    # Video a in frame order: 1, 3, 5, 7, 9 -> window 3 medians: 2, 3, 5, 7, 8.
    # Video b: 100, 200 -> 150, 150.
    smoothed = metrics.median_filter_by_sequence(values, sequence, frames, window=3)
    np.testing.assert_allclose(smoothed, [5.0, 150.0, 2.0, 7.0, 3.0, 150.0, 8.0])


def test_median_filter_rejects_even_window():
    with pytest.raises(ValueError, match="odd"):
        metrics.median_filter_by_sequence([1.0, 2.0], ["a", "a"], [0, 1], window=2)
