"""``DataInfo``: what a method builder may know about the data, read once from the manifests.

``run_experiment`` builds it before the model; builders receive it and never open a
dataset themselves. It holds the manifests' names and sizes (vocabularies, AU and
attribute names, identity counts, per-source AU columns) and, for the few models whose
structure depends on the labels themselves (FaceBehaviorNet Case II's p(attr | id),
Kollias et al. §3.2.1), reads the training labels on request through
:meth:`DataInfo.training_labels`.
"""

import dataclasses
from pathlib import Path

import numpy as np

from fermtl_tf.data.pipeline import load_manifest


def source_name(source):
    """A data source's name in multi-source batches: its ``name``, else its folder's name."""
    return source.name or Path(source.folder).name


@dataclasses.dataclass
class SourceInfo:
    """One data source's manifest summary."""

    name: str
    folder: str
    expression_vocabulary: list
    au_names: list
    attribute_names: list
    num_identities: int


@dataclasses.dataclass
class DataInfo:
    """The data of an experiment, as a method builder sees it.

    ``expression_vocabulary`` is the first training source's that has one; ``au_names``
    and ``attribute_names`` the first training source's; ``num_identities`` the largest
    identity count of the training manifests; ``sources`` every training and
    validation source by name.
    """

    image_size: tuple
    normalization: str
    expression_vocabulary: list
    au_names: list
    attribute_names: list
    num_identities: int
    sources: dict
    train: tuple = ()  # the training SourceConfigs (for training_labels)

    @property
    def num_attributes(self):
        return len(self.attribute_names)

    def source_au_names(self):
        """{source name: its AU columns} of every source (AU heads map them by name)."""
        return {name: list(info.au_names) for name, info in self.sources.items()}

    def training_labels(self, keys):
        """{key: numpy array over every training record} for label ``keys``."""
        from fermtl_tf.data.pipeline import make_dataset

        parts = {key: [] for key in keys}
        for source in self.train:
            dataset = make_dataset(source.folder, source.split, batch_size=256,
                                   image_size=(8, 8), training=False, folds=source.folds,
                                   exclude_folds=source.exclude_folds,
                                   keep_tasks=source.keep_tasks)
            for batch in dataset:
                for key in keys:
                    parts[key].append(batch[key].numpy())
        return {key: np.concatenate(values) for key, values in parts.items()}


def _source_info(source):
    manifest = load_manifest(source.folder)
    return SourceInfo(
        name=source_name(source), folder=source.folder,
        expression_vocabulary=list(manifest.get("vocabularies", {}).get("expression", [])),
        au_names=list(manifest.get("au_names", [])),
        attribute_names=list(manifest.get("attribute_names", [])),
        num_identities=len(manifest.get("identities") or {}),
    )


def build_data_info(config, duplicate_error=ValueError):
    """Read every source's manifest once into a :class:`DataInfo`.

    Two sources with the same name but different AU columns would be ambiguous for the
    AU heads' column mapping: ``duplicate_error`` (an exception type) is raised naming them.
    """
    sources = {}
    for source in (*config.data.train, *config.data.validation):
        info = _source_info(source)
        known = sources.setdefault(info.name, info)
        if known.au_names != info.au_names:
            raise duplicate_error(f"data: two sources named {info.name!r} have different AU "
                                  f"columns; give them distinct names")
    train = [sources[source_name(s)] for s in config.data.train]
    vocabulary = next((s.expression_vocabulary for s in train if s.expression_vocabulary), [])
    return DataInfo(
        image_size=tuple(config.data.image_size), normalization=config.data.normalization,
        expression_vocabulary=list(vocabulary), au_names=list(train[0].au_names),
        attribute_names=list(train[0].attribute_names),
        num_identities=max(s.num_identities for s in train), sources=sources,
        train=tuple(config.data.train))
