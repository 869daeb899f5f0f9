"""Fig. 5 (b) of Li et al. 2023: the mean meta weights per epoch (omega^AU, omega^AM).

§5.3 "Weights analysis": "Changes in weights by calculating average weights in each epoch
are recorded." :class:`~fermtl_tf.methods.meta_mtl.model.MetaMTLModel` tracks each meta
weight as a Keras ``Mean`` (``omega_au``, ``omega_am``, ...) reset at every epoch, so the
epoch's logged value is that average: the experiment's ``history.csv`` and TensorBoard
(``epoch_omega_au``) hold the curves. At the end of training
:class:`WeightCurvesCallback` draws them from ``history.csv`` -- the file, not the
callback's own memory, so a resumed run plots every epoch since the first.
"""

import csv
from pathlib import Path

import keras
import numpy as np

HISTORY_CSV = "history.csv"
WEIGHTS_PNG = "meta_weights.png"
_PREFIX = "omega_"


def read_weight_curves(history_csv):
    """``(epochs, {term: mean weight per epoch})`` of the training ``omega_*`` columns.

    Validation columns (``val_omega_*``: the weights on validation faces) are left out:
    Fig. 5 shows the weights of the training batches. A missing value (``NA``) is NaN.
    """
    with open(history_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return np.zeros(0, dtype=int), {}
    terms = [name.removeprefix(_PREFIX) for name in rows[0] if name.startswith(_PREFIX)]

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return float("nan")

    epochs = np.array([int(row["epoch"]) for row in rows])
    curves = {term: np.array([number(row[_PREFIX + term]) for row in rows]) for term in terms}
    return epochs, curves


def plot_weight_curves(history_csv, path, title="mean meta weights per epoch (Fig. 5 b)"):
    """Draw the ``omega_*`` curves of ``history_csv`` into the PNG ``path``.

    Returns the path, or None when the history has no meta weight (a variant without
    meta net). Epochs are numbered from 1 as the paper's axis counts them.
    """
    epochs, curves = read_weight_curves(history_csv)
    if not curves or not len(epochs):
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 3.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for term, values in curves.items():
        axes.plot(epochs + 1, values, marker="o", markersize=3,
                  label=f"ω_{term.upper() if term != 'emo' else 'emo'}")
    axes.set_xlabel("epoch")
    axes.set_ylabel("mean weight")
    axes.set_ylim(0.0, 1.0)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


class WeightCurvesCallback(keras.callbacks.Callback):
    """At the end of ``fit``, plot ``<output_dir>/history.csv``'s meta weights.

    Placed after the experiment's CSV logger (the method's callbacks come last), whose
    ``on_train_end`` has closed and flushed the file by then.
    """

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = Path(output_dir)

    def on_train_end(self, logs=None):
        history = self.output_dir / HISTORY_CSV
        if history.exists():
            plot_weight_curves(history, self.output_dir / WEIGHTS_PNG)
