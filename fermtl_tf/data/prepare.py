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
"""

import dataclasses
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
import threading
from collections import Counter, defaultdict

import cv2
import numpy as np

from fermtl_tf import __version__
from fermtl_tf.data import face as face_ops
from fermtl_tf.data.output_folder import MANIFEST, PROGRESS, claim, locked, remove_own_files
from fermtl_tf.data.protocols import FRAME_SELECTIONS, identity_folds, select_frames
from fermtl_tf.data.sources.base import PrepError
from fermtl_tf.data.tfrecord import ShardedWriter, atomic_write_json, sha256_file, to_jsonable
from fermtl_tf.knowledge.landmarks import five_points

CROP_SOURCES = ("detect", "landmarks", "box")
IMAGE_FORMATS = ("png", "jpeg")
#: Split name of inputs the source gives no split (records and manifest alike).
UNASSIGNED = "unassigned"
#: Which face geometry each ``crop_from`` tries, in order, for one input.
CROP_PRIORITY = {
    "detect": ("box", "detect"),
    "landmarks": ("landmarks", "box", "detect"),
    "box": ("box", "landmarks", "detect"),
}


@dataclasses.dataclass
class PrepOptions:
    """Every preparation option (``fermtl-prep`` flags with ``-`` for ``_``).

    ``crop_from``: ``detect`` (MTCNN; a row's given face box is used instead when
    present; with landmarks, the detection overlapping them best, IoU >= ``match_iou``,
    else the landmarks' own box), ``landmarks`` (box around the 68 landmarks where
    given, else as ``detect``) or ``box`` (the given box, else landmarks, else
    detection). A record whose landmarks lie more than ``landmark_margin`` x the crop
    side outside its crop is skipped: it would teach the wrong face.
    ``select_frames``: ``all`` or ``last:N`` / ``middle:N`` / ``every:N``
    (:func:`fermtl_tf.data.protocols.select_frames`). ``folds > 0`` replaces the
    CSV's folds with identity-independent folds. ``strict``, ``overwrite``, ``quiet``
    and ``hash_inputs`` (hash image contents, not size + mtime, to decide which shards
    changed) change how a run behaves, not what it writes.
    """

    size: int = 128
    crop_from: str = "detect"
    box_extension: float = 0.2
    align: bool = False
    min_confidence: float = 0.9
    match_iou: float = 0.3
    landmark_margin: float = 0.1
    detect_batch_size: int = 16
    records_per_shard: int = 256
    image_format: str = "png"
    select_frames: str = "all"
    folds: int = 0
    strict: bool = False
    overwrite: bool = False
    quiet: bool = False
    hash_inputs: bool = False

    RUN_ONLY = ("strict", "overwrite", "quiet", "hash_inputs")

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
        need(0 <= self.box_extension <= 4, "box_extension", "must be in [0, 4]")
        need(0 <= self.min_confidence <= 1, "min_confidence", "must be in [0, 1]")
        need(0 < self.match_iou <= 1, "match_iou", "must be in (0, 1]")
        need(0 <= self.landmark_margin <= 1, "landmark_margin", "must be in [0, 1]")
        need(self.detect_batch_size >= 1, "detect_batch_size", "must be >= 1")
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


#: Serialises the stderr redirection of :func:`_decode_jpeg_checked` between threads.
_STDERR_CAPTURE = threading.Lock()


class InputProblem(Exception):
    """Why one input cannot be written; becomes its ``skipped`` reason."""


@dataclasses.dataclass
class Crop:
    """A cropped face: ``pixels``, the image-to-crop ``matrix``, ``how`` it was cropped
    (the manifest's ``crops`` key), the face ``box`` it came from and that box's
    ``source`` (``detected``, ``annotation``, ``annotation-fallback`` or ``given``)."""

    pixels: np.ndarray
    matrix: np.ndarray
    how: str
    box: np.ndarray
    source: str


def _looks_truncated(data):
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def split_name(item):
    """The split written to the record and counted in the manifest's ``splits``: the
    input's own, or :data:`UNASSIGNED`, so ``split="unassigned"`` selects those rows."""
    return item.split or UNASSIGNED


def _read_regular_file(path):
    """The bytes of ``path``; InputProblem for a missing, unreadable or non-regular file.

    A FIFO, socket or device is refused from ``stat`` before it is opened: opening a
    FIFO would wait for a writer forever.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise InputProblem(f"not a regular file (a FIFO, socket, device or folder): {path}")
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputProblem(f"image file not found: {path}") from None
    except OSError as error:
        raise InputProblem(f"cannot read image file {path}: {error.strerror}") from None


def _decode_jpeg_checked(data, flags, path):
    """``cv2.imdecode`` of JPEG bytes, refusing data that libjpeg reports as corrupt.

    libjpeg decodes damaged entropy-coded data anyway (grey or smeared blocks) and only
    prints "Corrupt JPEG data: ..." on the process's stderr. That stream (file
    descriptor 2) is redirected to a temporary file for the call, so the warning
    becomes this input's skip reason instead of a line nobody links to an image.
    """
    with _STDERR_CAPTURE, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        printed = sink.read().decode("utf-8", "replace").strip()
    if printed:
        first = printed.splitlines()[0]
        raise InputProblem(f"corrupt JPEG data (libjpeg: {first}): {path}")
    return image


def read_image(path):
    """RGB uint8 pixels of an image file, as stored (EXIF orientation is not applied).

    Raises :class:`InputProblem` for a missing, unreadable, non-regular, empty,
    truncated (JPEG without end marker, PNG without IEND), corrupt (libjpeg warnings)
    or undecodable file.
    """
    data = _read_regular_file(path)
    if not data:
        raise InputProblem(f"image file is empty: {path}")
    if _looks_truncated(data):
        raise InputProblem(f"image file is truncated: {path}")
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    if data[:2] == b"\xff\xd8":
        image = _decode_jpeg_checked(data, flags, path)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise InputProblem(f"cannot decode image (corrupt or not an image): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def encode_image(rgb, image_format):
    """PNG or JPEG (quality 95) bytes of an RGB crop."""
    if image_format == "png":
        extension, params = ".png", []
    else:
        extension, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputProblem(f"cannot encode the crop as {image_format}")
    return buffer.tobytes()


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


class _ShardBuilder:
    """Turns the inputs of one shard into serialised examples, skips and counts."""

    def __init__(self, dataset, options):
        self.dataset = dataset
        self.options = options
        self._detector = None

    def detector(self):
        if self._detector is None:
            self._detector = face_ops.build_detector()
        return self._detector

    def build(self, inputs, on_input=None):
        records, skipped = [], []
        stats = {"splits": Counter(), "folds": Counter(), "crops": Counter()}
        chunk_size = 4 * self.options.detect_batch_size
        for start in range(0, len(inputs), chunk_size):
            chunk = inputs[start : start + chunk_size]
            for item, outcome in zip(chunk, self._crop_chunk(chunk), strict=True):
                if isinstance(outcome, InputProblem):
                    if self.options.strict:
                        raise PrepError(f"{item.where}: {outcome} (--strict)")
                    skipped.append({"input": item.image_id, "where": item.where,
                                    "reason": str(outcome)})
                else:
                    records.append(self._example(item, outcome))
                    stats["splits"][split_name(item)] += 1
                    if item.fold >= 0:
                        stats["folds"][str(item.fold)] += 1
                    stats["crops"][outcome.how] += 1
                if on_input:
                    on_input()
        return records, skipped, {k: dict(sorted(v.items())) for k, v in stats.items()}

    def _crop_chunk(self, chunk):
        """A :class:`Crop` or an InputProblem for every input of the chunk."""
        outcomes, images, plans = [], [], []
        for item in chunk:
            try:
                if item.error:
                    raise InputProblem(item.error)
                images.append(read_image(item.image_path))
                plans.append(self._plan(item))
                outcomes.append(None)
            except InputProblem as problem:
                images.append(None)
                plans.append(None)
                outcomes.append(problem)
        wanted = [i for i, plan in enumerate(plans) if plan == "detect"]
        detections = face_ops.detect_faces(
            [images[i] for i in wanted], self.options.min_confidence,
            self.options.detect_batch_size, self.detector(),
        ) if wanted else []
        found = dict(zip(wanted, detections, strict=True))
        for i, item in enumerate(chunk):
            if outcomes[i] is None:
                try:
                    outcomes[i] = self._crop(item, images[i], plans[i], found.get(i))
                except InputProblem as problem:
                    outcomes[i] = problem
        return outcomes

    def _plan(self, item):
        for kind in CROP_PRIORITY[self.options.crop_from]:
            if kind == "detect" or getattr(item, "face_box" if kind == "box" else kind) is not None:
                return kind

    def _face_region(self, item, plan, detections, image_shape):
        """``(box, five keypoints or None, box source)`` of the face to crop.

        Issue 13 item 1: in detect mode a record's landmarks decide *which* detected
        face is theirs (best IoU with their tight box, :func:`face.match_face`); when
        no detection overlaps them the landmarks' own box is used
        (``annotation-fallback``), never another person's face.
        """
        five = None if item.landmarks is None else five_points(item.landmarks)
        if plan == "landmarks":
            return face_ops.tight_box(item.landmarks), five, "annotation"
        if plan == "box":
            return np.asarray(item.face_box, dtype=np.float64), five, "given"
        if item.landmarks is not None:
            reference = face_ops.tight_box(item.landmarks)
            match = face_ops.match_face(detections, reference, self.options.match_iou)
            if match is None:
                return reference, five, "annotation-fallback"
            return match.box, match.keypoints, "detected"
        chosen = face_ops.choose_face(detections, image_shape)
        if chosen is None:
            raise InputProblem(f"no face found with confidence >= {self.options.min_confidence}")
        return chosen.box, chosen.keypoints, "detected"

    def _crop(self, item, image, plan, detections):
        options = self.options
        ratio, size = options.box_extension, options.size
        box, five, source = self._face_region(item, plan, detections, image.shape)
        how = source
        if options.align and five is not None:
            geometry, how = face_ops.alignment_matrix(five, size, ratio), source + "+aligned"
        else:
            geometry = face_ops.square_box(face_ops.extend_box(box, ratio))
        pixels, matrix = face_ops.crop_and_resize(image, geometry, size)
        if item.landmarks is not None:
            self._check_landmarks(item.landmarks, matrix, how)
        return Crop(pixels, matrix, how, box, source)

    def _check_landmarks(self, landmarks, matrix, how):
        """InputProblem when landmarks lie beyond ``landmark_margin`` outside the crop."""
        size, margin = self.options.size, self.options.landmark_margin
        points = face_ops.map_landmarks(landmarks, matrix)
        outside = np.any((points < -margin * size) | (points > (1 + margin) * size), axis=1)
        if outside.any():
            raise InputProblem(
                f"{int(outside.sum())} of {len(points)} landmarks lie more than "
                f"{margin:g} x the crop side outside the {how} crop (the annotated face is "
                "not the cropped one)")

    def _example(self, item, crop):
        # Imported here: the schema pulls in TensorFlow, and `fermtl-prep --help` stays fast.
        from fermtl_tf.data.schema import encode_example

        dataset = self.dataset
        record = {
            "image": encode_image(crop.pixels, self.options.image_format),
            "image_id": item.image_id, "source": dataset.source, "identity": item.identity,
            "sequence_id": item.sequence_id, "frame_index": item.frame_index,
            "split": split_name(item), "fold": item.fold, "domain": item.domain,
            "au": item.au, "au_intensity": item.au_intensity, "au_mask": item.au_mask,
            "attributes": item.attributes, "attributes_mask": item.attributes_mask,
            "face_box": crop.box, "face_box_source": crop.source,
        }
        if item.expression is not None:
            record.update(expression=item.expression, expression_mask=1)
        if item.landmarks is not None:
            landmarks = face_ops.map_landmarks(item.landmarks, crop.matrix)
            record.update(landmarks=landmarks.ravel(), landmarks_mask=1)
        if item.valence is not None:
            record.update(valence=item.valence, arousal=item.arousal, va_mask=1)
        return encode_example(record, len(dataset.au_names), len(dataset.attribute_names))


def _progress_bar(total, initial, quiet):
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="face", desc="fermtl-prep", disable=disable)


def _merge(entries, key):
    total = Counter()
    for entry in entries:
        total.update(entry[key])
    return dict(sorted(total.items()))


def _manifest(dataset, inputs, options, fingerprint, entries, warnings):
    """The manifest.json content (no time stamps, so reruns give identical bytes)."""
    skipped = [s for e in entries for s in e["skipped"]]
    written = sum(e["num_records"] for e in entries)
    if written + len(skipped) != len(inputs):
        raise RuntimeError(f"internal error: {written} written + {len(skipped)} skipped "
                           f"!= {len(inputs)} inputs")
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
        "splits": _merge(entries, "splits"),
        "folds": _merge(entries, "folds"),
        "crops": _merge(entries, "crops"),
        "counts": {
            "rows": len(dataset.inputs),
            "not_selected": len(dataset.inputs) - len(inputs),
            "inputs": len(inputs),
            "written": written,
            "skipped": len(skipped),
        },
        "skipped": skipped,
        "shards": [{k: e[k] for k in ("path", "num_records", "sha256")} for e in entries],
        "options": options.output_options(),
        "source_info": dataset.info,
        "warnings": warnings,
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

    Returns the manifest dict. Resumes an interrupted run with the same inputs and
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
    done = {}
    for key, entry in reusable.items():
        k = int(key)
        if (k < num_shards and writer.is_complete(entry) and entry.get("inputs_sha256")
                == shard_inputs_fingerprint(shard_of[k], options.hash_inputs)):
            done[k] = entry
    remove_own_files(out_dir, keep={v["path"] for v in done.values()})
    builder = _ShardBuilder(dataset, options)
    progress = {"dataset_fingerprint": fingerprint, "num_shards": num_shards, "shards": {}}
    progress["shards"] = {str(k): v for k, v in sorted(done.items())}
    # Claim the folder before the first shard lands, so a run killed right after that
    # shard is recognised as this dataset (not a foreign one) when restarted.
    atomic_write_json(os.path.join(out_dir, PROGRESS), progress)
    already = sum(len(shard_of[k]) for k in done)
    with _progress_bar(len(inputs), already, options.quiet) as bar:
        for index in range(num_shards):
            if index in done:
                continue
            # Taken before reading: an input changed during the build rebuilds next time.
            inputs_sha256 = shard_inputs_fingerprint(shard_of[index], options.hash_inputs)
            records, skipped, stats = builder.build(shard_of[index],
                                                    on_input=lambda: bar.update(1))
            entry = writer.write_shard(index, records)
            entry.update(skipped=skipped, inputs_sha256=inputs_sha256, **stats)
            done[index] = entry
            progress["shards"] = {str(k): v for k, v in sorted(done.items())}
            atomic_write_json(os.path.join(out_dir, PROGRESS), progress)
    entries = [done[k] for k in range(num_shards)]
    manifest = _manifest(dataset, inputs, options, fingerprint, entries, warnings)
    atomic_write_json(os.path.join(out_dir, PROGRESS), progress)
    atomic_write_json(os.path.join(out_dir, MANIFEST), manifest)
    return manifest
