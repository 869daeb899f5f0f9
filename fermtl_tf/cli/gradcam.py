"""``fermtl-eval --gradcam``: Grad-CAM overlays of a trained run's ``model.keras``
(Li et al. 2023 Fig. 4; the maps themselves: :mod:`fermtl_tf.evaluation.gradcam`).

The model is the run folder's ``model.keras`` (gradients of the training model; the
exported SavedModel is not used). The run's ``config.yaml`` beside it names the method
(whose classes must be registered to load the file) and the input normalisation
(``--normalization`` overrides it). ``--gradcam N`` explains the first N records of the
selected split of ``--data``; ``--gradcam a.png b.jpg`` explains image files, resized to
the model's input. Writes ``<out>/gradcam/<name>.png`` (overlays) and ``sheet.png``
(faces above their overlays, titled with the explained class and, for records, the true
one).
"""

from pathlib import Path

import numpy as np
import yaml

from fermtl_tf.evaluation.runner import EvaluationInputError

GRADCAM_DIR = "gradcam"
SHEET = "sheet.png"


def _run_config(model_path):
    path = Path(model_path).parent / "config.yaml"
    if not path.is_file():
        raise EvaluationInputError(f"--gradcam: no run config beside the model: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise EvaluationInputError(f"--gradcam: malformed YAML in {path}: {error}") from None


def load_run_model(model_path):
    """``(keras model, run config dict)`` of a run's ``model.keras``."""
    import keras

    from fermtl_tf.methods import get_method

    model_path = Path(model_path)
    if model_path.suffix != ".keras" or not model_path.is_file():
        raise EvaluationInputError(f"--gradcam needs a run's .keras model file "
                                   f"(e.g. runs/x/model.keras), got: {model_path}")
    config = _run_config(model_path)
    method = (config.get("method") or {}).get("name")
    try:
        get_method(method).resolve("builder")  # imports and registers the method's classes
    except KeyError as error:
        raise EvaluationInputError(f"--gradcam: {model_path.parent}/config.yaml: "
                                   f"method {method!r}: {error}") from None
    return keras.saving.load_model(model_path, compile=False), config


def _record_inputs(data_dir, count, split, image_size):
    """The first ``count`` records: (raw images uint8, names, titles' true classes)."""
    from fermtl_tf.data.pipeline import load_manifest, make_dataset

    dataset = make_dataset(data_dir, split=split, batch_size=count, image_size=image_size,
                           training=False, normalization="none", keep_metadata=True)
    batch = next(iter(dataset), None)
    if batch is None:
        raise EvaluationInputError(f"--gradcam: no record selected in {data_dir}")
    classes = load_manifest(data_dir).get("vocabularies", {}).get("expression", [])
    images = np.uint8(np.clip(batch["image"].numpy(), 0, 255))
    names = [f"{i:03d}_" + Path(v.decode()).stem for i, v in enumerate(batch["image_id"].numpy())]
    truth = [classes[int(c)] if m > 0 and classes else "" for c, m in
             zip(batch["expression"].numpy(), batch["expression_mask"].numpy(), strict=True)]
    return images, names, truth, classes


def _file_inputs(paths, image_size):
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EvaluationInputError(f"--gradcam: cannot read image {path}")
        image = cv2.resize(image, (image_size[1], image_size[0]), interpolation=cv2.INTER_AREA)
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.stack(images), [Path(p).stem for p in paths], [""] * len(paths)


def run_gradcam(model_path, targets, out_dir, data_dir=None, split="test", layer=None,
                normalization=None):
    """Write the overlays and the sheet; returns ``(overlay paths, sheet path)``.

    ``targets``: ``[N]`` (an int: first N records of ``data_dir``) or image paths.
    """
    from fermtl_tf.data.pipeline import normalize_images
    from fermtl_tf.evaluation.gradcam import cam_model, gradcam, write_overlays, write_sheet

    model, config = load_run_model(model_path)
    normalization = normalization or (config.get("data") or {}).get("normalization")
    if normalization is None:
        raise EvaluationInputError(f"--gradcam: {Path(model_path).parent}/config.yaml names "
                                   f"no data.normalization; pass --normalization")
    try:
        cam = cam_model(model, layer)
    except ValueError as error:
        raise EvaluationInputError(str(error)) from None
    image_size = tuple(cam.input_shape[1:3])
    classes = []
    if len(targets) == 1 and str(targets[0]).isdigit():
        if data_dir is None:
            raise EvaluationInputError("--gradcam N explains records: give --data")
        images, names, truth, classes = _record_inputs(data_dir, int(targets[0]), split,
                                                       image_size)
    else:
        images, names, truth = _file_inputs(targets, image_size)
    inputs = normalize_images(images.astype(np.float32), normalization)
    cams, explained = gradcam(cam, inputs)
    label = [classes[c] if classes else str(c) for c in explained]
    titles = [f"{e}\n(true {t})" if t else e for e, t in zip(label, truth, strict=True)]
    out_dir = Path(out_dir) / GRADCAM_DIR
    paths = write_overlays(images, cams, names, out_dir)
    return paths, write_sheet(images, cams, titles, out_dir / SHEET)
