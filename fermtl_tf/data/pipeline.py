"""The tf.data reader of prepared datasets: parse, filter, augment, normalise, batch.

A prepared dataset folder holds TFRecord shards (``fermtl_tf.data.schema``) and a
``manifest.json`` (``docs/ARCHITECTURE.md``). :func:`make_dataset` turns one folder into
a stream of *batch dicts*; :func:`make_multi_source_dataset` zips several folders into
``{source_name: batch dict}`` for heterogeneous multi-task training (expressions from one
dataset, AUs or landmarks from another), each source with its own batch size.

Order of operations (per element unless noted)::

    shards -> parse -> filter split [, folds, holdout part] -> [cache] -> [shuffle]
           -> [repeat: passes 0, 1, ... of the training stream]
           -> zip with a per-element random seed -> decode, landmarks to (0, 1),
              augment + resize -> batch -> [preprocess] -> normalise (vectorised) -> prefetch

Selection: ``split`` (a name, a list of names, or None for all) and ``folds`` /
``exclude_folds`` (ints) select records, the same way for training and evaluation. The
importers of cross-validation datasets (CK+, Oulu-CASIA, MMI) write no split, only
folds; the manifest counts those records under :data:`UNASSIGNED_SPLIT`, and that name
selects them here. A selection that matches no record is an error naming the folder
and what it holds. :func:`fermtl_tf.data.protocols.fold_roles` gives the train,
validation and test folds of one round of k-fold cross-validation.

Randomness: every augmentation is stateless and takes its seed from a
``tf.data.Dataset.random`` stream zipped with the elements. Training reads the *training
stream* (``repeat=True``): pass p of the selection takes its shard order, shuffle and
augmentation seeds from (seed, p) alone, so the seed of an element is a function of
(seed, position in the stream) and a stream started at record n (``first_record``, a
resumed run) continues exactly as an uninterrupted one. With ``deterministic=True`` the
dataset's ``Options.deterministic`` is on as well, and two pipelines built with the
same arguments yield identical batches, epoch after epoch.
"""

import json
import os
import random

import tensorflow as tf

from fermtl_tf.data import schema
from fermtl_tf.data.augment import AugmentConfig, make_augment_fn
from fermtl_tf.data.preprocess import as_preprocess_config, preprocess_images
from fermtl_tf.data.schema import UNASSIGNED_SPLIT
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS

#: Pass numbers of a training stream stay below this (seeds of passes never collide).
_PASS_STRIDE = 1_000_003
#: Image normalisations understood by :func:`normalize_images` (and the exporter).
NORMALIZATION_MODES = ("minus_one_one", "zero_one", "per_image", "none")

#: Manifest keys the reader needs.
REQUIRED_MANIFEST_KEYS = ("num_aus", "num_attributes", "image_size", "au_names", "shards")


#: Features kept only with ``keep_metadata=True`` (evaluation, sequence protocols).
METADATA_FEATURES = ("image_id", "sequence_id", "source", "split", "frame_index", "fold")

_FLOAT_LABELS = (
    "expression_mask", "landmarks_mask", "valence", "arousal", "va_mask",
    "au", "au_mask", "au_intensity", "attributes", "attributes_mask",
)
_INT_LABELS = ("expression", "identity", "domain")

#: Task -> (mask keys set to 0, label keys set to their "missing" filler) when a source
#: drops the task (``keep_tasks``); identity has no mask, its filler -1 means missing.
LABEL_TASKS = {
    "expression": (("expression_mask",), {}),
    "landmarks": (("landmarks_mask",), {}),
    "va": (("va_mask",), {}),
    "au": (("au_mask",), {}),
    "attributes": (("attributes_mask",), {}),
    "identity": ((), {"identity": -1}),
}


def _check_keep_tasks(keep_tasks, folder):
    if keep_tasks is None:
        return None
    unknown = sorted(set(keep_tasks) - set(LABEL_TASKS))
    if unknown:
        raise ValueError(f"{folder}: keep_tasks has unknown task(s) {unknown}; "
                         f"known: {sorted(LABEL_TASKS)}")
    return tuple(keep_tasks)


def drop_task_labels(example, keep_tasks):
    """``example`` with the labels of every task outside ``keep_tasks`` marked missing.

    Makes one source of a multi-source batch supervise only some tasks (e.g. the VA-,
    AU- and EXPR-sets of FaceBehaviorNet, §4.4, from datasets that carry more labels).
    """
    out = dict(example)
    for task, (masks, fillers) in LABEL_TASKS.items():
        if task in keep_tasks:
            continue
        for key in masks:
            if key in out:
                out[key] = tf.zeros_like(out[key])
        for key, value in fillers.items():
            if key in out:
                out[key] = tf.fill(tf.shape(out[key]), tf.cast(value, out[key].dtype))
    return out


def load_manifest(folder):
    """Read and check ``folder/manifest.json``; errors name the file and the key."""
    path = os.path.join(folder, "manifest.json")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"no manifest.json in dataset folder: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"malformed JSON in {path}: {error}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    missing = [key for key in REQUIRED_MANIFEST_KEYS if key not in manifest]
    if missing:
        raise KeyError(f"{path}: missing manifest key(s) {missing}")
    if len(manifest["au_names"]) != manifest["num_aus"]:
        raise ValueError(
            f"{path}: 'au_names' has {len(manifest['au_names'])} names but 'num_aus' is "
            f"{manifest['num_aus']}"
        )
    if len(manifest["image_size"]) != 2:
        raise ValueError(
            f"{path}: 'image_size' must be [height, width], got {manifest['image_size']}"
        )
    for index, shard in enumerate(manifest["shards"]):
        if not isinstance(shard, dict) or "path" not in shard:
            raise ValueError(f"{path}: shards[{index}] has no 'path'")
    return manifest


def normalize_images(images, mode):
    """Map raw pixel values (float, 0-255) to the model's input range.

    ``"minus_one_one"``: x / 127.5 - 1 (FaceBehaviorNet, Kollias et al. Sec. 5.1);
    ``"zero_one"``: x / 255; ``"per_image"``: zero mean, unit variance per image
    (``tf.image.per_image_standardization``, std floored at 1/sqrt(N); Liu et al. 2017
    Sec. 4.1); ``"none"``: unchanged. Works on [H, W, C] and [B, H, W, C].
    """
    if mode not in NORMALIZATION_MODES:
        raise ValueError(f"unknown normalization {mode!r}; known: {NORMALIZATION_MODES}")
    images = tf.cast(images, tf.float32)
    if mode == "minus_one_one":
        return images / 127.5 - 1.0
    if mode == "zero_one":
        return images / 255.0
    if mode == "per_image":
        return tf.image.per_image_standardization(images)
    return images


def model_inputs(images, normalization, preprocess=None):
    """Raw pixels -> what the model sees: :func:`~fermtl_tf.data.preprocess.preprocess_images`
    (grayscale, histogram equalisation, plane fitting) then :func:`normalize_images`.

    The one function the reader and the exporter share, so that training, evaluation
    and a served SavedModel transform pixels identically.
    """
    return normalize_images(preprocess_images(images, preprocess), normalization)


def _as_augment_config(augment):
    if augment is None or isinstance(augment, AugmentConfig):
        return augment
    if isinstance(augment, dict):
        return AugmentConfig.from_dict(augment)
    raise TypeError(
        f"augment must be an AugmentConfig, a dict or None, got {type(augment).__name__}"
    )


def available_folds(manifest):
    """Sorted fold numbers the manifest counts (``manifest["folds"]``), [] if it counts none."""
    folds = manifest.get("folds")
    return sorted(int(fold) for fold in folds) if isinstance(folds, dict) else []


def _holdings(manifest):
    """What a folder holds, for error messages: ``splits: [...]`` and ``folds: [...]``."""
    text = f"splits: {sorted(manifest.get('splits') or {})}"
    folds = available_folds(manifest)
    return f"{text}; folds: {folds}" if folds else text


def _requested_splits(split, manifest, folder):
    """Normalise ``split`` to a tuple of names (or None) and check it against the manifest."""
    if split is None:
        return None
    splits = (split,) if isinstance(split, str) else tuple(split)
    if not splits or not all(isinstance(name, str) for name in splits):
        raise ValueError(f"{folder}: split must be a name, a list of names or None, "
                         f"got {split!r}")
    known = manifest.get("splits")
    if isinstance(known, dict):
        unknown = [name for name in splits if name not in known]
        if unknown:
            hint = ""
            if set(known) == {UNASSIGNED_SPLIT}:
                hint = (f"; this cross-validation dataset has folds but no splits: select "
                        f"split {UNASSIGNED_SPLIT!r} (or none) with folds / exclude_folds")
            raise ValueError(f"split(s) {unknown} not in {os.path.join(folder, 'manifest.json')} "
                             f"({_holdings(manifest)}){hint}")
    return splits


def _record_split_values(splits):
    """The ``split`` feature values of the named splits: the unassigned name matches ""."""
    values = list(splits)
    if UNASSIGNED_SPLIT in values:
        values.append("")
    return values


def _shard_paths(folder, manifest):
    paths = [os.path.join(folder, shard["path"]) for shard in manifest["shards"]]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(f"shard(s) listed in {folder}/manifest.json not found: {missing}")
    if not paths:
        raise ValueError(f"{folder}/manifest.json lists no shards")
    return paths


def _fold_list(name, folds, manifest, folder):
    """None, or a tuple of ints from an int or a list (``folds``/``exclude_folds``).

    Folds the manifest does not count are an error (a 1-based fold number, a fold of
    another protocol); -1, the fold of records outside every fold, is always accepted.
    """
    if folds is None:
        return None
    folds = (folds,) if isinstance(folds, int) else tuple(folds)
    if not all(isinstance(f, int) and not isinstance(f, bool) for f in folds):
        raise ValueError(f"{name} must be an int or a list of ints, got {folds!r}")
    known = available_folds(manifest)
    unknown = [f for f in folds if f != -1 and f not in known]
    if known and unknown:
        raise ValueError(f"{name} {unknown} not in {os.path.join(folder, 'manifest.json')} "
                         f"({_holdings(manifest)})")
    return folds


def _count_from_manifest(manifest, splits, folds, exclude_folds):
    """The number of selected records from the manifest's tallies, or None if they cannot tell.

    The manifest counts splits and folds separately, so a fold selection is counted
    from it only when the splits selected are all the folder holds.
    """
    known = manifest.get("splits")
    if not isinstance(known, dict):
        return None
    if folds is None and exclude_folds is None:
        return int(sum(known[name] for name in (splits or known)))
    fold_counts = manifest.get("folds")
    every_split = splits is None or set(splits) >= set(known)
    negative = any(f < 0 for f in (folds or ()) + (exclude_folds or ()))
    if not isinstance(fold_counts, dict) or not every_split or negative:
        return None
    counts = {int(fold): int(count) for fold, count in fold_counts.items()}
    counts[-1] = int(sum(known.values())) - sum(counts.values())
    kept = set(counts) if folds is None else set(folds)
    kept -= set(exclude_folds or ())
    return sum(counts.get(fold, 0) for fold in kept)


#: The two parts of a split cut by ``holdout`` (see :func:`make_dataset`).
HOLDOUT_PARTS = ("holdout", "rest")

#: Resolution of the hash that assigns a record to a part.
_HOLDOUT_BUCKETS = 1 << 30


def _check_holdout(holdout, folder):
    """``holdout`` as ``(fraction, seed, part, stratify)``, or None; errors name the key."""
    if holdout is None:
        return None
    if not isinstance(holdout, dict):
        raise TypeError(f"{folder}: holdout must be a dict with fraction, seed, part, "
                        f"stratify; got {type(holdout).__name__}")
    unknown = sorted(set(holdout) - {"fraction", "seed", "part", "stratify"})
    if unknown:
        raise ValueError(f"{folder}: holdout has unknown key(s) {unknown}; "
                         f"known: fraction, seed, part, stratify")
    fraction = float(holdout.get("fraction", 0.25))
    seed = holdout.get("seed", 0)
    part = holdout.get("part", "holdout")
    stratify = holdout.get("stratify", False)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{folder}: holdout.fraction must be in (0, 1), got {fraction}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{folder}: holdout.seed must be a non-negative int, got {seed!r}")
    if part not in HOLDOUT_PARTS:
        raise ValueError(f"{folder}: holdout.part must be one of {HOLDOUT_PARTS}, got {part!r}")
    if not isinstance(stratify, bool):
        raise ValueError(f"{folder}: holdout.stratify must be true or false, got {stratify!r}")
    return fraction, seed, part, stratify


def in_holdout(image_ids, fraction, seed):
    """True for the held-out ``image_ids``: a keyed hash (SipHash, key ``seed``) of the id
    falls in the lowest ``fraction`` of its range.

    A function of (id, fraction, seed) only -- independent of shards, shuffling and the
    other records -- so the held-out part and the rest are disjoint, cover the split,
    and are the same in every run. The held-out count is ``fraction * n`` in expectation
    (binomial), not exactly; ids must be unique for the cut to be per image.
    """
    buckets = tf.strings.to_hash_bucket_strong(image_ids, _HOLDOUT_BUCKETS, key=[seed, 0])
    return buckets < int(round(fraction * _HOLDOUT_BUCKETS))


def stratified_holdout_ids(records, fraction, seed):
    """Image ids held out per expression class: ``round(fraction * n_c)`` of each class.

    ``records`` are parsed records (one scan at build time); a class's sorted ids are
    permuted by ``seed`` (numpy) and cut, the way the importers hold out (``holdout`` of
    ``data/sources/_listfile_common.py``). Records without an expression label form one
    more stratum. Exact per-class counts matter for small classes (RAF-CE's happily
    fearful has 11 images).
    """
    # The importers' rule, imported here only: the sources package registers every importer.
    from fermtl_tf.data.sources._listfile_common import holdout as held_out_keys

    by_class = {}
    pairs = records.map(lambda r: (r["image_id"], tf.where(
        r["expression_mask"] > 0, tf.cast(r["expression"], tf.int64), tf.constant(-1, tf.int64))))
    for image_id, label in pairs.as_numpy_iterator():
        by_class.setdefault(int(label), []).append(image_id.decode())
    held = set()
    for ids in by_class.values():
        held |= held_out_keys(ids, fraction, seed)
    return sorted(held)


def _holdout_filter(records, holdout):
    """``keep(records)``: the held-out part of ``records`` or the rest (``holdout``
    checked). The stratified cut scans ``records`` once, now."""
    fraction, seed, part, stratify = holdout
    keep = part == "holdout"
    if not stratify:
        return lambda records: records.filter(
            lambda record: tf.equal(in_holdout(record["image_id"], fraction, seed), keep))
    held = stratified_holdout_ids(records, fraction, seed)
    if not held:
        return lambda records: records.filter(lambda record: tf.constant(not keep))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(held), tf.ones(len(held), tf.int64)),
        default_value=0)
    return lambda records: records.filter(
        lambda record: tf.equal(table.lookup(record["image_id"]) > 0, keep))


def count_records(folder, split=None, manifest=None, folds=None, exclude_folds=None,
                  holdout=None):
    """Number of records of ``split`` (and ``folds``, not ``exclude_folds``, the
    ``holdout`` part) in ``folder``.

    From the manifest's tallies where they suffice, else by a scan of the shards (always
    with ``holdout``, which the manifest does not count).
    """
    manifest = manifest or load_manifest(folder)
    splits = _requested_splits(split, manifest, folder)
    folds = _fold_list("folds", folds, manifest, folder)
    exclude_folds = _fold_list("exclude_folds", exclude_folds, manifest, folder)
    holdout = _check_holdout(holdout, folder)
    if holdout is None:
        count = _count_from_manifest(manifest, splits, folds, exclude_folds)
        if count is not None:
            return count
    records = _parsed_records(folder, manifest, splits, folds=folds,
                              exclude_folds=exclude_folds, holdout=holdout)
    return int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def check_selection(folder, split=None, folds=None, exclude_folds=None, manifest=None,
                    holdout=None):
    """Number of selected records; ValueError naming the folder and its holdings if none."""
    manifest = manifest or load_manifest(folder)
    count = count_records(folder, split, manifest, folds, exclude_folds, holdout)
    if count == 0:
        raise ValueError(
            f"{folder}: no record of split {split!r} with folds={folds!r}, "
            f"exclude_folds={exclude_folds!r}, holdout={holdout!r} ({_holdings(manifest)})")
    return count


def _record_reader(folder, manifest, splits, folds=None, exclude_folds=None, holdout=None,
                   with_image=True):
    """``read(files)``: parsed examples (image still encoded; left out with
    ``with_image=False``) of the requested splits, folds and part, read from a dataset of
    shard paths. Whatever needs a scan (the stratified holdout) is done once, here, so
    ``read`` can be called again for every pass of a training stream."""
    spec = schema.parse_spec(manifest["num_aus"], manifest["num_attributes"])
    if not with_image:
        del spec["image"]
    cycle = min(len(_shard_paths(folder, manifest)), 4)

    def parse(files):
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=cycle,
                                   num_parallel_calls=tf.data.AUTOTUNE)
        return records.map(lambda serialized: tf.io.parse_single_example(serialized, spec),
                           num_parallel_calls=tf.data.AUTOTUNE)

    def select(records):
        if splits is not None:
            wanted = tf.constant(_record_split_values(splits))
            records = records.filter(
                lambda record: tf.reduce_any(tf.equal(record["split"], wanted)))
        if folds is not None:
            kept = tf.constant(folds, tf.int64)
            records = records.filter(
                lambda record: tf.reduce_any(tf.equal(record["fold"], kept)))
        if exclude_folds is not None:
            dropped = tf.constant(exclude_folds, tf.int64)
            records = records.filter(
                lambda record: tf.logical_not(tf.reduce_any(tf.equal(record["fold"], dropped))))
        return records

    if holdout is None:
        return lambda files: select(parse(files))
    paths = tf.data.Dataset.from_tensor_slices(_shard_paths(folder, manifest))
    keep_part = _holdout_filter(select(parse(paths)), holdout)
    return lambda files: keep_part(select(parse(files)))


def _parsed_records(folder, manifest, splits, shuffle_files=False, seed=None, folds=None,
                    exclude_folds=None, holdout=None, with_image=True):
    """Parsed examples of the requested splits, folds and part (:func:`_record_reader`),
    shard order reshuffled on every iteration with ``shuffle_files``."""
    paths = _shard_paths(folder, manifest)
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_files and len(paths) > 1:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    read = _record_reader(folder, manifest, splits, folds, exclude_folds, holdout, with_image)
    return read(files)


def labelled_tasks(folder, tasks, split=None, folds=None, exclude_folds=None, holdout=None,
                   keep_tasks=None, batch_size=4096):
    """The subset of ``tasks`` (keys of :data:`LABEL_TASKS`) with at least one label in
    the selected records of ``folder``.

    A label scan: the records are parsed without their images and never decoded, and the
    scan stops as soon as every task has been seen labelled, so a usable dataset costs one
    batch of records; only a task missing everywhere costs a full read of the selection.
    ``keep_tasks`` (a source's option) unlabels the tasks outside it, as the reader does.
    """
    manifest = load_manifest(folder)
    wanted = [task for task in tasks if keep_tasks is None or task in keep_tasks]
    records = _parsed_records(folder, manifest, _requested_splits(split, manifest, folder),
                              folds=_fold_list("folds", folds, manifest, folder),
                              exclude_folds=_fold_list("exclude_folds", exclude_folds,
                                                       manifest, folder),
                              holdout=_check_holdout(holdout, folder), with_image=False)
    found = set()
    for batch in records.batch(batch_size):
        for task in wanted:
            masks, _ = LABEL_TASKS[task]
            present = batch["identity"] >= 0 if task == "identity" else batch[masks[0]] > 0
            if bool(tf.reduce_any(present)):
                found.add(task)
        if found == set(wanted):
            break
    return found


def _make_element_fn(manifest, image_size, augment, training, keep_metadata, keep_tasks=None):
    """Per-element map: decode, landmarks to (0, 1), augment/resize, cast labels."""
    augment_fn = make_augment_fn(augment, image_size, manifest["au_names"], training=training)

    def element(record, seed):
        image = tf.io.decode_image(record["image"], channels=3, expand_animations=False)
        image = tf.cast(image, tf.float32)
        crop_hw = tf.cast(tf.shape(image)[:2], tf.float32)
        landmarks = tf.reshape(record["landmarks"], [NUM_LANDMARKS, 2])
        example = {"image": image, "landmarks": landmarks / tf.stack([crop_hw[1], crop_hw[0]])}
        for key in ("au", "au_mask", "au_intensity"):
            example[key] = record[key]
        example = augment_fn(example, seed)
        out = {"image": example["image"], "landmarks": example["landmarks"]}
        for key in _FLOAT_LABELS:
            out[key] = tf.cast(example.get(key, record[key]), tf.float32)
        for key in _INT_LABELS:
            out[key] = tf.cast(record[key], tf.int32)
        if keep_metadata:
            for key in METADATA_FEATURES:
                out[key] = record[key]
        return out if keep_tasks is None else drop_task_labels(out, keep_tasks)

    return element


def _pass_seed(seed, pass_index):
    """The seed of one pass of a training stream (shard order, shuffle, augmentation):
    a function of (seed, pass) only, distinct for every pass below :data:`_PASS_STRIDE`."""
    return tf.cast(seed, tf.int64) * _PASS_STRIDE + tf.cast(pass_index, tf.int64)


def _training_stream(read, paths, count, shuffle_buffer, seed, first_record, cache):
    """(record, element seed) pairs of the endless training stream, from ``first_record``.

    Pass p (one shuffled reading of the selection) draws its shard order, shuffle and
    augmentation seeds from :func:`_pass_seed` (seed, p) alone, so the stream is a fixed
    sequence: started at record n it continues exactly as an uninterrupted stream does
    after its first n records. A resumed run starts where the interrupted one stopped,
    with the same orders and augmentations (issue 13: resume equals an uninterrupted run).
    """
    files = tf.data.Dataset.from_tensor_slices(paths)
    cached = read(files).cache() if cache else None

    def one_pass(pass_index):
        # The pass seed is a tensor here; TF pairs an op seed with the graph-level seed
        # and, when that is 0 (keras.utils.set_random_seed(0)), tests the tensor as a
        # Python bool. Clearing the seed of this function's graph (graph mode: it does
        # not touch the global seed) makes every draw a function of (seed, pass) alone.
        tf.random.set_seed(None)
        pass_seed = _pass_seed(seed, pass_index)
        if cached is not None:
            records = cached
        else:
            order = files.shuffle(len(paths), seed=pass_seed, reshuffle_each_iteration=False)
            records = read(order if len(paths) > 1 else files)
        if shuffle_buffer > 1:
            records = records.shuffle(shuffle_buffer, seed=pass_seed,
                                      reshuffle_each_iteration=False)
        return tf.data.Dataset.zip(records, tf.data.Dataset.random(seed=pass_seed).batch(2))

    first_pass, offset = divmod(int(first_record), count)
    stream = tf.data.Dataset.counter(first_pass).flat_map(one_pass).skip(offset)
    return stream.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))


def _iterations(read, paths, training, shuffle_buffer, seed, repeat, cache):
    """(record, element seed) pairs read once per iteration of the dataset (evaluation, or
    one training pass per iteration: shard order, shuffle and augmentation seeds advance
    with every iteration in this process, which a restarted process does not recall)."""
    files = tf.data.Dataset.from_tensor_slices(paths)
    if training and len(paths) > 1:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = read(files)
    if cache:
        records = records.cache()
    if training and shuffle_buffer > 1:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(records, seeds)


def make_dataset(folder, split="train", batch_size=32, image_size=(96, 96), training=True,
                 augment=None, normalization="minus_one_one", shuffle_buffer=1024, seed=0,
                 deterministic=False, keep_metadata=False, repeat=False, drop_remainder=False,
                 cache=False, folds=None, exclude_folds=None, keep_tasks=None, holdout=None,
                 preprocess=None, first_record=0):
    """Batched ``tf.data.Dataset`` of batch dicts read from one prepared folder.

    Args:
        folder: prepared dataset folder (shards + ``manifest.json``).
        split: split name, list of names, or None for every record; ``"unassigned"``
            (:data:`UNASSIGNED_SPLIT`) names the records written without a split.
        batch_size: examples per batch.
        image_size: (height, width) the images are resized (or warped) to.
        training: shuffle and apply ``augment``; when False only the centre crop of
            ``augment.random_crop`` (if any) remains, and the order is deterministic.
        augment: :class:`AugmentConfig`, a dict for :meth:`AugmentConfig.from_dict`, or None.
        normalization: one of :data:`NORMALIZATION_MODES`.
        shuffle_buffer: shuffle buffer size (records) in training.
        seed: seed of the shuffles and augmentations; None draws a fresh one (only
            without ``deterministic``).
        deterministic: same batches for the same arguments, every run.
        keep_metadata: also yield ``image_id``, ``sequence_id``, ``source``, ``split``
            (tf.string) and ``frame_index``, ``fold`` (int64).
        repeat: repeat forever (the shuffle differs from one pass to the next). In
            training this is the *training stream*: pass p of the selection is shuffled
            and augmented with seeds of (seed, p) only, so the stream is one fixed
            sequence, whatever the process; without ``repeat`` a training dataset is one
            pass per iteration, reshuffled by the iteration count of this process.
        first_record: where the training stream starts (records already consumed: a
            resumed run passes ``epochs done x steps x batch_size``).
        drop_remainder: drop the last incomplete batch (static batch dimension).
        cache: cache the parsed, filtered records (images still encoded) in memory.
        folds: keep only records whose ``fold`` is in this int or list (k-fold protocols,
            e.g. the test fold of Hu et al. 2018 Table 7); None keeps every fold. A fold
            the manifest does not count is an error.
        exclude_folds: drop records whose ``fold`` is in this int or list (the training
            folds of a k-fold protocol are ``exclude_folds=[k]``, or ``folds=train`` of
            :func:`fermtl_tf.data.protocols.fold_roles` with a validation fold).
        keep_tasks: None keeps every label; a list of task names (keys of
            :data:`LABEL_TASKS`) marks the labels of all other tasks missing (mask 0).
        holdout: None, or ``{"fraction": 0.25, "seed": 0, "part": "holdout" | "rest",
            "stratify": False}``: keep only the held-out ``fraction`` of the selected
            records, or the rest (e.g. the meta-validation quarter of the training set,
            Li et al. 2023 §5.2). Membership is :func:`in_holdout` of the ``image_id``
            (per record, expected fraction), or with ``stratify`` exactly
            ``round(fraction * n_c)`` per expression class
            (:func:`stratified_holdout_ids`, one scan of the records when building).
        preprocess: None, or a :class:`~fermtl_tf.data.preprocess.PreprocessConfig` (or
            its dict): grayscale, histogram equalisation, plane fitting of the batch after
            augmentation and before ``normalization`` (Liu et al. 2017 Sec. 5.1), the same
            in training and evaluation mode.
    """
    if normalization not in NORMALIZATION_MODES:
        raise ValueError(f"unknown normalization {normalization!r}; known: {NORMALIZATION_MODES}")
    if deterministic and seed is None:
        raise ValueError("deterministic=True needs an integer seed")
    manifest = load_manifest(folder)
    splits = _requested_splits(split, manifest, folder)
    augment = _as_augment_config(augment)
    preprocess = as_preprocess_config(preprocess)
    image_size = tuple(int(v) for v in image_size)
    folds = _fold_list("folds", folds, manifest, folder)
    exclude_folds = _fold_list("exclude_folds", exclude_folds, manifest, folder)
    keep_tasks = _check_keep_tasks(keep_tasks, folder)
    checked_holdout = _check_holdout(holdout, folder)
    count = check_selection(folder, split, folds, exclude_folds, manifest, holdout)

    read = _record_reader(folder, manifest, splits, folds, exclude_folds, checked_holdout)
    if training and repeat:
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        elements = _training_stream(read, _shard_paths(folder, manifest), count,
                                    shuffle_buffer, seed, first_record, cache)
    else:
        if first_record:
            raise ValueError("first_record needs training=True and repeat=True")
        elements = _iterations(read, _shard_paths(folder, manifest), training, shuffle_buffer,
                               seed, repeat, cache)
    element_fn = _make_element_fn(manifest, image_size, augment, training, keep_metadata,
                                  keep_tasks)
    dataset = elements.map(element_fn, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda batch: {**batch, "image": model_inputs(batch["image"], normalization, preprocess)},
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if not repeat:
        # Filtering by split hides the length from tf.data; the manifest knows it, and
        # Keras needs it to end an epoch without an "input ran out of data" warning.
        batches = count // batch_size if drop_remainder else -(-count // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    options = tf.data.Options()
    options.deterministic = bool(deterministic or not training)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def make_multi_source_dataset(sources, image_size=(96, 96), training=True,
                              normalization="minus_one_one", seed=0, deterministic=False,
                              steps_per_epoch=None, preprocess=None, epochs=1,
                              first_step=0):
    """Zip several prepared folders: each step yields one batch from every source.

    ``sources`` maps a name to keyword arguments of :func:`make_dataset` (at least
    ``folder``; ``batch_size``, ``split``, ``augment``, ... per source). Every source is
    repeated, so the shorter ones cycle while the longest is read once.

    Epoch definition: ``steps_per_epoch`` steps; by default the number of batches of
    the *longest* source, ``max_s ceil(n_s / batch_size_s)``, so the first epoch reads
    the longest source once. Batches always have their full size (``drop_remainder``),
    since repetition fills the last one. The one-pass guarantee is exact with
    ``deterministic=True``; otherwise the parallel map may let a few records of the next
    pass overtake the last ones of this pass.

    In training every source is its training stream (:func:`make_dataset` with
    ``repeat``), so epoch after epoch the steps continue one fixed sequence; ``epochs``
    epochs are yielded (None: endless, for ``fit`` with ``steps_per_epoch``), starting at
    step ``first_step`` of the sequence (a resumed run: epochs done x steps per epoch).

    Returns a dataset of ``{name: batch dict}`` with cardinality
    ``epochs * steps_per_epoch`` (unknown when endless).
    """
    if not sources:
        raise ValueError("make_multi_source_dataset needs at least one source")
    datasets, steps = {}, []
    for index, (name, kwargs) in enumerate(sources.items()):
        kwargs = dict(kwargs)
        if "folder" not in kwargs:
            raise KeyError(f"source {name!r} has no 'folder'")
        for key in ("repeat", "drop_remainder", "image_size", "training", "normalization",
                    "preprocess"):
            if key in kwargs:
                raise ValueError(f"source {name!r}: {key!r} is set for all sources, not per source")
        kwargs.setdefault("seed", None if seed is None else seed + index)
        kwargs.setdefault("deterministic", deterministic)
        kwargs.setdefault("split", "train")
        kwargs.setdefault("batch_size", 32)
        if steps_per_epoch is None:
            count = check_selection(kwargs["folder"], kwargs["split"], kwargs.get("folds"),
                                    kwargs.get("exclude_folds"), holdout=kwargs.get("holdout"))
            steps.append(-(-count // kwargs["batch_size"]))
        if first_step:
            kwargs["first_record"] = first_step * kwargs["batch_size"]
        datasets[name] = make_dataset(
            image_size=image_size, training=training, normalization=normalization,
            preprocess=preprocess, repeat=True, drop_remainder=True, **kwargs,
        )
    steps_per_epoch = steps_per_epoch or max(steps)
    dataset = tf.data.Dataset.zip(datasets)
    if epochs is not None:
        dataset = dataset.take(steps_per_epoch * epochs)  # every source is endless
    options = tf.data.Options()
    options.deterministic = bool(deterministic or not training)
    return dataset.with_options(options)
