"""Inputs -> serialised examples: decode, find the face, crop, encode -- in one process or
in a pool of worker processes, with the same bytes either way.

Work is cut into *chunks* of ``4 x detect_batch_size`` consecutive inputs of a shard,
fixed by the input order alone; a chunk is always processed by the same code
(:class:`ChunkCropper`) whether in the main process or in a worker, so the number of
workers changes the speed and nothing else. Within a chunk, decoded images are held
until :data:`CHUNK_PIXELS` pixels have accumulated, then detected (batched), cropped
and freed, which bounds memory on large photos.

Speed on real photo sizes (issue 13 item 3): MTCNN runs on a copy whose longer side is
at most ``detect_max_side`` pixels (area-averaged), and the crop is cut from the
full-resolution image with the detection mapped back.
"""

import dataclasses
import itertools
import multiprocessing
import os
from collections import Counter

import numpy as np

from fermtl_tf.data import face as face_ops
from fermtl_tf.data.image_io import InputProblem, encode_image, read_image
from fermtl_tf.data.schema import UNASSIGNED_SPLIT
from fermtl_tf.data.sources.base import PrepError
from fermtl_tf.knowledge.landmarks import five_points

#: Which face geometry each ``crop_from`` tries, in order, for one input.
CROP_PRIORITY = {
    "detect": ("box", "detect"),
    "landmarks": ("landmarks", "box", "detect"),
    "box": ("box", "landmarks", "detect"),
}
#: Decoded pixels a chunk holds before it detects, crops and frees them (~144 MB RGB).
CHUNK_PIXELS = 48_000_000
#: With ``workers=0`` (automatic) smaller runs stay in one process: each worker starts
#: its own TensorFlow and MTCNN, seconds that only a few hundred images repay.
AUTO_POOL_MIN_INPUTS = 256
#: ... and at most this many workers: each holds its own TensorFlow + MTCNN (~0.7 GB).
AUTO_MAX_WORKERS = 4


def split_name(item):
    """The split written to the record and counted in the manifest's ``splits``: the
    input's own, or :data:`~fermtl_tf.data.schema.UNASSIGNED_SPLIT`, so ``split="unassigned"`` selects those rows."""
    return item.split or UNASSIGNED_SPLIT


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


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one input: a serialised ``example`` and ``how`` it was cropped, or
    the ``reason`` it was skipped."""

    example: bytes | None = None
    how: str | None = None
    reason: str | None = None


class ChunkCropper:
    """Turns one chunk of inputs into :class:`Outcome` s (picklable arguments only, so a
    worker process builds its own)."""

    def __init__(self, options, source, num_aus, num_attributes):
        self.options = options
        self.source = source
        self.num_aus = num_aus
        self.num_attributes = num_attributes
        self._detector = None

    def detector(self):
        if self._detector is None:
            self._detector = face_ops.build_detector()
        return self._detector

    def __call__(self, chunk):
        outcomes, pending, held = [None] * len(chunk), [], 0
        for i, item in enumerate(chunk):
            try:
                if item.error:
                    raise InputProblem(item.error)
                image = read_image(item.image_path, self.options.max_pixels)
            except InputProblem as problem:
                outcomes[i] = Outcome(reason=str(problem))
                continue
            pending.append((i, item, image))
            held += image.shape[0] * image.shape[1]
            del image  # only ``pending`` holds it: freed with the sub-chunk below
            if held >= CHUNK_PIXELS:
                self._finish(pending, outcomes)
                pending, held = [], 0
        self._finish(pending, outcomes)
        return outcomes

    def _finish(self, pending, outcomes):
        """Detect (batched) where needed, then crop and encode the held images."""
        plans = [self._plan(item) for _, item, _ in pending]
        wanted = [k for k, plan in enumerate(plans) if plan == "detect"]
        detections = face_ops.detect_faces(
            [pending[k][2] for k in wanted], self.options.min_confidence,
            self.options.detect_batch_size, self.detector(), self.options.detect_max_side,
        ) if wanted else []
        found = dict(zip(wanted, detections, strict=True))
        for k, (i, item, image) in enumerate(pending):
            try:
                crop = self._crop(item, image, plans[k], found.get(k))
                outcomes[i] = Outcome(example=self._example(item, crop), how=crop.how)
            except InputProblem as problem:
                outcomes[i] = Outcome(reason=str(problem))

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
        if chosen is None and self.options.undetected == "centre":
            box = face_ops.centre_square(image_shape, self.options.box_extension)
            return box, None, "centre-fallback"
        if chosen is None:
            raise InputProblem(f"no face found with confidence >= {self.options.min_confidence}")
        return chosen.box, chosen.keypoints, "detected"

    def _crop(self, item, image, plan, detections):
        options = self.options
        ratio, size = options.box_extension, options.size
        box, five, source = self._face_region(item, plan, detections, image.shape)
        geometry, suffix = self._alignment(item, box, five)
        how = source + suffix
        if geometry is None:
            geometry = face_ops.square_box(face_ops.extend_box(box, ratio))
        pixels, matrix = face_ops.crop_and_resize(image, geometry, size)
        if item.landmarks is not None:
            self._check_landmarks(item.landmarks, matrix, how)
        return Crop(pixels, matrix, how, box, source)

    def _alignment(self, item, box, five):
        """``(2x3 matrix or None, manifest suffix)`` for ``options.align``.

        ``five_point``: similarity onto the 5-point template (landmarks' or MTCNN's five
        points). ``liu49`` (Liu et al. 2017 Sec. 5.1): with 68 landmarks the eye-line
        rotation and the 49 points' box (:func:`face.liu49_matrix`); without them the
        eye-line rotation from the five points' eyes and the face box
        (:func:`face.eye_line_box_matrix`). Without any points: None (the box crop).
        """
        align, size, ratio = self.options.align, self.options.size, self.options.box_extension
        if align == "liu49" and item.landmarks is not None:
            return face_ops.liu49_matrix(item.landmarks, size, ratio), "+liu49"
        if align == "liu49" and five is not None:
            return face_ops.eye_line_box_matrix(five[:2], box, size, ratio), "+eyeline"
        if align == "five_point" and five is not None:
            return face_ops.alignment_matrix(five, size, ratio), "+aligned"
        return None, ""

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

        record = {
            "image": encode_image(crop.pixels, self.options.image_format),
            "image_id": item.image_id, "source": self.source, "identity": item.identity,
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
        return encode_example(record, self.num_aus, self.num_attributes)


#: The worker process's cropper, built once by :func:`_start_worker`.
_WORKER_CROPPER = None


def _start_worker(cropper_args):
    """Pool initializer: one TensorFlow thread per worker (the workers are the
    parallelism), then the cropper."""
    global _WORKER_CROPPER
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(1)
    _WORKER_CROPPER = ChunkCropper(*cropper_args)


def _crop_in_worker(chunk):
    return _WORKER_CROPPER(chunk)


def resolve_workers(requested, num_inputs):
    """``requested`` worker processes; when 0, one per CPU this process may use (at
    most :data:`AUTO_MAX_WORKERS`), or 1 for runs under :data:`AUTO_POOL_MIN_INPUTS`
    inputs."""
    if requested:
        return requested
    if num_inputs < AUTO_POOL_MIN_INPUTS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return min(cpus, AUTO_MAX_WORKERS)


def _outcomes(cropper_args, chunks, workers):
    """Outcome lists of ``chunks`` in order: in this process, or from a spawned pool
    when there are two workers or more and at least two chunks to share."""
    if workers < 2 or len(chunks) < 2:
        cropper = ChunkCropper(*cropper_args)
        yield from (cropper(chunk) for chunk in chunks)
        return
    # spawn, not fork: TensorFlow's threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(chunks)), initializer=_start_worker,
                      initargs=(cropper_args,)) as pool:
        yield from pool.imap(_crop_in_worker, chunks)


def build_shards(todo, cropper_args, options, on_inputs=None):
    """Yield ``(index, records, skipped, stats)`` for each ``(index, inputs)`` of ``todo``.

    ``cropper_args`` are :class:`ChunkCropper`'s. ``on_inputs(n)`` is called as chunks
    finish (progress bar). With ``options.strict`` the first skip raises PrepError.
    """
    size = 4 * options.detect_batch_size
    units = [(index, inputs[start : start + size])
             for index, inputs in todo for start in range(0, len(inputs), size)]
    workers = resolve_workers(options.workers, sum(len(chunk) for _, chunk in units))
    results = _outcomes(cropper_args, [chunk for _, chunk in units], workers)
    paired = zip(units, results, strict=True)  # lazy: shards land while later chunks run
    for index, group in itertools.groupby(paired, key=lambda pair: pair[0][0]):
        records, skipped = [], []
        stats = {"splits": Counter(), "folds": Counter(), "crops": Counter()}
        for (_, chunk), outcomes in group:
            for item, outcome in zip(chunk, outcomes, strict=True):
                if outcome.reason is not None:
                    if options.strict:
                        raise PrepError(f"{item.where}: {outcome.reason} (--strict)")
                    skipped.append({"input": item.image_id, "where": item.where,
                                    "reason": outcome.reason})
                    continue
                records.append(outcome.example)
                stats["splits"][split_name(item)] += 1
                if item.fold >= 0:
                    stats["folds"][str(item.fold)] += 1
                stats["crops"][outcome.how] += 1
            if on_inputs:
                on_inputs(len(chunk))
        yield index, records, skipped, {k: dict(sorted(v.items())) for k, v in stats.items()}
