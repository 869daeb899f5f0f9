"""Recognition accuracy on synthesised faces (Zhao et al., FERSNet §IV-C, Table V).

"We train the above-mentioned FES methods on the training set, and then perform the
expression synthesis on the unseen testing set. The synthetic facial images are fed to an
expression recognition network ... independently trained on the original training set,
containing real facial images only." A higher accuracy means syntheses closer to the
manifold of real expressions.

Here: every selected test face is synthesised with every target expression (its own
included, unless ``include_source=False``), the independent classifier labels each
synthesis, and the accuracy is taken against the *target* expression. Both models are
exported SavedModels (``fermtl-train`` + export): the generator's ``synthesize(images,
target_expression)`` and the classifier's ``serve(images) -> expression_probs``, both on
raw 0-255 pixels, so the classifier may be any exported expression model.

Beside :data:`RESULTS_FILE` (the full result, read by the SynthFace study) the out_dir
gets a ``results.json`` in the evaluation runner's shape with the one metric
``synthetic_accuracy`` (:data:`~fermtl_tf.evaluation.benchmarks.SYNTHESIS_METRICS`), so
that ``fermtl-report`` fills Table V's row from it: the run it belongs to is the nearest
``config.yaml`` above the out_dir, which should be the generator's run.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from fermtl_tf.evaluation.benchmarks import SYNTHESIS_METRICS, get_benchmark
from fermtl_tf.evaluation.report import RESULTS_JSON, to_builtin
from fermtl_tf.evaluation.runner import (
    _evaluation_dataset,
    _load_saved_model,
    read_export_metadata,
)

RESULTS_FILE = "synthetic_accuracy.json"
(METRIC,) = SYNTHESIS_METRICS


def synthesis_targets(expressions, num_classes, include_source=True):
    """(source index, target) pairs: every target for every sample, or every other one."""
    expressions = np.asarray(expressions, np.int64).reshape(-1)
    sources, targets = np.nonzero(np.ones((len(expressions), num_classes), bool))
    if not include_source:
        keep = targets != expressions[sources]
        sources, targets = sources[keep], targets[keep]
    return sources, targets


def synthetic_image_accuracy(classify, synthesize, batches, num_classes, include_source=True):
    """Accuracy of ``classify`` on ``synthesize``'s faces w.r.t. the target expressions.

    ``classify(images) -> probabilities [N, E]`` and ``synthesize(images, targets) ->
    images`` take raw-pixel batches; ``batches`` yields dicts with ``image``,
    ``expression`` and ``expression_mask`` (unlabelled faces are synthesised from too
    when ``include_source``, since the target is the label; without it they are skipped).
    Returns ``{accuracy, num_samples, num_source_images, per_target_accuracy,
    confusion_matrix}`` (rows: target, columns: predicted).
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    source_images = 0
    for batch in batches:
        images = np.asarray(batch["image"], np.float32)
        expressions = np.asarray(batch["expression"])
        if not include_source:
            labelled = np.asarray(batch["expression_mask"]) > 0
            images, expressions = images[labelled], expressions[labelled]
        sources, targets = synthesis_targets(expressions, num_classes, include_source)
        if not len(sources):
            continue
        source_images += len(images)
        synthetic = synthesize(images[sources], targets.astype(np.int32))
        predicted = np.argmax(np.asarray(classify(synthetic)), axis=-1)
        np.add.at(confusion, (targets, predicted), 1)
    total = int(confusion.sum())
    if total == 0:
        raise ValueError("synthetic_image_accuracy: no face to synthesise from")
    per_target = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {"accuracy": float(confusion.trace() / total), "num_samples": total,
            "num_source_images": source_images,
            "per_target_accuracy": [float(v) for v in per_target],
            "confusion_matrix": confusion.tolist()}


def _resized(images, size):
    images = tf.convert_to_tensor(images, tf.float32)
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.image.resize(images, size)


def load_generator(generator_dir):
    """(export metadata, SavedModel) of an exported FERSNet; ValueError when it has no
    ``synthesize`` signature."""
    export = read_export_metadata(generator_dir)
    generator = _load_saved_model(generator_dir)
    if not hasattr(generator, "synthesize"):
        raise ValueError(f"SavedModel in {generator_dir} has no 'synthesize' signature "
                         "(export a FERSNet trained with synthesis)")
    return export, generator


def report_results(results, benchmark):
    """The ``results.json`` of a synthetic-accuracy result, as ``fermtl-report`` reads it.

    Shaped like :func:`~fermtl_tf.evaluation.runner.evaluate_saved_model`'s (``benchmark``,
    ``synthetic`` from the benchmark registry, the selection, ``num_samples``) with the one
    metric :data:`METRIC`; the confusion matrix stays in :data:`RESULTS_FILE`, since the
    report would read a ``confusion_matrix`` here as the classifier's on real faces.
    """
    bench = get_benchmark(benchmark)
    return to_builtin({
        "benchmark": bench.name, "title": bench.title, "synthetic": bench.synthetic,
        "paper_refs": ["Zhao Table V"],
        **{key: results[key] for key in ("split", "folds", "exclude_folds", "include_source",
                                         "generator_dir", "classifier_dir", "data_dir",
                                         "num_samples", "num_source_images")},
        "model_dir": results["generator_dir"],
        "metrics": {METRIC: results["accuracy"]},
    })


def write_results(results, benchmark, out_dir):
    """Write :data:`RESULTS_FILE` and the report's ``results.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    (out_dir / RESULTS_JSON).write_text(
        json.dumps(report_results(results, benchmark), indent=2))


def evaluate_synthetic_accuracy(classifier_dir, generator_dir, data_dir, split="test",
                                folds=None, exclude_folds=None, include_source=True,
                                batch_size=32, out_dir=None, benchmark="synthface"):
    """Table V for two exported models on the selected faces of ``data_dir``.

    The faces are read at the generator's input size; the syntheses are resized to the
    classifier's. ``benchmark`` names the data as ``fermtl-eval --benchmark`` does (a
    SynthFace result is marked synthetic). With ``out_dir``, the result is also written
    there (:func:`write_results`).
    """
    benchmark = get_benchmark(benchmark).name  # an unknown name fails before the models load
    generator_export, generator = load_generator(generator_dir)
    classifier_export = read_export_metadata(classifier_dir)
    classifier = _load_saved_model(classifier_dir)
    vocabulary = generator_export.get("expression_vocabulary") or []
    if vocabulary != (classifier_export.get("expression_vocabulary") or []):
        raise ValueError(f"{generator_dir} and {classifier_dir} have different expression "
                         f"vocabularies: {vocabulary} vs "
                         f"{classifier_export.get('expression_vocabulary')}")
    size = tuple(classifier_export["input_size"])
    batches = _evaluation_dataset(data_dir, {"split": split, "folds": folds,
                                             "exclude_folds": exclude_folds},
                                  batch_size, tuple(generator_export["input_size"]))
    results = synthetic_image_accuracy(
        lambda images: classifier.serve(_resized(images, size))["expression_probs"],
        lambda images, targets: generator.synthesize(images, targets)["images"],
        batches.as_numpy_iterator(), len(vocabulary), include_source)
    results.update(classifier_dir=str(classifier_dir), generator_dir=str(generator_dir),
                   data_dir=str(data_dir), split=split, folds=folds,
                   exclude_folds=exclude_folds, include_source=include_source,
                   expression_classes=list(vocabulary), benchmark=benchmark)
    if out_dir is not None:
        write_results(results, benchmark, out_dir)
    return results
