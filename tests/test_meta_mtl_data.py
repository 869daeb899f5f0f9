"""MML end to end: prepared folder -> train part + held-out meta quarter -> fit -> export."""

import numpy as np
import tensorflow as tf
from test_meta_mtl_model import conv_backbone
from test_pipeline import AU_NAMES, make_records, write_folder

from fermtl_tf.data.pipeline import make_multi_source_dataset
from fermtl_tf.export import export_saved_model
from fermtl_tf.knowledge.vocabularies import RAFCE14
from fermtl_tf.methods.meta_mtl.au_statistics import relatedness_table
from fermtl_tf.methods.meta_mtl.build import serving_model
from fermtl_tf.methods.meta_mtl.model import MetaMTLModel

CLASSES = list(RAFCE14[:7])  # make_records labels expressions 0..6


def test_fit_with_meta_quarter_then_export_serves_expression_probabilities(tmp_path):
    folder = write_folder(str(tmp_path / "prepared"),
                          make_records(40, seed=2, split_of=lambda i: "train"))
    quarter = {"fraction": 0.25, "seed": 0}
    dataset = make_multi_source_dataset(
        {"train": dict(folder=folder, batch_size=4, holdout={**quarter, "part": "rest"}),
         "meta": dict(folder=folder, batch_size=4, holdout={**quarter, "part": "holdout"})},
        image_size=(16, 16), seed=0, deterministic=True)
    model = MetaMTLModel(conv_backbone(), len(CLASSES), len(AU_NAMES),
                         relatedness=relatedness_table(CLASSES, AU_NAMES))
    model.compile()
    history = model.fit(dataset, validation_data=dataset.map(lambda step: step["meta"]),
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert "val_expression_accuracy" in history.history
    assert "val_meta_emo_loss" not in history.history  # the look-ahead loss is training-only
    assert model.meta_optimizer.iterations.numpy() == int(dataset.cardinality())

    exported = export_saved_model(serving_model(model), tmp_path / "export", input_size=16,
                                  normalization="minus_one_one")
    loaded = tf.saved_model.load(str(exported))  # keep a reference: it owns the variables
    served = loaded.serve(tf.random.uniform((3, 16, 16, 3), 0, 255))
    assert set(served) == {"expression_probs"}
    np.testing.assert_allclose(tf.reduce_sum(served["expression_probs"], -1), 1.0, rtol=1e-5)
