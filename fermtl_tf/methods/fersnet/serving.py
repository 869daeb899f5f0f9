"""FERSNet's second serving endpoint: ``synthesize(images, target_expression)``.

``fermtl_tf.export.export_saved_model`` serves the recognition branch (``serve(images) ->
{"expression_probs"}``, from ``FERSNetModel.call``). :func:`add_synthesis_endpoint` adds
synthesis to the same ``keras.export.ExportArchive``, with the same convention: raw
pixels 0-255 in, the normalisation inside the graph, raw pixels 0-255 out, so that a
consumer needs neither this package nor the training normalisation.
"""

import tensorflow as tf

from fermtl_tf.data.pipeline import normalize_images
from fermtl_tf.methods.fersnet.model import to_unit_range


def synthesis_endpoint(model, normalization):
    """``fn(images [N, H, W, 3] 0-255, target_expression int32 [N]) -> {"images"}``."""

    def synthesize(images, target_expression):
        synthetic = model.synthesize(normalize_images(images, normalization), target_expression)
        return {"images": to_unit_range(synthetic, normalization) * 255.0}

    return synthesize


def add_synthesis_endpoint(archive, model, input_size, normalization):
    """Add ``synthesize`` to ``archive`` (which must track ``model``)."""
    height, width = input_size
    return archive.add_endpoint(
        "synthesize", synthesis_endpoint(model, normalization),
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="images"),
                         tf.TensorSpec([None], tf.int32, name="target_expression")],
    )
