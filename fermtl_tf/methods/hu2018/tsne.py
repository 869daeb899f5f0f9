"""t-SNE of pooled features of two test sets, with and without ADA (Hu et al. 2018, Fig. 3c).

§4.2 "Adversarial Domain Alignment": the feature distributions of the mental-state and the
landmark test sets are visualised with t-SNE (van der Maaten & Hinton 2008) for ResNet+LAF
and ResNet+LAF+ADA; aligned features overlap. The features of a test set are those of the
task network that owns it (task 0 for expressions, task 1 for landmarks) -- the
``f_Θt(X_t)`` that Eq. 4's classifier sees -- after the average pooling.

Command line::

    python -m fermtl_tf.methods.hu2018.tsne --model "RN+LAF=runs/laf/model.keras" \\
        --model "RN+LAF+ADA=runs/laf_ada/model.keras" \\
        --expression-data prepared/lsemsw --landmarks-data prepared/300w --out fig3c.png
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.data.pipeline import make_dataset
from fermtl_tf.methods.hu2018.config import TASK_ORDER

DEFAULT_PERPLEXITY = 30.0


def pooled_features(model, dataset, task, max_samples=None):
    """``[N, F]`` pooled features of ``model``'s task network ``task`` on a batch-dict dataset."""
    chunks, total = [], 0
    for batch in dataset:
        images = batch["image"]
        stacked = tf.stack([images] * model.num_tasks)
        chunks.append(model.network(stacked, training=False)[task].numpy())
        total += len(chunks[-1])
        if max_samples is not None and total >= max_samples:
            break
    features = np.concatenate(chunks)
    return features if max_samples is None else features[:max_samples]


def embed(feature_sets, seed=0, perplexity=DEFAULT_PERPLEXITY):
    """Joint 2-D t-SNE of several ``{name: [N_i, F]}`` sets: ``{name: [N_i, 2]}``."""
    from sklearn.manifold import TSNE

    names = list(feature_sets)
    stacked = np.concatenate([feature_sets[name] for name in names]).astype(np.float64)
    perplexity = min(perplexity, (len(stacked) - 1) / 3.0)
    points = TSNE(n_components=2, perplexity=perplexity, init="pca",
                  random_state=seed).fit_transform(stacked)
    out, start = {}, 0
    for name in names:
        out[name] = points[start:start + len(feature_sets[name])]
        start += len(feature_sets[name])
    return out


def plot_embeddings(panels, out_path):
    """One scatter panel per ``{title: {set name: [N, 2]}}`` entry (Fig. 3c layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for axis, (title, sets) in zip(axes[0], panels.items(), strict=True):
        for name, points in sets.items():
            axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6, label=name)
        axis.set(title=title, xticks=[], yticks=[])
        axis.legend(markerscale=3)
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)
    return out_path


def tsne_panels(models, data, split="test", max_samples=500, normalization="minus_one_one",
                seed=0):
    """``{model title: {test set: [N, 2]}}`` for ``models`` {title: Hu2018Model} and
    ``data`` {task name ("expression"/"landmarks"): prepared folder}."""
    panels = {}
    for title, model in models.items():
        features = {}
        for name, folder in data.items():
            dataset = make_dataset(folder, split=split, batch_size=64, training=False,
                                   image_size=(model.input_size, model.input_size),
                                   normalization=normalization)
            features[f"{name} test set"] = pooled_features(model, dataset,
                                                           TASK_ORDER.index(name), max_samples)
        panels[title] = embed(features, seed=seed)
    return panels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True,
                        help="TITLE=path/to/model.keras (repeat: one panel each)")
    parser.add_argument("--expression-data", required=True)
    parser.add_argument("--landmarks-data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-samples", type=int, default=500)
    parser.add_argument("--normalization", default="minus_one_one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    models = {}
    for entry in args.model:
        title, sep, path = entry.partition("=")
        if not sep:
            parser.error(f"--model expects TITLE=path, got {entry!r}")
        models[title] = keras.saving.load_model(path)
    panels = tsne_panels(models, {"expression": args.expression_data,
                                  "landmarks": args.landmarks_data},
                         args.split, args.max_samples, args.normalization, args.seed)
    print(plot_embeddings(panels, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
