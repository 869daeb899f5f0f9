"""Write an evaluation's results as JSON, CSV, a Markdown table and a confusion-matrix plot.

Input is the dict returned by :func:`fermtl_tf.evaluation.runner.evaluate_saved_model`,
or for a k-fold protocol the summary of :func:`~fermtl_tf.evaluation.runner.evaluate_fold_models`
(``folds.json`` and ``folds.md``: mean and standard deviation over folds, every fold's
value). The Markdown title comes from the benchmark registry, so SynthFace results
always read "SynthFace (synthetic) — not a real-face result".
"""

import csv
import json
import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fermtl_tf.evaluation.benchmarks import TASK_METRICS

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
CONFUSION_PNG = "confusion_matrix.png"
FOLDS_JSON = "folds.json"
FOLDS_MD = "folds.md"


def to_builtin(value):
    """Recursively turn numpy scalars/arrays into Python types; NaN becomes None (strict JSON)."""
    if isinstance(value, dict):
        return {str(key): to_builtin(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_builtin(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _format_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def _metric_task(metric):
    for task, names in TASK_METRICS.items():
        if metric in names:
            return task
    return ""


def _selection_text(results):
    """``split `test`` or ``split `unassigned`, folds [3]``: which records were scored."""
    split = results.get("split")
    if split is None:
        text = "all splits"
    else:
        text = "split " + ", ".join(f"`{name}`" for name in
                                    ([split] if isinstance(split, str) else split))
    for key in ("folds", "exclude_folds"):
        if results.get(key) is not None:
            text += f", {key.replace('_', ' ')} {list(results[key])}"
    return text


def _vote_text(results):
    vote = results.get("sequence_vote")
    if not vote:
        return ""
    return f" Expression scored per sequence (`{vote}` of its frames' probabilities)."


def format_markdown(results):
    """The results as a Markdown document: title, context line, metric table, per-AU and
    per-class tables."""
    lines = [
        f"# {results['title']}",
        "",
        f"Benchmark `{results['benchmark']}`, {_selection_text(results)}, "
        f"{results['num_samples']} samples; model `{results['model_dir']}`."
        + _vote_text(results),
        "",
        "| metric | value | samples |",
        "| --- | --- | --- |",
    ]
    counts = results.get("samples_per_task", {})
    for metric, value in results["metrics"].items():
        count = counts.get(_metric_task(metric), "")
        lines.append(f"| {metric} | {_format_value(value)} | {count} |")
    per_au = results.get("per_au")
    if per_au:
        lines += ["", "| AU | F1 | accuracy |", "| --- | --- | --- |"]
        for name in results["au_evaluated"]:
            f1, acc = per_au["au_f1"][name], per_au["au_accuracy"][name]
            lines.append(f"| {name} | {_format_value(f1)} | {_format_value(acc)} |")
    lines += _per_class_lines(results)
    if results.get("skipped"):
        lines += ["", "Not computed:"]
        lines += [f"- {metric}: {reason}" for metric, reason in results["skipped"].items()]
    return "\n".join(lines) + "\n"


def _per_class_lines(results):
    """The accuracy of each expression class and its test count (Li Table 2's columns)."""
    per_class = results.get("per_class_accuracy")
    if not per_class:
        return []
    counts = [sum(row) for row in results["confusion_matrix"]]
    lines = ["", "| class | accuracy | samples |", "| --- | --- | --- |"]
    lines += [f"| {name} | {_format_value(value)} | {count} |"
              for (name, value), count in zip(per_class.items(), counts, strict=True)]
    return lines


def plot_confusion_matrix(matrix, class_names, path, title=""):
    """Save the row-normalised confusion matrix (true rows, predicted columns) as a PNG."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = 2.0 + 0.6 * len(class_names)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    for row, col in np.ndindex(normalised.shape):
        colour = "white" if normalised[row, col] > 0.5 else "black"
        axes.text(col, row, f"{normalised[row, col]:.2f}", ha="center", va="center",
                  color=colour, fontsize=7)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write_report(results, out_dir):
    """Write results.json, results.csv, results.md (+ confusion_matrix.png); return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in (RESULTS_JSON, RESULTS_CSV, RESULTS_MD)}
    with open(paths[RESULTS_JSON], "w", encoding="utf-8") as handle:
        json.dump(to_builtin(results), handle, indent=2, allow_nan=False, ensure_ascii=False)
        handle.write("\n")
    with open(paths[RESULTS_CSV], "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "value"])
        for metric, value in results["metrics"].items():
            writer.writerow([metric, to_builtin(value)])
    with open(paths[RESULTS_MD], "w", encoding="utf-8") as handle:
        handle.write(format_markdown(results))
    if results.get("confusion_matrix") is not None:
        paths[CONFUSION_PNG] = os.path.join(out_dir, CONFUSION_PNG)
        plot_confusion_matrix(results["confusion_matrix"], results["expression_classes"],
                              paths[CONFUSION_PNG], title=results["title"])
    return paths


def format_folds_markdown(summary):
    """A k-fold summary as Markdown: mean, population sd and every fold's value per metric."""
    folds = summary["folds"]
    lines = [
        f"# {summary['title']}",
        "",
        f"Benchmark `{summary['benchmark']}`, {len(folds)} folds, each fold's model on its "
        f"fold ({_selection_text(summary)}); mean and population standard deviation over "
        f"folds." + _vote_text(summary),
        "",
        "| metric | mean | sd | " + " | ".join(f"fold {fold}" for fold in folds) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in folds) + " |",
    ]
    for metric, values in summary["aggregate"].items():
        cells = [_format_value(values["mean"]), _format_value(values["std"])]
        cells += [_format_value(value) for value in values["per_fold"]]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_folds_report(summary, out_dir):
    """Write folds.json (the whole summary) and folds.md; return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in (FOLDS_JSON, FOLDS_MD)}
    with open(paths[FOLDS_JSON], "w", encoding="utf-8") as handle:
        json.dump(to_builtin(summary), handle, indent=2, allow_nan=False, ensure_ascii=False)
        handle.write("\n")
    with open(paths[FOLDS_MD], "w", encoding="utf-8") as handle:
        handle.write(format_folds_markdown(summary))
    return paths
