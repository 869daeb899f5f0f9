"""A 2-D picture of the ML-branch embedding (Liu et al. 2017, Fig. 1(b) / Fig. 3(d)).

The paper argues that its loss maps faces of one expression into a cluster whatever the
person (Fig. 1(b)), where a softmax-only feature groups faces by identity (Fig. 1(a)).
:func:`plot_embedding_projection` shows which happens for a trained model: the embedding
``f`` of every test face (the metric loss's input: the ML branch's output for 2B, FC2 for
1B), projected to its first two principal components, coloured by expression and marked
by identity.
"""

from pathlib import Path

import numpy as np

#: Identities drawn with their own marker (the rest are omitted: markers run out).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def embed(model, folder, split="test", normalization="per_image", batch_size=64):
    """``(embedding [R, d], expression [R], identity [R])`` of the records of ``split``,
    centre-cropped at the model's input size and normalised as in training
    (``normalization``: the run config's ``data.normalization``)."""
    from fermtl_tf.data.pipeline import make_dataset

    height, width = model.options["image_size"]
    dataset = make_dataset(str(folder), split=split, batch_size=batch_size, training=False,
                           image_size=(height, width), normalization=normalization)
    parts = {"embedding": [], "expression": [], "identity": []}
    for batch in dataset:
        parts["embedding"].append(model(batch["image"], training=False)["embedding"].numpy())
        parts["expression"].append(batch["expression"].numpy())
        parts["identity"].append(batch["identity"].numpy())
    if not parts["embedding"]:
        raise ValueError(f"{folder}: no records in split {split!r}")
    return tuple(np.concatenate(parts[key]) for key in ("embedding", "expression", "identity"))


def project_2d(embedding):
    """The first two principal components of ``embedding`` [R, d] (scikit-learn PCA)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2).fit_transform(np.asarray(embedding, dtype=np.float64))


def pick_identities(identity, count=6, seed=0):
    """``count`` identities (sorted) drawn with a fixed seed among those present."""
    present = np.unique(identity[identity >= 0])
    if len(present) <= count:
        return present
    return np.sort(np.random.default_rng(seed).choice(present, size=count, replace=False))


def plot_projection(points, expression, identity, class_names, path, title="",
                    identities=None):
    """Scatter of ``points`` [R, 2]: colour = expression, marker = identity (``identities``,
    default :func:`pick_identities`); PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = pick_identities(identity) if identities is None else np.asarray(identities)
    if len(chosen) > len(MARKERS):
        raise ValueError(f"at most {len(MARKERS)} identities can get a marker, got {len(chosen)}")
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 5))
    for marker, person in zip(MARKERS, chosen, strict=False):
        rows = identity == person
        ax.scatter(points[rows, 0], points[rows, 1], marker=marker, s=36, edgecolors="k",
                   linewidths=0.4, c=[colours(int(e) % 10) for e in expression[rows]])
    for index, name in enumerate(class_names):
        ax.scatter([], [], color=colours(index % 10), label=name)
    for marker, person in zip(MARKERS, chosen, strict=False):
        ax.scatter([], [], marker=marker, facecolors="none", edgecolors="k",
                   label=f"identity {int(person)}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_embedding_projection(model_path, folder, path, split="test", normalization="per_image",
                              title=""):
    """Load a trained ``TupleClustersNet`` (``model.keras``), embed ``split`` of ``folder``,
    fit the PCA on every face of the split and plot six identities' faces."""
    import json

    import keras

    from fermtl_tf.methods.tuple_clusters import network  # noqa: F401  registers the class

    model = keras.saving.load_model(model_path)
    embedding, expression, identity = embed(model, folder, split, normalization)
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    names = manifest["vocabularies"]["expression"]
    return plot_projection(project_2d(embedding), expression, identity, names, path, title)
