"""Training curves of several runs on one plot, from their ``history.csv`` files.

What Liu et al. 2017 show as Fig. 5 (training loss of 1B/2B (N+1)/(N+M) per epoch) and
Fig. 6 (validation accuracy per epoch); any logged column of any run works. Runs repeated
with several seeds are drawn as their mean per epoch with the min-max band.

    python -m fermtl_tf.evaluation.curves runs/a runs/b --column loss --out loss.png
    python -m fermtl_tf.evaluation.curves "2B(N+M)=runs/s0,runs/s1" --column val_loss ...
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

HISTORY_CSV = "history.csv"


def read_histories(run_dirs):
    """One frame of every run's ``history.csv``: the logged columns, ``epoch`` and ``run``."""
    frames = []
    for run_dir in run_dirs:
        path = Path(run_dir) / HISTORY_CSV
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such history file (is {run_dir} a run folder?)")
        frame = pd.read_csv(path)
        if "epoch" not in frame.columns:
            raise ValueError(f"{path}: no 'epoch' column (not a Keras CSVLogger history)")
        frames.append(frame.assign(run=str(run_dir)))
    return pd.concat(frames, ignore_index=True)


def plot_curves(histories, column, path, ylabel=None, title=None):
    """``histories`` {label: frame of :func:`read_histories`}: ``column`` per epoch (1-based),
    the mean over a label's runs as a line and their min-max as a band; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, frame in histories.items():
        if column not in frame.columns:
            raise KeyError(f"runs of {label!r} did not log {column!r} "
                           f"(columns: {', '.join(sorted(frame.columns))})")
        per_epoch = frame.groupby("epoch")[column].agg(["mean", "min", "max"])
        epochs = per_epoch.index.to_numpy() + 1
        line, = ax.plot(epochs, per_epoch["mean"], marker="o", markersize=3, label=label)
        if frame["run"].nunique() > 1:
            ax.fill_between(epochs, per_epoch["min"], per_epoch["max"], alpha=0.15,
                            color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or column)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _labelled(spec):
    """``"label=dir1,dir2"`` or ``"dir"`` (label = the folder's name) -> (label, [dirs])."""
    label, _, dirs = spec.rpartition("=")
    runs = [d for d in dirs.split(",") if d]
    return (label or Path(runs[0]).name), runs


def main(argv=None):
    parser = argparse.ArgumentParser(description="plot a history.csv column of several runs")
    parser.add_argument("runs", nargs="+",
                        help="run folder, or LABEL=DIR1,DIR2 to average repeated runs")
    parser.add_argument("--column", default="loss", help="logged column (default loss)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--ylabel")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    histories = {}
    for spec in args.runs:
        label, runs = _labelled(spec)
        histories[label] = read_histories(runs)
    try:
        print(plot_curves(histories, args.column, args.out, args.ylabel, args.title))
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
