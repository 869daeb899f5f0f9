"""SavedModel export: raw pixels in, a dict of named, post-processed outputs out.

The exported directory is a Keras 3 ``ExportArchive`` SavedModel with one endpoint,
``serve`` (also the ``serving_default`` signature)::

    serve(images: float32 [N, H, W, 3], raw pixel values 0-255)
      -> {"expression_probs": [N, C], "landmarks": [N, 68, 2], "au_probs": [N, K], ...}

The preprocessing and normalisation of ``fermtl_tf.data.pipeline.model_inputs`` (pure TF
ops: grayscale, histogram equalisation, plane fitting, then ``normalize_images``) are part
of the graph, so a consumer needs neither this package nor to know the training
normalisation: ``tf.saved_model.load(path).serve(images)``. Landmarks are (x, y) in
(0, 1) coordinates of the input image (the linear head is not clipped). Beside the
SavedModel, ``fermtl_export.json`` records ``input_size`` [h, w], ``normalization``,
``preprocess`` (the steps on, or null), ``centre_crop`` (the fraction of the stored face
whose centre window, resized to ``input_size``, the model takes: that of its training
random crops; null for the whole face; ``fermtl-eval`` cuts it),
``outputs`` (names), ``expression_vocabulary``, ``au_names`` and ``package_version``.
"""

import dataclasses
import json
from pathlib import Path

import keras
import tensorflow as tf

import fermtl_tf
from fermtl_tf.data.pipeline import NORMALIZATION_MODES, model_inputs
from fermtl_tf.data.preprocess import as_preprocess_config

METADATA_FILE = "fermtl_export.json"

#: Model output name -> (serving name, post-processing).
SERVING_OUTPUTS = {
    "expression_logits": ("expression_probs", tf.nn.softmax),
    "au_logits": ("au_probs", tf.sigmoid),
    "landmarks": ("landmarks", tf.identity),
    "valence": ("valence", tf.identity),
    "arousal": ("arousal", tf.identity),
}


def serving_outputs(outputs):
    """Map the model's output dict to the serving dict (probabilities, float32).

    Outputs without an entry in :data:`SERVING_OUTPUTS` keep their name and values.
    """
    served = {}
    for name, value in outputs.items():
        serving_name, transform = SERVING_OUTPUTS.get(name, (name, tf.identity))
        served[serving_name] = transform(tf.cast(value, tf.float32))
    return served


def _input_size(input_size):
    if isinstance(input_size, int):
        return input_size, input_size
    height, width = (int(v) for v in input_size)
    return height, width


def export_saved_model(model, export_dir, *, input_size, normalization, metadata=None,
                       add_endpoints=None, preprocess=None, centre_crop=None):
    """Export ``model`` for serving at ``export_dir``; returns the directory as a Path.

    Args:
        model: a model mapping normalised images to a dict of named outputs.
        export_dir: directory to write (the SavedModel and ``fermtl_export.json``).
        input_size: the model's input side or (height, width).
        normalization: the mode the model was trained with (see ``normalize_images``).
        metadata: optional dict; ``expression_vocabulary`` and ``au_names`` are
            recorded (empty lists when absent), other keys are copied as they are.
        add_endpoints: optional ``fn(archive)`` adding endpoints beside ``serve`` (a
            method's second signature, e.g. FERSNet's ``synthesize``).
        preprocess: the training data's ``data.preprocess`` (a dict, a
            ``PreprocessConfig`` or None), applied in-graph before ``normalization``.
        centre_crop: the training sources' ``augment.random_crop`` (or None), recorded so
            that the evaluator feeds the centre window as validation did.
    """
    if normalization not in NORMALIZATION_MODES:
        raise ValueError(f"unknown normalization {normalization!r}; "
                         f"known: {NORMALIZATION_MODES}")
    height, width = _input_size(input_size)
    export_dir = Path(export_dir)
    preprocess = as_preprocess_config(preprocess)

    def serve(images):
        return serving_outputs(model(model_inputs(images, normalization, preprocess),
                                     training=False))

    archive = keras.export.ExportArchive()
    archive.track(model)
    endpoint = archive.add_endpoint(
        "serve", serve,
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="images")],
    )
    if add_endpoints is not None:
        add_endpoints(archive)
    archive.write_out(str(export_dir), verbose=False)
    output_names = sorted(endpoint.get_concrete_function().structured_outputs)
    info = {
        **(metadata or {}),
        "input_size": [height, width],
        "normalization": normalization,
        "preprocess": dataclasses.asdict(preprocess) if preprocess else None,
        "centre_crop": centre_crop,
        "outputs": output_names,
        "expression_vocabulary": list((metadata or {}).get("expression_vocabulary", [])),
        "au_names": list((metadata or {}).get("au_names", [])),
        "package_version": fermtl_tf.__version__,
    }
    (export_dir / METADATA_FILE).write_text(json.dumps(info, indent=2))
    return export_dir
