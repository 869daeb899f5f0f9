"""Evaluate an exported SavedModel on a prepared dataset, the way a benchmark reports it.

The model is used only through its serving signature (``docs/ARCHITECTURE.md``):
``loaded.serve(images)`` with float32 raw pixels 0-255 at the input size recorded in
``<model_dir>/fermtl_export.json``. The records are selected as for training
(``split``, ``folds``, ``exclude_folds`` of :func:`fermtl_tf.data.pipeline.make_dataset`).
Every metric is computed once over the selection, on the samples whose label mask is 1
(``fermtl_tf.metrics``); with ``sequence_vote`` the expression metrics are computed per
sequence (:mod:`fermtl_tf.evaluation.sequences`). A metric that cannot be computed (the
model lacks the output, or no sample carries the label) is listed under
``results["skipped"]`` with the reason, never silently dropped. A k-fold protocol
evaluates each fold's model on its fold (:func:`evaluate_fold_models`) and reports the
mean and standard deviation over folds (:func:`evaluate_folds`).
"""

import functools
import json
import os

import numpy as np
import tensorflow as tf

from fermtl_tf import metrics
from fermtl_tf.data.pipeline import load_manifest, make_dataset
from fermtl_tf.evaluation import report
from fermtl_tf.evaluation.benchmarks import get_benchmark
from fermtl_tf.evaluation.sequences import vote_by_sequence

EXPORT_METADATA = "fermtl_export.json"
MANIFEST = "manifest.json"

_LABEL_KEYS = (
    "expression", "expression_mask", "landmarks", "landmarks_mask", "au", "au_mask",
    "valence", "arousal", "va_mask", "identity", "attributes", "attributes_mask",
    "image_id", "sequence_id", "frame_index",
)


class EvaluationInputError(ValueError):
    """A model or data folder that cannot be evaluated; the message names the path."""


class _Unavailable(Exception):
    """A task that cannot be scored on this model/dataset pair; the message says why."""


def read_export_metadata(model_dir):
    """``<model_dir>/fermtl_export.json`` as a dict, checked for the keys the runner needs."""
    if not os.path.isdir(model_dir):
        raise EvaluationInputError(f"model directory not found: {model_dir}")
    path = os.path.join(model_dir, EXPORT_METADATA)
    if not os.path.isfile(path):
        raise EvaluationInputError(f"no {EXPORT_METADATA} in model directory: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            export = json.load(handle)
    except json.JSONDecodeError as error:
        raise EvaluationInputError(f"malformed JSON in {path}: {error}") from None
    for key in ("input_size", "outputs"):
        if key not in export:
            raise EvaluationInputError(f"{path}: missing key {key!r}")
    if len(export["input_size"]) != 2:
        raise EvaluationInputError(f"{path}: 'input_size' must be [height, width]")
    return export


def read_dataset_manifest(data_dir):
    """The prepared dataset's ``manifest.json``; a missing folder or file names the path."""
    if not os.path.isdir(data_dir):
        raise EvaluationInputError(f"data directory not found: {data_dir}")
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.isfile(path):
        raise EvaluationInputError(f"no {MANIFEST} in data directory: {path}")
    try:
        return load_manifest(data_dir)
    except (KeyError, ValueError) as error:
        raise EvaluationInputError(str(error).strip("'\"")) from None


def _load_saved_model(model_dir):
    try:
        loaded = tf.saved_model.load(model_dir)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        message = f"cannot load SavedModel from {model_dir}: {first_line}"
        raise EvaluationInputError(message) from None
    if not hasattr(loaded, "serve"):
        raise EvaluationInputError(f"SavedModel in {model_dir} has no 'serve' function")
    return loaded


def _as_numpy(tensor):
    array = tensor.numpy()
    if array.dtype == object:
        return np.array([value.decode("utf-8") for value in array])
    return array


def collect_predictions(serve, dataset):
    """Run ``serve`` over ``dataset``; return (outputs, labels) as concatenated numpy arrays."""
    outputs, labels = {}, {}
    for batch in dataset:
        for name, value in serve(batch["image"]).items():
            outputs.setdefault(name, []).append(_as_numpy(value))
        for key in _LABEL_KEYS:
            if key in batch:
                labels.setdefault(key, []).append(_as_numpy(batch[key]))
    outputs = {name: np.concatenate(parts) for name, parts in outputs.items()}
    labels = {key: np.concatenate(parts) for key, parts in labels.items()}
    return outputs, labels


def smooth_by_sequence(outputs, labels, window):
    """Every output median-filtered over ``window`` frames within its sequence.

    Kollias et al. §4.3 median-filter the per-frame predictions of each video before
    scoring (``fermtl_tf.metrics.median_filter_by_sequence``); rows keep their order.
    """
    if "sequence_id" not in labels or "frame_index" not in labels:
        raise EvaluationInputError("median filtering needs sequence_id and frame_index")
    return {name: metrics.median_filter_by_sequence(value, labels["sequence_id"],
                                                    labels["frame_index"], window)
            for name, value in outputs.items()}


def _require_output(outputs, name):
    if name not in outputs:
        raise _Unavailable(f"model has no {name!r} output")
    return outputs[name]


def _selected(mask, task):
    keep = np.asarray(mask) > 0
    if not keep.any():
        raise _Unavailable(f"no sample of the split has a {task} label")
    return keep


def _check_vocabulary(export, manifest):
    """The expression class names shared by model and data (they must agree, in order)."""
    data_classes = list(manifest.get("vocabularies", {}).get("expression", []))
    model_classes = list(export.get("expression_vocabulary", data_classes))
    if model_classes != data_classes:
        raise EvaluationInputError(
            f"expression vocabulary of the model {model_classes} differs from the data's "
            f"{data_classes}"
        )
    if not data_classes:
        raise _Unavailable("the dataset manifest names no expression vocabulary")
    return data_classes


def _sequence_votes(probs, y_true, labels, keep, mode):
    """Per-sequence scores and labels of the labelled frames (``vote_by_sequence``)."""
    if "sequence_id" not in labels:
        raise EvaluationInputError("sequence voting needs the records' sequence_id")
    try:
        scores, y_true, _ = vote_by_sequence(probs, y_true, labels["sequence_id"][keep], mode)
    except ValueError as error:
        raise EvaluationInputError(str(error)) from None
    return scores, y_true


def _expression_scores(names, outputs, labels, export, manifest, sequence_vote=None):
    probs = _require_output(outputs, "expression_probs")
    keep = _selected(labels["expression_mask"], "expression")
    classes = _check_vocabulary(export, manifest)
    scores, y_true = probs[keep], labels["expression"][keep]
    if sequence_vote:
        scores, y_true = _sequence_votes(scores, y_true, labels, keep, sequence_vote)
    y_pred = np.argmax(scores, axis=-1)
    functions = {
        "accuracy": lambda: metrics.accuracy(y_true, y_pred),
        "mean_diagonal": lambda: metrics.mean_diagonal(y_true, y_pred),
        "macro_f1": lambda: metrics.macro_f1(y_true, y_pred, len(classes)),
        "uar": lambda: metrics.uar(y_true, y_pred),
    }
    extras = {
        "expression_classes": classes,
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, len(classes)).tolist(),
        "per_class_accuracy": dict(zip(
            classes, metrics.per_class_accuracy(y_true, y_pred, len(classes)).tolist(),
            strict=True)),
    }
    return {name: functions[name]() for name in names}, len(y_true), extras


def _landmark_scores(names, outputs, labels, export, manifest):
    """NME on (0, 1) coordinates scaled to input pixels, so that x and y weigh as pixels.

    NME is invariant to a *uniform* scale; scaling x by the width and y by the height
    matters only for non-square inputs, where it makes distances those of the image.
    """
    predicted = _require_output(outputs, "landmarks")
    keep = _selected(labels["landmarks_mask"], "landmarks")
    height, width = export["input_size"]
    scale = np.array([width, height], dtype=np.float64)
    pred, true = predicted[keep] * scale, labels["landmarks"][keep] * scale
    normalizations = {"nme_inter_pupil": "inter_pupil", "nme_inter_ocular": "inter_ocular"}
    scores = {name: metrics.nme(true, pred, normalizations[name]) for name in names}
    return scores, int(keep.sum()), {}


def _au_columns(export, manifest):
    """Model and data column indices of the AUs both know, in the data's order."""
    data_names = list(manifest["au_names"])
    model_names = list(export.get("au_names", []))
    shared = [name for name in data_names if name in model_names]
    if not shared:
        raise _Unavailable(f"model AUs {model_names} and data AUs {data_names} do not overlap")
    return shared, [model_names.index(n) for n in shared], [data_names.index(n) for n in shared]


def _au_scores(names, outputs, labels, export, manifest):
    probs = _require_output(outputs, "au_probs")
    shared, model_cols, data_cols = _au_columns(export, manifest)
    mask = labels["au_mask"][:, data_cols]
    _selected(mask.any(axis=1), "AU")
    pred, true = probs[:, model_cols], labels["au"][:, data_cols]
    functions = {
        "au_f1": lambda: metrics.au_f1(true, pred, mask),
        "au_accuracy": lambda: metrics.au_accuracy(true, pred, mask),
        "afa": lambda: metrics.afa(true, pred, mask),
    }
    per_au = {
        name: dict(zip(shared, function(true, pred, mask, per_au=True), strict=True))
        for name, function in (("au_f1", metrics.au_f1), ("au_accuracy", metrics.au_accuracy))
    }
    extras = {"au_evaluated": shared, "per_au": per_au}
    return {name: functions[name]() for name in names}, int(mask.any(axis=1).sum()), extras


def _va_scores(names, outputs, labels, export, manifest):
    keep = _selected(labels["va_mask"], "valence/arousal")
    scores = {}
    for name in names:
        dimension = name.removeprefix("ccc_")
        predicted = _require_output(outputs, dimension)
        scores[name] = metrics.ccc(labels[dimension][keep], predicted[keep])
    return scores, int(keep.sum()), {}


def _identity_scores(names, outputs, labels, export, manifest):
    """Identity classification (Kollias Table 8): samples with identity >= 0 (-1 = missing)."""
    logits = _require_output(outputs, "identity_logits")
    keep = _selected(labels["identity"] >= 0, "identity")
    y_true, y_pred = labels["identity"][keep], np.argmax(logits[keep], axis=-1)
    functions = {
        "identity_accuracy": lambda: metrics.accuracy(y_true, y_pred),
        "identity_macro_f1": lambda: metrics.macro_f1(y_true, y_pred, logits.shape[-1]),
    }
    return {name: functions[name]() for name in names}, int(keep.sum()), {}


def _attribute_scores(names, outputs, labels, export, manifest):
    """Attribute detection (Kollias Table 8) with the binary multi-label AU metrics.

    A sigmoid of the served logits (as tanh, which cannot overflow) gives the
    probabilities the AU metrics threshold at 0.5; accuracy and F1 are averaged over the
    attributes that carry labels, so with every label present the accuracy is the total
    accuracy of Sec. 4.2 (iv).
    """
    logits = _require_output(outputs, "attributes_logits")
    mask = labels["attributes_mask"]
    _selected(mask.any(axis=1), "attribute")
    probs = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))
    functions = {
        "attribute_accuracy": lambda: metrics.au_accuracy(labels["attributes"], probs, mask),
        "attribute_f1": lambda: metrics.au_f1(labels["attributes"], probs, mask),
    }
    return {name: functions[name]() for name in names}, int(mask.any(axis=1).sum()), {}


_TASK_SCORERS = {
    "expression": _expression_scores,
    "landmarks": _landmark_scores,
    "au": _au_scores,
    "va": _va_scores,
    "identity": _identity_scores,
    "attributes": _attribute_scores,
}


def compute_metrics(benchmark, outputs, labels, export, manifest, sequence_vote=None):
    """Score every task of ``benchmark``: {metrics, samples_per_task, skipped, extras...}.

    ``sequence_vote`` (``"max"``/``"mean"``) scores the expression task per sequence;
    its ``samples_per_task`` entry then counts sequences.
    """
    results = {"metrics": {}, "samples_per_task": {}, "skipped": {}}
    scorers = dict(_TASK_SCORERS, expression=functools.partial(
        _expression_scores, sequence_vote=sequence_vote))
    for task, names in benchmark.task_metrics.items():
        try:
            scores, count, extras = scorers[task](names, outputs, labels, export, manifest)
        except _Unavailable as reason:
            results["skipped"].update({name: str(reason) for name in names})
            continue
        results["metrics"].update(scores)
        results["samples_per_task"][task] = count
        results.update(extras)
    return results


def _evaluation_dataset(data_dir, selection, batch_size, image_size, centre_crop=None):
    """The selected records, unshuffled, raw pixels; a bad selection names the folder.

    ``centre_crop`` (the export's, the fraction of the training random crops): the
    centre window of each stored face, as the reader's evaluation mode gives validation
    (Liu et al. 2017 Sec. 5.1: "a single center crop ... at test").
    """
    augment = {"random_crop": centre_crop} if centre_crop else None
    try:
        return make_dataset(data_dir, batch_size=batch_size, image_size=image_size,
                            training=False, normalization="none", keep_metadata=True,
                            augment=augment, **selection)
    except ValueError as error:
        raise EvaluationInputError(str(error)) from None


def evaluate_saved_model(model_dir, data_dir, benchmark="synthface", split="test", out_dir=None,
                         batch_size=64, median_window=None, folds=None, exclude_folds=None,
                         sequence_vote=None):
    """Evaluate the SavedModel in ``model_dir`` on the selected records of ``data_dir``.

    ``split`` (a name, a list of names or None for all; ``"unassigned"`` for records
    without a split), ``folds`` and ``exclude_folds`` select the records exactly as
    :func:`fermtl_tf.data.pipeline.make_dataset` does for training.
    Returns a JSON-ready dict (benchmark, title, the selection, paths, ``num_samples``,
    ``metrics``, ``samples_per_task``, ``skipped`` and, where computed,
    ``expression_classes``/``confusion_matrix``/``per_class_accuracy`` (Li Table 2's
    columns; None for a class without test samples) and ``au_evaluated``/``per_au``). With
    ``out_dir`` the report files are written there too (``fermtl_tf.evaluation.report``).
    ``median_window`` (odd) median-filters every output within each sequence first
    (:func:`smooth_by_sequence`); ``sequence_vote`` (``"max"`` or ``"mean"``) then
    scores the expression task once per sequence (Liu et al. 2017 Sec. 4.1).
    """
    bench = get_benchmark(benchmark)
    export = read_export_metadata(model_dir)
    manifest = read_dataset_manifest(data_dir)
    selection = {"split": split, "folds": folds, "exclude_folds": exclude_folds}
    dataset = _evaluation_dataset(data_dir, selection, batch_size, tuple(export["input_size"]),
                                  export.get("centre_crop"))
    loaded = _load_saved_model(model_dir)
    outputs, labels = collect_predictions(loaded.serve, dataset)
    if median_window:
        outputs = smooth_by_sequence(outputs, labels, median_window)
    results = {
        "benchmark": bench.name,
        "title": bench.title,
        "synthetic": bench.synthetic,
        "paper_refs": list(bench.paper_refs),
        **selection,
        "model_dir": str(model_dir),
        "data_dir": str(data_dir),
        "num_samples": int(len(labels["expression"])),
        "median_window": median_window,
        "sequence_vote": sequence_vote,
    }
    results.update(compute_metrics(bench, outputs, labels, export, manifest, sequence_vote))
    if out_dir is not None:
        report.write_report(results, out_dir)
    return results


def evaluate_fold_models(model_dirs, data_dir, benchmark="synthface", split=None,
                         out_dir=None, **options):
    """Evaluate each fold's model on its own fold; aggregate mean and sd over folds.

    ``model_dirs`` maps a fold number to the SavedModel trained without that fold;
    each is evaluated on the records of ``split`` (None: every split) in its fold, with
    ``options`` of :func:`evaluate_saved_model` (``batch_size``, ``median_window``,
    ``sequence_vote``). Returns ``{benchmark, title, synthetic, split, folds,
    per_fold: [results], aggregate: evaluate_folds(...)}``; with ``out_dir`` every
    fold's report goes to ``out_dir/fold_<k>/`` and the summary to ``out_dir``
    (``folds.json``, ``folds.md``).
    """
    if not model_dirs:
        raise EvaluationInputError("evaluate_fold_models needs at least one fold's model")
    bench = get_benchmark(benchmark)
    folds = sorted(model_dirs)
    per_fold = [
        evaluate_saved_model(
            model_dirs[fold], data_dir, benchmark, split=split, folds=[fold],
            out_dir=None if out_dir is None else os.path.join(out_dir, f"fold_{fold}"),
            **options)
        for fold in folds
    ]
    summary = {
        "benchmark": bench.name, "title": bench.title, "synthetic": bench.synthetic,
        "split": split, "data_dir": str(data_dir), "folds": folds,
        "sequence_vote": options.get("sequence_vote"),
        "per_fold": per_fold, "aggregate": evaluate_folds(per_fold),
    }
    if out_dir is not None:
        report.write_folds_report(summary, out_dir)
    return summary


def evaluate_folds(results_per_fold):
    """Aggregate k-fold results: {metric: {"per_fold": [...], "mean": m, "std": s}}.

    Each item is a results dict of :func:`evaluate_saved_model` or a plain
    {metric: value} dict. ``std`` is the *population* standard deviation over folds
    (numpy's default, ``ddof=0``), defined for any number of folds; the papers report
    only the mean over folds (e.g. Zhao Sec. IV-B: "averaging the accuracy over the 10
    runs"). A metric missing from some fold is an error naming the fold.
    """
    folds = [fold.get("metrics", fold) for fold in results_per_fold]
    if not folds:
        raise ValueError("evaluate_folds needs at least one fold")
    names = sorted(set().union(*folds))
    aggregated = {}
    for name in names:
        missing = [index for index, fold in enumerate(folds) if name not in fold]
        if missing:
            raise ValueError(f"metric {name!r} missing from fold(s) {missing}")
        values = np.array([fold[name] for fold in folds], dtype=np.float64)
        aggregated[name] = {
            "per_fold": values.tolist(),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    return aggregated
