"""FES-DA: the training set enlarged with FERSNet's syntheses (Zhao et al., §IV-D, Table VI
"FERSNet w/ FES-DA": "we generate the facial images with all the other expressions for
each training sample ... the numbers of the samples in each expression category are
balanced").

:func:`write_synthesis_dataset` reads the (labelled) training images of a prepared folder,
synthesises every *other* expression of each with a trained FERSNet and writes the
syntheses as a prepared folder of the same schema (TFRecord shards + ``manifest.json``):
each synthetic face keeps its source's identity, sequence, split and fold, its expression
label is the target, and every other label (landmarks, AUs, valence/arousal, attributes)
is marked missing, since synthesis changes them. The manifest says ``"synthetic"``: which
model, from which folder and selection, how many per class.

Class balance follows from the construction: class c gains one synthesis from every
training image not of class c, so real + synthetic has N images of every class (N
training images). The fine-tuning config trains on both folders
(``method.train_synthesis: false``, ``init_from`` the FERSNet); with
``method.fes_da_source`` naming the synthetic one, :func:`prepare_fes_da` (the method's
``prepare_data`` hook) writes it before training from the first source's selection -- in
a ``fermtl-train --folds`` round, the round's training folds, by the round's FERSNet.
"""

import json
import os
from collections import Counter
from pathlib import Path

import keras
import numpy as np

from fermtl_tf.data.image_io import encode_image
from fermtl_tf.data.pipeline import load_manifest, make_dataset
from fermtl_tf.data.schema import encode_example
from fermtl_tf.data.tfrecord import ShardedWriter, atomic_write_json
from fermtl_tf.errors import ConfigError
from fermtl_tf.methods.fersnet.grid import to_pixels
from fermtl_tf.methods.fersnet.model import FERSNetModel

#: ``source`` feature of a synthetic record.
SYNTHETIC_SOURCE = "fersnet_synthesis"
#: manifest keys copied from the source folder (vocabularies, identities, ...).
_KEPT_MANIFEST_KEYS = ("vocabularies", "vocabulary_name", "au_names", "num_aus",
                       "attribute_names", "num_attributes", "domains", "identities")


def other_expressions(expressions, num_classes):
    """(source row, target expression) of every other-expression synthesis: for each
    sample, the targets 0..E-1 without its own expression, in order."""
    expressions = np.asarray(expressions, np.int64).reshape(-1)
    rows, targets = np.nonzero(np.arange(num_classes)[None, :] != expressions[:, None])
    return rows, targets


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def synthesis_records(model, batches, normalization, image_format="png"):
    """Yield (record dict, split, fold) for every other-expression synthesis of every
    labelled sample of ``batches`` (batch dicts with metadata, ``make_dataset(...,
    keep_metadata=True)``); samples without an expression label are skipped."""
    for batch in batches.as_numpy_iterator():
        labelled = np.asarray(batch["expression_mask"]) > 0
        expressions = np.asarray(batch["expression"])[labelled]
        rows, targets = other_expressions(expressions, model.num_classes)
        if not len(rows):
            continue
        sources = np.flatnonzero(labelled)[rows]
        synthetic = model.synthesize(batch["image"][sources], targets.astype(np.int32))
        pixels = to_pixels(np.asarray(synthetic), normalization)
        for face, source, target in zip(pixels, sources, targets, strict=True):
            split, fold = _text(batch["split"][source]), int(batch["fold"][source])
            record = {
                "image": encode_image(face, image_format),
                "image_id": f"{_text(batch['image_id'][source])}~to{int(target)}",
                "source": SYNTHETIC_SOURCE,
                "identity": int(batch["identity"][source]),
                "sequence_id": _text(batch["sequence_id"][source]),
                "frame_index": int(batch["frame_index"][source]),
                "domain": int(batch["domain"][source]),
                "expression": int(target), "expression_mask": 1,
                "split": split, "fold": fold,
            }
            yield record, split, fold


def write_synthesis_dataset(model, folder, out_dir, image_size, normalization, split="train",
                            folds=None, exclude_folds=None, augment=None, batch_size=64,
                            records_per_shard=1024, generator=None):
    """Write every other-expression synthesis of the selected images of ``folder`` into
    ``out_dir`` (a new prepared folder); returns its manifest.

    ``model`` is a FERSNet (``synthesize``, ``num_classes``) trained on ``image_size`` and
    ``normalization``; the images are read as at test time (``augment``'s centre crop
    only), so the syntheses are ``image_size`` faces. ``generator`` names the model in
    the manifest (e.g. its ``model.keras``).
    """
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").exists():
        raise FileExistsError(f"{out_dir} already holds a prepared dataset (manifest.json)")
    source_manifest = load_manifest(str(folder))
    vocabulary = source_manifest.get("vocabularies", {}).get("expression", [])
    if len(vocabulary) != model.num_classes:
        raise ValueError(f"{folder}: the expression vocabulary has {len(vocabulary)} classes, "
                         f"the FERSNet {model.num_classes}")
    batches = make_dataset(str(folder), split=split, folds=folds, exclude_folds=exclude_folds,
                           batch_size=batch_size, image_size=image_size, training=False,
                           augment=augment, normalization=normalization, keep_metadata=True)
    serialized, splits, fold_counts, per_class = [], Counter(), Counter(), Counter()
    for record, record_split, fold in synthesis_records(model, batches, normalization):
        serialized.append(encode_example(record, source_manifest["num_aus"],
                                         source_manifest["num_attributes"]))
        splits[record_split] += 1
        per_class[vocabulary[record["expression"]]] += 1
        if fold >= 0:
            fold_counts[str(fold)] += 1
    if not serialized:
        raise ValueError(f"{folder}: no labelled image in split={split!r}, folds={folds!r}, "
                         f"exclude_folds={exclude_folds!r} to synthesise from")
    num_shards = -(-len(serialized) // records_per_shard)
    writer = ShardedWriter(out_dir, num_shards)
    shards = [writer.write_shard(k, serialized[k * records_per_shard:(k + 1) * records_per_shard])
              for k in range(num_shards)]
    manifest = {
        **{key: source_manifest[key] for key in _KEPT_MANIFEST_KEYS if key in source_manifest},
        "source": SYNTHETIC_SOURCE,
        "image_size": [int(v) for v in image_size],
        "image_format": "png",
        "landmarks_units": "pixels",
        "normalisation": "none",
        "splits": dict(sorted(splits.items())),
        "folds": dict(sorted(fold_counts.items(), key=lambda item: int(item[0]))),
        "counts": {"written": len(serialized)},
        "shards": shards,
        "synthetic": {
            "method": "fersnet", "generator": None if generator is None else str(generator),
            "from": os.fspath(folder), "split": split, "folds": folds,
            "exclude_folds": exclude_folds, "targets_per_image": model.num_classes - 1,
            "per_class": dict(sorted(per_class.items())),
        },
    }
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def _selection_record(config):
    """What a FES-DA manifest's ``"synthetic"`` records about its inputs, for this config:
    the generator (``init_from``) and the first training source's selection."""
    real = config.data.train[0]
    return {"generator": str(config.init_from), "from": os.fspath(real.folder),
            "split": real.split, "folds": real.folds, "exclude_folds": real.exclude_folds}


def load_synthesizer(path, source="<config>"):
    """The FERSNet (with its synthesis branch) saved at ``path``; ConfigError otherwise."""
    if not Path(path).is_file():
        raise ConfigError(f"{source}: key 'init_from': no such model file: {path} (the "
                          f"FERSNet whose syntheses FES-DA trains on; train it first)")
    model = keras.saving.load_model(path, compile=False)
    if not isinstance(model, FERSNetModel) or not model.synthesis:
        raise ConfigError(f"{source}: key 'init_from': {path} is not a FERSNet with a "
                          f"synthesis branch")
    return model


def prepare_fes_da(config, source="<config>"):
    """Write the FES-DA source ``data.train[method.fes_da_source]`` unless it is complete
    (Zhao et al. §IV-D): every other-expression synthesis, by the ``init_from`` FERSNet,
    of the labelled faces the first training source selects (a k-fold round's training
    folds only), read as at test time (its centre crop). A complete folder made from
    another model or selection is refused, not reused."""
    index = config.method.fes_da_source
    if index is None:
        return None
    real, synthetic = config.data.train[0], config.data.train[index]
    wanted = _selection_record(config)
    manifest_path = Path(synthetic.folder) / "manifest.json"
    if manifest_path.is_file():
        recorded = json.loads(manifest_path.read_text(encoding="utf-8")).get("synthetic", {})
        stale = {key: recorded.get(key) for key in wanted if recorded.get(key) != wanted[key]}
        if stale:
            raise ConfigError(f"{source}: key 'data.train[{index}].folder': {synthetic.folder} "
                              f"holds syntheses made with {stale}, not {wanted}; delete it "
                              f"to synthesise again")
        return None
    model = load_synthesizer(config.init_from, source)
    return write_synthesis_dataset(
        model, real.folder, synthetic.folder, image_size=tuple(config.data.image_size),
        normalization=config.data.normalization, split=real.split, folds=real.folds,
        exclude_folds=real.exclude_folds, augment=real.augment, generator=config.init_from)
