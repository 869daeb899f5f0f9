"""The preparation orchestrator: imported inputs -> cropped faces -> shards + manifest.json.

Resumability rests on determinism. The input list is fixed by the importer (CSV order)
and the options, and shard ``k`` always holds inputs ``[k*n, (k+1)*n)`` with
``n = records_per_shard``. After each shard is renamed into place, ``progress.json``
records its checksum, its skipped inputs and its counts. A restarted run with the same
command keeps the shards whose checksum still matches, redoes the others, and writes
``manifest.json`` last, so an interrupted-then-resumed run ends with the same bytes as an
uninterrupted one. Nothing in the manifest depends on time or on the machine.

Each progress entry also records its inputs' fingerprint (labels, paths, image size and
mtime): a rerun rebuilds the shards whose inputs changed and keeps the rest.

A folder already holding another dataset (a different ``dataset_fingerprint``: the hash
of source, source options and output-affecting options) is refused unless
``overwrite``; then only this package's files (shards, manifest, progress) are removed
(:mod:`fermtl_tf.data.output_folder`, which also locks the folder for the run).

Over several machines (``num_workers > 1``) each worker builds its shards only and writes
``part.json`` instead of ``manifest.json``; :func:`merge_parts` joins the parts into the
folder a one-machine run writes (:mod:`fermtl_tf.data.parts`).
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import stat
import sys
from collections import Counter, defaultdict

from fermtl_tf import __version__
from fermtl_tf.data.output_folder import (
    MANIFEST,
    PART,
    PROGRESS,
    claim,
    locked,
    remove_own_files,
)
from fermtl_tf.data.parts import check_parts, part_record, read_part, worker_shards
from fermtl_tf.data.protocols import FRAME_SELECTIONS, identity_folds, select_frames
from fermtl_tf.data.shard_builder import build_shards, split_name
from fermtl_tf.data.sources.base import PrepError
from fermtl_tf.data.tfrecord import ShardedWriter, atomic_write_json, sha256_file, to_jsonable

CROP_SOURCES = ("detect", "landmarks", "box")
#: What becomes of an image in which detection finds no face (``undetected``).
UNDETECTED = ("skip", "centre")
#: ``align`` values: none, the 5-point similarity, Liu et al.'s 49-point eye-line alignment.
ALIGNMENTS = ("none", "five_point", "liu49")
IMAGE_FORMATS = ("png", "jpeg")


@dataclasses.dataclass
class PrepOptions:
    """Every preparation option (``fermtl-prep`` flags with ``-`` for ``_``).

    ``crop_from``: ``detect`` (MTCNN; a row's given face box is used instead when
    present; with landmarks, the detection overlapping them best, IoU >= ``match_iou``,
    else the landmarks' own box), ``landmarks`` (box around the 68 landmarks where
    given, else as ``detect``) or ``box`` (the given box, else landmarks, else
    detection). ``align``: ``none``, ``five_point`` (similarity onto the 5-point
    template) or ``liu49`` (Liu et al. 2017 Sec. 5.1: eye-line rotation and the box of
    the 49 IntraFace points; without landmarks MTCNN's eyes and the face box, see
    ``shard_builder.ChunkCropper._alignment``). ``undetected``: an image where MTCNN
    finds no face is ``skip`` ped (listed with the reason) or cropped as its ``centre``
    square (shorter side; manifest ``crops``: ``centre-fallback``), e.g. to keep SFEW's
    436 Val images. A record whose landmarks lie more than ``landmark_margin`` x the crop
    side outside its crop is skipped: it would teach the wrong face.
    ``select_frames``: ``all`` or ``last:N`` / ``middle:N`` / ``every:N``
    (:func:`fermtl_tf.data.protocols.select_frames`). ``folds > 0`` replaces the
    CSV's folds with identity-independent folds. ``strict``, ``overwrite``, ``quiet``
    and ``hash_inputs`` (hash image contents, not size + mtime, to decide which shards
    changed) change how a run behaves, not what it writes; so does ``workers`` (worker
    processes, 0 = one per usable CPU; the output is the same for any number), and
    ``num_workers`` / ``worker_index`` (this machine builds shards ``k`` with
    ``k % num_workers == worker_index`` into its own folder, :mod:`fermtl_tf.data.parts`).
    ``detect_max_side``: MTCNN sees a copy of the image with its longer side at most
    this many pixels (0 = full resolution; faces smaller than about
    ``20 x longer side / detect_max_side`` pixels are not found); crops are cut from the
    full-resolution image. ``max_pixels``: images with more pixels are skipped with a
    reason, PNG and JPEG before decoding (0 = no budget).
    """

    size: int = 128
    crop_from: str = "detect"
    box_extension: float = 0.2
    align: str = "none"
    undetected: str = "skip"
    min_confidence: float = 0.9
    match_iou: float = 0.3
    landmark_margin: float = 0.1
    detect_batch_size: int = 16
    detect_max_side: int = 640
    max_pixels: int = 150_000_000
    records_per_shard: int = 256
    image_format: str = "png"
    select_frames: str = "all"
    folds: int = 0
    strict: bool = False
    overwrite: bool = False
    quiet: bool = False
    hash_inputs: bool = False
    workers: int = 0
    num_workers: int = 1
    worker_index: int = 0

    RUN_ONLY = ("strict", "overwrite", "quiet", "hash_inputs", "workers", "num_workers",
                "worker_index")

    @classmethod
    def from_dict(cls, mapping, origin="options"):
        """Build from a dict, refusing unknown keys and wrongly typed values by name."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in mapping.items():
            if key not in fields:
                raise PrepError(f"{origin}: unknown option {key!r}; known: {', '.join(fields)}")
            expected = type(fields[key].default)
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok:
                raise PrepError(f"{origin}: option {key!r} must be {expected.__name__}, "
                                f"got {type(value).__name__} {value!r}")
            values[key] = value
        options = cls(**values)
        options.validate(origin)
        return options

    def validate(self, origin="options"):
        def need(condition, key, rule):
            if not condition:
                raise PrepError(f"{origin}: option {key!r} {rule}, got {getattr(self, key)!r}")

        need(self.size >= 8, "size", "must be >= 8")
        need(self.crop_from in CROP_SOURCES, "crop_from", f"must be one of {CROP_SOURCES}")
        need(self.align in ALIGNMENTS, "align", f"must be one of {ALIGNMENTS}")
        need(self.undetected in UNDETECTED, "undetected", f"must be one of {UNDETECTED}")
        need(0 <= self.box_extension <= 4, "box_extension", "must be in [0, 4]")
        need(0 <= self.min_confidence <= 1, "min_confidence", "must be in [0, 1]")
        need(0 < self.match_iou <= 1, "match_iou", "must be in (0, 1]")
        need(0 <= self.landmark_margin <= 1, "landmark_margin", "must be in [0, 1]")
        need(self.detect_batch_size >= 1, "detect_batch_size", "must be >= 1")
        need(self.detect_max_side == 0 or self.detect_max_side >= 48, "detect_max_side",
             "must be 0 (full resolution) or >= 48")
        need(self.max_pixels >= 0, "max_pixels", "must be >= 0 (0: no budget)")
        need(self.workers >= 0, "workers", "must be >= 0 (0: one per CPU)")
        need(self.num_workers >= 1, "num_workers", "must be >= 1")
        need(0 <= self.worker_index < self.num_workers, "worker_index",
             f"must be in 0..num_workers - 1 = {self.num_workers - 1}")
        need(self.records_per_shard >= 1, "records_per_shard", "must be >= 1")
        need(self.image_format in IMAGE_FORMATS, "image_format", f"must be one of {IMAGE_FORMATS}")
        need(self.folds >= 0, "folds", "must be >= 0")
        try:
            self.frame_rule()
        except ValueError as error:
            raise PrepError(f"{origin}: option 'select_frames': {error}") from None

    def frame_rule(self):
        """``select_frames`` parsed into ``(mode, n)``."""
        mode, _, count = self.select_frames.partition(":")
        if mode not in FRAME_SELECTIONS or (mode == "all") != (count == ""):
            raise ValueError(
                f"expected all, last:N, middle:N or every:N, got {self.select_frames!r}")
        if mode == "all":
            return mode, 1
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"N must be a positive integer, got {count!r}")
        return mode, int(count)

    def output_options(self):
        """The options that determine the output (all but the run-only ones)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUN_ONLY}


def select_inputs(dataset, options):
    """Inputs after frame selection, with folds reassigned when ``options.folds > 0``."""
    mode, count = options.frame_rule()
    inputs = dataset.inputs
    sequences, frames = [f.sequence_id for f in inputs], [f.frame_index for f in inputs]
    keep = select_frames(sequences, frames, mode, count)
    inputs = [f for f, kept in zip(inputs, keep, strict=True) if kept]
    if options.folds:
        assignment = identity_folds([f.identity for f in inputs], options.folds)
        inputs = [dataclasses.replace(f, fold=assignment.get(f.identity, -1)) for f in inputs]
    return inputs


def dataset_fingerprint(dataset, options):
    """SHA-256 of what makes an output folder *this* dataset: the source, its options
    (``fermtl-prep`` puts them in ``dataset.fingerprint["source_options"]``: paths,
    protocol, seeds), the vocabulary and the output options.

    The raw data's content (CSV bytes, file sizes) is deliberately not part of it: a
    fixed label or a replaced image must rebuild the shards holding them
    (:func:`shard_inputs_fingerprint`), not make the folder "another dataset".
    """
    payload = {
        "source": dataset.source,
        "source_options": dataset.fingerprint.get("source_options"),
        "vocabulary": dataset.vocabulary_name,
        "options": options.output_options(),
    }
    text = json.dumps(to_jsonable(payload), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_state(path, hash_contents):
    """What identifies the file's bytes: size and modification time, or its SHA-256."""
    try:
        info = os.stat(path)
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if not hash_contents:
        return [info.st_size, info.st_mtime_ns]
    try:
        return sha256_file(path)
    except OSError as error:
        return f"unreadable: {error.strerror}"


def shard_inputs_fingerprint(inputs, hash_contents=False):
    """SHA-256 of a shard's inputs: every label and path of each input, and the state of
    its image file (size + mtime, or the content hash with ``hash_contents``).

    Issue 13 item 4: recorded in ``progress.json`` per shard, so a rerun rebuilds exactly
    the shards whose inputs changed (a replaced image, an edited label) and keeps the
    others.
    """
    digest = hashlib.sha256()
    for item in inputs:
        state = {"input": dataclasses.asdict(item),
                 "file": _file_state(item.image_path, hash_contents)}
        digest.update(json.dumps(to_jsonable(state), sort_keys=True).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _progress_bar(total, initial, quiet):
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="face", desc="fermtl-prep", disable=disable)


def _merge(entries, key):
    total = Counter()
    for entry in entries:
        total.update(entry[key])
    return dict(sorted(total.items()))


def _manifest_header(dataset, inputs, options, fingerprint, warnings):
    """The manifest fields that do not depend on the shards' outcomes (every worker of a
    multi-machine preparation computes the same)."""
    return {
        "source": dataset.source,
        "package_version": __version__,
        "seed": dataset.seed,
        "dataset_fingerprint": fingerprint,
        "image_size": [options.size, options.size],
        "image_format": options.image_format,
        "landmarks_units": "pixels",
        "normalisation": "none",
        "vocabularies": {"expression": list(dataset.vocabulary)},
        "vocabulary_name": dataset.vocabulary_name,
        "au_names": list(dataset.au_names),
        "num_aus": len(dataset.au_names),
        "attribute_names": list(dataset.attribute_names),
        "num_attributes": len(dataset.attribute_names),
        "domains": list(dataset.domains),
        "identities": dataset.identities,
        "counts": {
            "rows": len(dataset.inputs),
            "not_selected": len(dataset.inputs) - len(inputs),
            "inputs": len(inputs),
        },
        "options": options.output_options(),
        "source_info": dataset.info,
        "warnings": warnings,
    }


def _manifest(header, entries):
    """The manifest.json content: ``header`` + what the shard ``entries`` (all of them, in
    order) add. No time stamps, so reruns give identical bytes."""
    skipped = [s for e in entries for s in e["skipped"]]
    written = sum(e["num_records"] for e in entries)
    inputs = header["counts"]["inputs"]
    if written + len(skipped) != inputs:
        raise RuntimeError(f"internal error: {written} written + {len(skipped)} skipped "
                           f"!= {inputs} inputs")
    return {
        **header,
        "splits": _merge(entries, "splits"),
        "folds": _merge(entries, "folds"),
        "crops": _merge(entries, "crops"),
        "counts": {**header["counts"], "written": written, "skipped": len(skipped)},
        "skipped": skipped,
        "shards": [{k: e[k] for k in ("path", "num_records", "sha256")} for e in entries],
    }


def split_leakage(inputs, limit=10):
    """Warnings for images listed in more than one split (same file after resolving links).

    An image in both ``train`` and ``test`` makes test figures optimistic; the importer
    cannot always see it (two rows of one CSV, two list files), so it is checked here
    over the selected inputs. One warning per image, at most ``limit``, then a count.
    """
    splits = defaultdict(set)
    for item in inputs:
        if not item.error:
            splits[os.path.realpath(item.image_path)].add(split_name(item))
    leaked = sorted((path, sorted(names)) for path, names in splits.items() if len(names) > 1)
    warnings = [f"leakage: {path} is in splits {', '.join(names)}"
                for path, names in leaked[:limit]]
    if len(leaked) > limit:
        warnings.append(f"leakage: {len(leaked) - limit} more image(s) are in more than one split")
    return warnings


def _announce(warnings, options):
    for warning in warnings:
        if options.strict:
            raise PrepError(f"{warning} (--strict)")
        if not options.quiet:
            print(f"fermtl-prep: warning: {warning}", file=sys.stderr)


def prepare_dataset(dataset, out_dir, options=None):
    """Write ``dataset`` (an ``ImportedDataset``) as shards + manifest.json in ``out_dir``.

    Returns the manifest dict (a worker's ``part.json`` dict when
    ``options.num_workers > 1``). Resumes an interrupted run with the same inputs and
    options; raises :class:`PrepError` for problems the user must fix, and when another
    run holds ``out_dir`` (:func:`fermtl_tf.data.output_folder.locked`).
    """
    options = options or PrepOptions()
    options.validate()
    _announce(dataset.warnings, options)
    inputs = select_inputs(dataset, options)
    if not inputs:
        raise PrepError(f"{dataset.source}: no inputs left after frame selection "
                        f"{options.select_frames!r}")
    if options.strict:
        for item in inputs:
            if item.error:
                raise PrepError(f"{item.where}: {item.error} (--strict)")
    warnings = split_leakage(inputs)
    _announce(warnings, options)
    with locked(out_dir) as out_dir:
        manifest = _write(dataset, inputs, options, out_dir, list(dataset.warnings) + warnings)
    return json.loads(json.dumps(to_jsonable(manifest)))


def _write(dataset, inputs, options, out_dir, warnings):
    """The shards, progress and manifest of ``inputs`` in the locked ``out_dir``."""
    fingerprint = dataset_fingerprint(dataset, options)
    reusable = claim(out_dir, fingerprint, options.overwrite)
    per_shard = options.records_per_shard
    num_shards = max(1, math.ceil(len(inputs) / per_shard))
    writer = ShardedWriter(out_dir, num_shards)
    shard_of = [inputs[k * per_shard : (k + 1) * per_shard] for k in range(num_shards)]
    mine = worker_shards(num_shards, options.num_workers, options.worker_index)
    done = {}
    for key, entry in reusable.items():
        k = int(key)
        if (k in mine and writer.is_complete(entry) and entry.get("inputs_sha256")
                == shard_inputs_fingerprint(shard_of[k], options.hash_inputs)):
            done[k] = entry
    remove_own_files(out_dir, keep={v["path"] for v in done.values()})
    cropper_args = (options, dataset.source, len(dataset.au_names), len(dataset.attribute_names))
    progress = {"dataset_fingerprint": fingerprint, "num_shards": num_shards, "shards": {}}
    progress["shards"] = {str(k): v for k, v in sorted(done.items())}
    # Claim the folder before the first shard lands, so a run killed right after that
    # shard is recognised as this dataset (not a foreign one) when restarted.
    atomic_write_json(os.path.join(out_dir, PROGRESS), progress)
    already = sum(len(shard_of[k]) for k in done)
    todo = [(k, shard_of[k]) for k in mine if k not in done]
    # Taken before reading: an input changed during the build rebuilds next time.
    inputs_sha256 = {k: shard_inputs_fingerprint(shard, options.hash_inputs) for k, shard in todo}
    total = sum(len(shard_of[k]) for k in mine)
    with _progress_bar(total, already, options.quiet) as bar:
        for index, records, skipped, stats in build_shards(todo, cropper_args, options,
                                                           bar.update):
            entry = writer.write_shard(index, records)
            entry.update(skipped=skipped, inputs_sha256=inputs_sha256[index], **stats)
            done[index] = entry
            progress["shards"] = {str(k): v for k, v in sorted(done.items())}
            atomic_write_json(os.path.join(out_dir, PROGRESS), progress)
    header = _manifest_header(dataset, inputs, options, fingerprint, warnings)
    atomic_write_json(os.path.join(out_dir, PROGRESS), progress)
    if options.num_workers > 1:
        record = part_record(fingerprint, header, options.num_workers, options.worker_index,
                             num_shards, done)
        return _write_record(out_dir, PART, record, stale=MANIFEST)
    return _write_record(out_dir, MANIFEST, _manifest(header, [done[k] for k in mine]),
                         stale=PART)


def _write_record(out_dir, name, record, stale):
    """Write ``record`` as ``name``; remove this tool's ``stale`` record (a folder is
    either one worker's part or a whole dataset, never both)."""
    atomic_write_json(os.path.join(out_dir, name), record)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, stale))
    return record


def _link_or_copy(source, target):
    """``target`` as a hard link to ``source`` (same file system), else a copy; atomic."""
    partial = target + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.remove(partial)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


def merge_parts(part_dirs, out_dir, overwrite=False):
    """Join the worker parts ``part_dirs`` into ``out_dir``: its shards (hard links or
    copies), ``progress.json`` and ``manifest.json``, as one machine would have written.

    The parts are validated (:func:`fermtl_tf.data.parts.check_parts`: one fingerprint,
    all N parts, no shard twice, counts adding up) and every shard's checksum is checked
    before anything is written. Each folder is locked meanwhile: a part still being
    written is refused. ``out_dir`` follows the rules of a preparation's ``--out``
    (another dataset there is refused unless ``overwrite``). Returns the manifest.
    """
    folders = [os.path.abspath(os.fspath(folder)) for folder in part_dirs]
    target = os.path.abspath(os.fspath(out_dir))
    if target in folders:
        raise PrepError(f"merge: --out {out_dir} is one of the parts; merge into another folder")
    with contextlib.ExitStack() as stack:
        for folder in folders:
            if not os.path.isdir(folder):
                raise PrepError(f"merge: part folder {folder} does not exist")
            stack.enter_context(locked(folder))
        header, entries, owner = check_parts([(folder, read_part(folder)) for folder in folders])
        for k, entry in enumerate(entries):
            if not ShardedWriter(owner[k], len(entries)).is_complete(entry):
                raise PrepError(f"merge: {owner[k]}: shard {entry['path']} is missing or "
                                f"differs from its recorded checksum; rerun that worker")
        target = stack.enter_context(locked(target))
        claim(target, header["dataset_fingerprint"], overwrite)
        remove_own_files(target, keep={entry["path"] for entry in entries})
        for k, entry in enumerate(entries):
            path = os.path.join(target, entry["path"])
            if not ShardedWriter(target, len(entries)).is_complete(entry):
                _link_or_copy(os.path.join(owner[k], entry["path"]), path)
        progress = {"dataset_fingerprint": header["dataset_fingerprint"],
                    "num_shards": len(entries),
                    "shards": {str(k): entry for k, entry in enumerate(entries)}}
        atomic_write_json(os.path.join(target, PROGRESS), progress)
        manifest = _write_record(target, MANIFEST, _manifest(header, entries), stale=PART)
    return json.loads(json.dumps(to_jsonable(manifest)))
