"""FERSNet export: recognition and synthesis endpoints served from one SavedModel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data.pipeline import normalize_images
from fermtl_tf.export import serving_outputs
from fermtl_tf.methods.fersnet.model import FERSNetModel
from fermtl_tf.methods.fersnet.serving import add_synthesis_endpoint

TINY = dict(num_classes=3, image_size=(32, 32), encoder_widths=[4, 8, 8, 8],
            decoder_widths=[8, 8, 4, 4], classifier_units=8, transformer_channels=4,
            discriminator_widths=[4, 8, 8, 8])


@pytest.mark.slow
def test_saved_model_serves_recognition_and_synthesis(tmp_path):
    """The ``serve`` endpoint as ``fermtl_tf.export`` builds it, plus ``synthesize``."""
    model = FERSNetModel(**TINY)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda images: serving_outputs(model(normalize_images(images, "minus_one_one"))),
        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    add_synthesis_endpoint(archive, model, (32, 32), "minus_one_one")
    archive.write_out(str(tmp_path / "export"), verbose=False)
    del archive

    loaded = tf.saved_model.load(str(tmp_path / "export"))
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    normalised = pixels / 127.5 - 1.0
    probs = tf.nn.softmax(model(normalised)["expression_logits"])
    np.testing.assert_allclose(loaded.serve(pixels)["expression_probs"], probs, rtol=1e-5,
                               atol=1e-6)
    targets = np.array([2, 0], "int32")
    synthetic = model.synthesize(normalised, targets).numpy()
    np.testing.assert_allclose(loaded.synthesize(pixels, targets)["images"],
                               (synthetic + 1.0) * 127.5, rtol=1e-4, atol=1e-3)
