"""Controlled studies on SynthFace: every variant of a method trained with several seeds,
evaluated the way ``fermtl-eval`` does, and compared seed by seed.

One study answers one question ("does coupling transfer knowledge to a task with few
labels?") with variants (training configs) x seeds. Each run is an ordinary
:func:`~fermtl_tf.experiments.experiment.run_experiment` into
``<runs>/<variant>/seed<k>/``, exported, and scored on each named evaluation folder by
:func:`~fermtl_tf.evaluation.runner.evaluate_saved_model`, whose ``results.json`` lands in
``<runs>/<variant>/seed<k>/eval/<evaluation>/`` -- where ``fermtl-report`` finds it (the
run's ``config.yaml`` names the config, seeds are averaged as repeated runs). A finished
run is kept, so an interrupted study resumes where it stopped.

Variants are compared by *paired* differences: the same seed gives every variant the same
data order and initial weights where they share them, so the per-seed difference removes
most of the seed-to-seed spread; its mean comes with a two-sided 95 % Student-t interval
over seeds. Nothing here knows a method: the study scripts in ``train/`` name variants,
data and metrics.
"""

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from fermtl_tf.evaluation.report import RESULTS_JSON

#: Columns of :func:`run_study`'s frame: one metric value of one run on one evaluation.
STUDY_COLUMNS = ["variant", "seed", "evaluation", "metric", "value", "samples",
                 "wall_seconds", "cpu_seconds"]
TIMING_FILE = "study_timing.json"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One arm of a study: a training config and the ``--set`` overrides that make it."""

    key: str  # folder name and table key
    label: str  # what the table shows
    config: Path
    overrides: tuple = ()


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A prepared folder every run is scored on (its ``split``, SynthFace benchmark)."""

    name: str
    data_dir: Path
    split: str = "test"
    benchmark: str = "synthface"


def cpu_seconds():
    """CPU time of this process and its finished children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def study_parser(study, description, root=Path(".")):
    """The options every study script shares (``fermtl-report --synthface`` passes them):
    ``--seeds``, ``--runs`` (``runs/studies/<study>``), ``--data``
    (``prepared/studies/<study>``) and ``--page`` (``docs/results/<study>_synthface.md``;
    an empty string writes no page and no plot). Scripts add their own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds (default: 0 1 2)")
    parser.add_argument("--runs", type=Path, default=Path(root) / "runs" / "studies" / study,
                        help="run folders (finished runs are reused)")
    parser.add_argument("--data", type=Path, default=Path(root) / "prepared" / "studies" / study,
                        help="prepared SynthFace folders (made when absent)")
    parser.add_argument("--page", default=str(Path(root) / "docs" / "results" /
                                              f"{study}_synthface.md"),
                        help="results page ('' writes no page and no plot)")
    return parser


def _train_and_export(variant, seed, run_dir, overrides):
    """Train one (variant, seed) run and export it; returns (export folder, timing)."""
    from fermtl_tf.experiments.experiment import run_experiment

    wall, cpu = time.perf_counter(), cpu_seconds()
    settings = [*overrides, *variant.overrides, f"seed={seed}"]
    result = run_experiment(variant.config, overrides=settings, output_dir=run_dir,
                            verbose=0, restart=True)
    export_dir = run_dir / "export"
    result.export(export_dir)
    timing = {"wall_seconds": time.perf_counter() - wall, "cpu_seconds": cpu_seconds() - cpu}
    (run_dir / TIMING_FILE).write_text(json.dumps(timing))
    return export_dir, timing


def _evaluate(export_dir, run_dir, evaluation):
    """``results.json`` of the run on one evaluation folder (computed once, then read)."""
    from fermtl_tf.evaluation.runner import evaluate_saved_model

    out_dir = run_dir / "eval" / evaluation.name
    path = out_dir / RESULTS_JSON
    if not path.exists():
        evaluate_saved_model(export_dir, evaluation.data_dir, benchmark=evaluation.benchmark,
                             split=evaluation.split, out_dir=out_dir)
    return json.loads(path.read_text())


def _is_complete(run_dir, evaluations):
    return (run_dir / TIMING_FILE).exists() and all(
        (run_dir / "eval" / e.name / RESULTS_JSON).exists() for e in evaluations)


def completed(variants, seeds, evaluations, runs_dir):
    """The (variant, seed) pairs whose run is trained, timed and scored on every one of
    ``evaluations``: what :func:`run_study` would read back without training."""
    return [(variant, seed) for seed in seeds for variant in variants
            if _is_complete(Path(runs_dir) / variant.key / f"seed{seed}", evaluations)]


def run_study(variants, seeds, evaluations, runs_dir, overrides=(), log=print):
    """Train and score every variant with every seed; returns the long frame of values.

    ``overrides`` apply to every run (data folders, epochs), before the variant's own and
    the seed. Runs already complete under ``runs_dir`` are read back, not retrained.
    Rows: :data:`STUDY_COLUMNS`; ``value`` is the metric as ``results.json`` holds it
    (fractions, NME in percent), ``samples`` the number of faces it was computed on.
    """
    rows = []
    for seed in seeds:
        for variant in variants:
            run_dir = Path(runs_dir) / variant.key / f"seed{seed}"
            if _is_complete(run_dir, evaluations):
                export_dir = run_dir / "export"
                timing = json.loads((run_dir / TIMING_FILE).read_text())
            else:
                export_dir, timing = _train_and_export(variant, seed, run_dir, overrides)
            for evaluation in evaluations:
                results = _evaluate(export_dir, run_dir, evaluation)
                samples = results.get("samples_per_task", {})
                for metric, value in results["metrics"].items():
                    task = next((t for t in samples if metric.startswith(t)), None)
                    rows.append({"variant": variant.key, "seed": seed,
                                 "evaluation": evaluation.name, "metric": metric,
                                 "value": float(value),
                                 "samples": int(samples.get(task, results["num_samples"])),
                                 **timing})
            log(f"{variant.key} seed {seed}: {timing['wall_seconds']:.0f} s wall")
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def measure(frame, evaluation, metric):
    """The (variant x seed) table of one metric on one evaluation."""
    chosen = frame[(frame["evaluation"] == evaluation) & (frame["metric"] == metric)]
    if chosen.empty:
        raise KeyError(f"no values of metric {metric!r} on evaluation {evaluation!r}")
    return chosen.pivot_table(index="seed", columns="variant", values="value", aggfunc="first")


def t_interval(values, level=0.95):
    """(mean, sd, low, high) of ``values`` with a two-sided Student-t interval."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(values.std(ddof=1))
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * sd / np.sqrt(len(values))
    return mean, sd, mean - half, mean + half


def summarize(table, order=None):
    """Mean, sd and n per variant of a :func:`measure` table (variants as rows)."""
    order = [v for v in (order or table.columns) if v in table.columns]
    return pd.DataFrame({"mean": table[order].mean(), "sd": table[order].std(ddof=1),
                         "n": table[order].count()}).reindex(order)


def paired_differences(table, reference, order=None, level=0.95, higher_is_better=True):
    """Per variant: mean of (variant - reference) over the seeds both have, sd, interval.

    ``wins`` counts the seeds on which the variant beats the reference: a higher value,
    or a lower one with ``higher_is_better=False`` (error metrics such as NME).
    """
    if reference not in table.columns:
        raise KeyError(f"reference variant {reference!r} is not in the study")
    rows = {}
    for variant in [v for v in (order or table.columns) if v in table.columns]:
        if variant == reference:
            continue
        pair = table[[variant, reference]].dropna()
        diff = pair[variant] - pair[reference]
        mean, sd, low, high = t_interval(diff, level)
        rows[variant] = {"mean_diff": mean, "sd": sd, "ci_low": low, "ci_high": high,
                         "n": len(diff),
                         "wins": int((diff > 0 if higher_is_better else diff < 0).sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_study(table, labels, path, ylabel, title, scale=100.0):
    """Each seed as a dot and mean +- sd as a bar, one column per variant; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [v for v in labels if v in table.columns]
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 2, 3.6))
    for x, variant in enumerate(order):
        values = table[variant].dropna().to_numpy() * scale
        ax.scatter(np.full(len(values), x), values, s=14, color="0.45", zorder=3)
        ax.errorbar(x + 0.15, values.mean(), yerr=values.std(ddof=1) if len(values) > 1 else 0,
                    fmt="o", color="C0", capsize=4, zorder=4)
    ax.set_xticks(range(len(order)), [labels[v] for v in order], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def comparison_table(table, reference, labels, scale=100.0, digits=2, higher_is_better=True):
    """The study's table for a page: mean +- sd per variant and the paired difference to
    ``reference`` with its 95 % interval and wins; values multiplied by ``scale``."""
    order = [v for v in labels if v in table.columns]
    summary = summarize(table, order)
    diffs = paired_differences(table, reference, order, higher_is_better=higher_is_better)
    rows = []
    for variant in order:
        row = summary.loc[variant]
        text = {"variant": labels[variant],
                "mean ± sd": f"{row['mean'] * scale:.{digits}f} ± {row['sd'] * scale:.{digits}f}",
                "seeds": int(row["n"])}
        if variant in diffs.index:
            d = diffs.loc[variant]
            text[f"paired diff. vs {labels[reference]} [95 % CI]"] = (
                f"{d['mean_diff'] * scale:+.{digits}f} "
                f"[{d['ci_low'] * scale:+.{digits}f}, {d['ci_high'] * scale:+.{digits}f}]")
            text["wins"] = f"{int(d['wins'])}/{int(d['n'])}"
        else:
            text[f"paired diff. vs {labels[reference]} [95 % CI]"] = "(reference)"
            text["wins"] = ""
        rows.append(text)
    return pd.DataFrame(rows)


def relative_errors(frame, reference, criteria):
    """Each variant's errors relative to ``reference``'s, averaged over ``criteria``.

    ``criteria``: ``(evaluation, metric, higher_is_better)`` triples; a higher-is-better
    fraction counts as the error 1 - value, a lower-is-better metric (NME) as itself.
    Per criterion the variant's mean error over its seeds is divided by the reference's,
    so tasks on different scales weigh alike; ``score`` is the mean of those ratios (below
    1: better than the reference on average). Columns ``"<evaluation>/<metric>"`` hold
    the mean metric values. Used to choose a hyper-parameter on a validation split.
    """
    values, ratios = {}, []
    for evaluation, metric, higher in criteria:
        means = measure(frame, evaluation, metric).mean()
        values[f"{evaluation}/{metric}"] = means
        errors = 1.0 - means if higher else means
        if reference not in errors.index:
            raise KeyError(f"reference variant {reference!r} has no {metric!r} on "
                           f"{evaluation!r}")
        ratios.append(errors / errors[reference])
    result = pd.DataFrame(values)
    result["score"] = pd.concat(ratios, axis=1).mean(axis=1)
    return result
