"""FaceBehaviorNet (Kollias et al.): heads, Eq. 2 training with couplings, zero-shot Eq. 8."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data.pipeline import drop_task_labels
from fermtl_tf.experiments.config import parse_config
from fermtl_tf.export import export_saved_model
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.methods.facebehaviornet.model import FaceBehaviorNet
from fermtl_tf.methods.facebehaviornet.zero_shot import (
    candidate_scores,
    compound_au_table,
    zero_shot_predict,
)

SIZE = 32
DATA_AUS = ["AU12", "AU1", "AU43"]  # a dataset's columns; AU43 is not a model AU
MODEL_AUS = ("AU1", "AU4", "AU12")
COUPLINGS = ["none", "co_annotation", "soft_co_annotation", "distribution_matching", "sca_dm"]


def small_model(coupling="none", heads=None, **kwargs):
    keras.utils.set_random_seed(0)
    return FaceBehaviorNet(heads or {"expression": 7, "au": 3, "va": 2}, au_names=MODEL_AUS,
                           label_au_names=DATA_AUS, width=4, input_size=SIZE,
                           coupling={"name": coupling}, **kwargs)


def source(n, seed, **labels):
    """A batch dict of ``n`` unlabelled images, with ``labels`` overriding the fillers."""
    rng = np.random.default_rng(seed)
    batch = {"image": rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32"),
             "expression": np.zeros(n, "int32"), "expression_mask": np.zeros(n, "float32"),
             "au": np.zeros((n, 3), "float32"), "au_mask": np.zeros((n, 3), "float32"),
             "au_intensity": np.zeros((n, 3), "float32"),
             "valence": np.zeros(n, "float32"), "arousal": np.zeros(n, "float32"),
             "va_mask": np.zeros(n, "float32")}
    batch.update({k: np.asarray(v, batch[k].dtype) for k, v in labels.items()})
    return batch


def three_sources():
    """One VA, one AU and one expression batch (FaceBehaviorNet §4.4), 4 images each."""
    return {"va": source(4, 0, valence=[-.5, .1, .4, .8], arousal=[.3, -.2, .6, 0.],
                         va_mask=np.ones(4)),
            "au": source(4, 1, au=[[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]],
                         au_mask=np.ones((4, 3))),
            "expr": source(4, 2, expression=[1, 4, 6, 2], expression_mask=np.ones(4))}


# --- zero-shot (Eq. 8) ---------------------------------------------------------------


def test_zero_shot_score_matches_a_hand_computed_example():
    table = {"happily_surprised": {"AU12": 0.5, "AU25": 1.0}, "sadly_angry": {"AU4": 1.0}}
    probs = np.array([[0.1, 0.1, 0.0, 0.0, 0.5, 0.1, 0.2]] * 2)  # BASIC7 order
    au_probs = np.array([[0.8, 0.3, 0.6]] * 2)                  # AU12, AU4, AU25
    scores = candidate_scores(probs, au_probs, [0.4, -0.2],
                              classes=["happily_surprised", "sadly_angry"],
                              au_names=("AU12", "AU4", "AU25"), au_table=table)
    # HS: I = (0.8*0.5 + 0.6*1)/1.5, F = 0.5 + 0.2, D = 1 (valence > 0) / 0
    # SA: I = 0.3, F = sadness 0.1 + anger 0.1, no D term
    expected = [[(0.4 + 0.6) / 1.5 + 0.7 + 1.0, 0.3 + 0.2],
                [(0.4 + 0.6) / 1.5 + 0.7, 0.3 + 0.2]]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_zero_shot_basic_class_counts_its_emotion_twice():
    probs = np.zeros((1, 7))
    probs[0, BASIC7.index("happiness")] = 0.3
    scores = candidate_scores(probs, np.zeros((1, 1)), [-1.0], classes=["happiness"],
                              au_names=("AU12",))
    assert scores[0, 0] == pytest.approx(0.6)


def test_zero_shot_predicts_the_largest_score():
    probs = np.zeros((1, 7))
    probs[0, BASIC7.index("sadness")] = probs[0, BASIC7.index("anger")] = 0.5
    predicted = zero_shot_predict(probs, np.zeros((1, 17)), [-0.5])
    assert predicted[0] == 3  # sadly_angry in RAF-DB's native order


def test_compound_table_uses_mml_rows_and_table1_for_basic_classes():
    table, origin = compound_au_table(["happily_surprised", "anger"])
    assert origin == {"happily_surprised": "mml_compound_wild", "anger": "table1_cognitive"}
    assert table["anger"]["AU4"] == 1.0 and table["anger"]["AU10"] == pytest.approx(0.26)


# --- model ---------------------------------------------------------------------------


def test_heads_have_the_paper_shapes():
    model = small_model()
    outputs = model(np.zeros((2, SIZE, SIZE, 3), "float32"))
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert shapes == {"expression_logits": (2, 7), "au_logits": (2, 3), "valence": (2,),
                      "arousal": (2,)}


def test_source_aus_are_mapped_by_name_and_missing_ones_masked():
    batch = small_model().map_aus({"au": np.array([[1., 0., 1.]]),
                                   "au_mask": np.array([[1., 1., 1.]])})
    # model AU1 <- data column 1 (0), AU4 absent (mask 0), AU12 <- data column 0 (1)
    np.testing.assert_array_equal(batch["au"].numpy(), [[0., 0., 1.]])
    np.testing.assert_array_equal(batch["au_mask"].numpy(), [[1., 0., 1.]])


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_one_fit_step_on_three_sources_gives_finite_losses(coupling):
    model = small_model(coupling)
    model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
    before = [w.numpy().copy() for w in model.trainable_weights]
    dataset = tf.data.Dataset.from_tensors(three_sources())
    history = model.fit(dataset, epochs=1, verbose=0).history
    expected = {"expression_loss", "au_loss", "va_loss"}
    expected |= {"soft_co_annotation": {"soft_co_annotation_loss"},
                 "distribution_matching": {"distribution_matching_loss"},
                 "sca_dm": {"soft_co_annotation_loss", "distribution_matching_loss"}
                 }.get(coupling, set())
    assert expected <= set(history)
    assert all(np.isfinite(v[0]) for v in history.values())
    after = model.trainable_weights
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, after, strict=True))


def _total_loss(model, batch):
    batch = model.prepare_batch(tf.nest.map_structure(tf.convert_to_tensor, batch))
    outputs = model(batch["image"], training=False)
    return float(model.combine_losses(model.compute_task_losses(batch, outputs)))


def test_an_unlabelled_sample_changes_nothing_in_the_total_loss():
    model = small_model("soft_co_annotation")
    sources = three_sources()
    with_extra = dict(sources, extra=source(1, 3))  # every mask 0
    assert _total_loss(model, with_extra) == pytest.approx(_total_loss(model, sources),
                                                           rel=1e-6)


def test_keras_round_trip_keeps_outputs_and_config(tmp_path):
    model = small_model("sca_dm")
    images = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    model.save(tmp_path / "fbn.keras")
    loaded = keras.models.load_model(tmp_path / "fbn.keras")
    assert isinstance(loaded, FaceBehaviorNet) and loaded.coupling["name"] == "sca_dm"
    for name, value in model(images).items():
        np.testing.assert_allclose(loaded(images)[name], value, atol=1e-6)


LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    arrays = np.load(sys.argv[2])
    served = loaded.serve(tf.constant(arrays["raw"]))
    assert "fermtl_tf" not in sys.modules
    assert sorted(served) == ["arousal", "au_probs", "expression_probs", "valence"]
    np.testing.assert_allclose(served["valence"].numpy(), arrays["valence"], atol=1e-5)
    np.testing.assert_allclose(served["au_probs"].numpy(), arrays["au_probs"], atol=1e-5)
    print("SERVED_EQUAL")
""")


def test_export_serves_all_heads_without_fermtl_tf(tmp_path):
    model = small_model()
    raw = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    outputs = model(raw / 127.5 - 1.0, training=False)
    np.savez(tmp_path / "expected.npz", raw=raw, valence=outputs["valence"].numpy(),
             au_probs=1 / (1 + np.exp(-outputs["au_logits"].numpy().astype("float64"))))
    export_dir = export_saved_model(model, tmp_path / "saved", input_size=(SIZE, SIZE),
                                    normalization="minus_one_one",
                                    metadata={"au_names": list(MODEL_AUS)})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(export_dir),
                          str(tmp_path / "expected.npz")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert "SERVED_EQUAL" in run.stdout, run.stderr[-2000:]


def test_case_two_distribution_matching_uses_the_given_relatedness():
    relatedness = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    model = small_model("distribution_matching", heads={"identity": 3, "attributes": 2},
                        attribute_relatedness=relatedness)
    outputs = model(np.zeros((2, SIZE, SIZE, 3), "float32"))
    assert sorted(outputs) == ["attributes_logits", "identity_logits"]
    np.testing.assert_array_equal(model.distribution_matching.matrix.numpy(), relatedness)


# --- data and config -----------------------------------------------------------------


def test_keep_tasks_unlabels_every_other_task():
    example = {"expression": tf.constant(3), "expression_mask": tf.constant(1.0),
               "va_mask": tf.constant(1.0), "au_mask": tf.ones(3),
               "identity": tf.constant(5, tf.int32)}
    kept = drop_task_labels(example, ("va",))
    assert float(kept["va_mask"]) == 1.0 and float(kept["expression_mask"]) == 0.0
    assert float(tf.reduce_sum(kept["au_mask"])) == 0.0 and int(kept["identity"]) == -1


def test_config_accepts_facebehaviornet_sections():
    config = parse_config({
        "output_dir": "runs/x", "data": {"train": [{"folder": "d", "keep_tasks": ["va"]}]},
        "backbone": {"name": "facebehaviornet", "width": 8},
        "tasks": {"expression": {}, "au": {}, "va": {}}, "method": {"name": "facebehaviornet"},
        "sharing": {"name": "hard"},
        "coupling": {"name": "sca_dm", "source": "affwild2"}})
    assert config.coupling.source == "affwild2" and config.data.train[0].keep_tasks == ["va"]


@pytest.mark.parametrize("form", ["bernoulli", "printed"])
def test_the_coupling_form_reaches_the_distribution_matching_loss(form):
    coupling = {"name": "distribution_matching", "source": "cognitive", "form": form}
    model = FaceBehaviorNet({"expression": 7, "au": 3, "va": 2}, au_names=MODEL_AUS, width=4,
                            input_size=32, coupling=coupling)
    assert model.distribution_matching.form == form
    revived = FaceBehaviorNet.from_config(model.get_config())
    assert revived.distribution_matching.form == form
