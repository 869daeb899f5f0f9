"""MML reports (Li et al. 2023): Fig. 5's weight curves from history.csv and TensorBoard."""

import glob

import keras
import numpy as np
import tensorflow as tf
from test_meta_mtl_model import conv_backbone, conv_model, tiny_data, two_source_dataset

from fermtl_tf.methods.meta_mtl.au_statistics import relatedness_table
from fermtl_tf.methods.meta_mtl.build import callbacks
from fermtl_tf.methods.meta_mtl.model import MetaMTLModel
from fermtl_tf.methods.meta_mtl.weight_curves import (
    WEIGHTS_PNG,
    WeightCurvesCallback,
    plot_weight_curves,
    read_weight_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_read_weight_curves_keeps_training_omegas_in_epoch_order(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,omega_am,omega_au,val_omega_au\n"
                       "0,3.0,0.5,0.45,0.1\n1,2.0,NA,0.55,0.2\n2,1.0,0.75,0.6,0.3\n")
    epochs, curves = read_weight_curves(history)
    np.testing.assert_array_equal(epochs, [0, 1, 2])
    assert sorted(curves) == ["am", "au"]  # not val_omega_au
    np.testing.assert_allclose(curves["au"], [0.45, 0.55, 0.6])
    np.testing.assert_allclose(curves["am"], [0.5, np.nan, 0.75])
    path = plot_weight_curves(history, tmp_path / "plot" / "w.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_no_meta_weight_no_plot(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,1.0\n")
    assert plot_weight_curves(history, tmp_path / "w.png") is None
    assert not (tmp_path / "w.png").exists()


def fit_with_logs(model, folder, epochs=2):
    keras_callbacks = [keras.callbacks.CSVLogger(str(folder / "history.csv")),
                       keras.callbacks.TensorBoard(log_dir=str(folder / "logs")),
                       *callbacks(model, None, folder)]
    model.fit(two_source_dataset(), epochs=epochs, verbose=0, callbacks=keras_callbacks)
    tags = {}
    for path in glob.glob(str(folder / "logs" / "train" / "*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(tf.make_ndarray(value.tensor))
    return read_weight_curves(folder / "history.csv"), tags


def test_frozen_meta_net_logs_one_half_to_csv_and_tensorboard(tmp_path):
    """With beta = 0 the zero-initialised meta net gives every sample 0.5 (§5.2), so each
    epoch's mean weight is exactly 0.5 in history.csv and in TensorBoard."""
    relatedness = relatedness_table(tiny_data().expression_vocabulary, tiny_data().au_names)
    model = MetaMTLModel(conv_backbone(), 3, 4, relatedness=relatedness,
                         learning_rates={"meta": 0.0})
    model.compile()
    (epochs, curves), tags = fit_with_logs(model, tmp_path)
    np.testing.assert_array_equal(epochs, [0, 1])
    assert sorted(curves) == ["am", "au"]
    for term in ("au", "am"):
        np.testing.assert_allclose(curves[term], [0.5, 0.5])
        np.testing.assert_allclose(tags[f"epoch_omega_{term}"], [0.5, 0.5])
    assert (tmp_path / WEIGHTS_PNG).read_bytes()[:8] == PNG_MAGIC


def test_learning_meta_net_moves_the_logged_weights(tmp_path):
    (_, curves), tags = fit_with_logs(conv_model(), tmp_path)
    for term in ("au", "am"):
        assert np.all((curves[term] > 0) & (curves[term] < 1))
        assert np.any(curves[term] != 0.5)  # psi moved (slightly, two steps)
        np.testing.assert_allclose(tags[f"epoch_omega_{term}"], curves[term], rtol=1e-6)
    assert (tmp_path / WEIGHTS_PNG).read_bytes()[:8] == PNG_MAGIC


def test_plain_variants_have_no_weight_callback(tmp_path):
    model = conv_model()
    model.meta_terms = ()
    assert callbacks(model, None, tmp_path) == []
    assert isinstance(callbacks(conv_model(), None, tmp_path)[0], WeightCurvesCallback)
