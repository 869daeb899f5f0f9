"""Trace norm decrease rate (TNR) per layer, logged every epoch (Hu et al. 2018, Fig. 3a/3b).

§4.2 "Analysis of Discovered Sharing": TNR = (norm of the optimised parameters) / (norm of
the initialised parameters); the smaller it is, the more a layer shares across tasks. The
norm is the tensor trace norm of each stacked conv kernel (Eqs. 1-3, the unweighted sum of
its unfoldings' trace norms, exact SVD), for the method the model is trained with (LAF if it
has none, as in the paper's Fig. 3, which analyses ResNet+LAF).

``TraceNormRateLogger`` writes ``<output_dir>/trace_norm_rate.csv`` with one row per
(epoch, layer): ``epoch`` (0 = initialisation), ``layer_index`` (1-based position among the
main-path convolutions, so "layer 1" is the stem), ``layer``, ``norm``, ``initial_norm``,
``tnr``. The initial norms are kept in ``trace_norm_initial.json`` so a resumed run
(``BackupAndRestore``) still divides by the norms at initialisation.
"""

import csv
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.layers import StackedConv2D
from fermtl_tf.methods.hu2018.stacked_resnet import main_path_conv_names
from fermtl_tf.regularizers import tensor_trace_norm

CSV_NAME = "trace_norm_rate.csv"
INITIAL_NAME = "trace_norm_initial.json"
FIELDS = ("epoch", "layer_index", "layer", "norm", "initial_norm", "tnr")


def stacked_conv_layers(model):
    """The model's stacked conv layers in network order: ``model.stacked_conv_layers()``
    when it has one (main path only, 1-based positions from it), else every StackedConv2D."""
    if hasattr(model, "stacked_conv_layers"):
        return model.stacked_conv_layers()
    found = []

    def visit(layer):
        if isinstance(layer, StackedConv2D):
            found.append(layer)
        for child in getattr(layer, "layers", []):
            visit(child)

    visit(model)
    return found


def kernel_trace_norm(kernel, method):
    """Σ_i ‖W_i‖* over ``method``'s unfoldings of one stacked kernel (a Python float)."""
    return float(tf.reduce_sum(tensor_trace_norm(tf.convert_to_tensor(kernel), method)))


class TraceNormRateLogger(keras.callbacks.Callback):
    """Append every stacked conv layer's trace norm and TNR to a CSV after each epoch.

    Args:
        output_dir: the experiment folder (the CSV and the initial norms go there).
        method: "laf", "tucker" or "tt" (the norm whose decrease is measured).
    """

    def __init__(self, output_dir, method="laf"):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.method = method
        self.initial = {}

    def _norms(self):
        return {layer.name: kernel_trace_norm(layer.kernel, self.method)
                for layer in stacked_conv_layers(self.model)}

    def on_train_begin(self, logs=None):
        self.output_dir.mkdir(parents=True, exist_ok=True)
        initial_path = self.output_dir / INITIAL_NAME
        csv_path = self.output_dir / CSV_NAME
        resuming = (self.output_dir / "backup").exists() and initial_path.exists()
        if resuming:
            self.initial = json.loads(initial_path.read_text())
            return
        self.initial = self._norms()
        initial_path.write_text(json.dumps(self.initial, indent=2))
        with open(csv_path, "w", newline="") as handle:
            csv.writer(handle).writerow(FIELDS)
        self._append(0, self.initial)

    def on_epoch_end(self, epoch, logs=None):
        self._append(epoch + 1, self._norms())

    def _append(self, epoch, norms):
        names = [layer.name for layer in stacked_conv_layers(self.model)]
        order = _layer_positions(self.model, names)
        with open(self.output_dir / CSV_NAME, "a", newline="") as handle:
            writer = csv.writer(handle)
            for name in names:
                initial = self.initial[name]
                tnr = norms[name] / initial if initial > 0 else float("nan")
                writer.writerow([epoch, order[name], name, f"{norms[name]:.6g}",
                                 f"{initial:.6g}", f"{tnr:.6g}"])


def _layer_positions(model, names):
    """1-based position of each layer among the main-path convs (or among ``names``)."""
    depth = getattr(model, "depth", None)
    if depth is not None:
        main = main_path_conv_names(depth)
        return {name: main.index(name) + 1 for name in names}
    return {name: i + 1 for i, name in enumerate(names)}


def read_tnr(csv_path):
    """``{layer_index: (layer name, epochs array, tnr array)}`` from a TNR CSV."""
    rows = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            entry = rows.setdefault(int(row["layer_index"]), (row["layer"], [], []))
            entry[1].append(int(row["epoch"]))
            entry[2].append(float(row["tnr"]))
    return {index: (name, np.asarray(epochs), np.asarray(tnr))
            for index, (name, epochs, tnr) in sorted(rows.items())}


def plot_tnr(csv_path, out_path, layers=(1, 10, 20, 30)):
    """Fig. 3a (TNR against epochs for ``layers``) and 3b (final TNR of every layer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_tnr(csv_path)
    if not data:
        raise ValueError(f"{csv_path}: no trace norm rate rows")
    figure, (curves, final) = plt.subplots(1, 2, figsize=(11, 4))
    for index in layers:
        if index in data:
            _, epochs, tnr = data[index]
            curves.plot(epochs, tnr, marker="o", label=f"layer {index}")
    curves.set(xlabel="epoch", ylabel="TNR", title="(a) TNR during optimisation")
    curves.legend()
    indices = list(data)
    final.bar(indices, [data[i][2][-1] for i in indices])
    final.set(xlabel="conv layer", ylabel="TNR", title="(b) TNR after optimisation")
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)
    return Path(out_path)
