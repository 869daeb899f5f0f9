"""Helpers shared by the benchmark importers (CK+, Oulu-CASIA, MMI, 300-W, SFEW, FER2013).

Real copies of these datasets differ in small ways (folder-name case, an extra nesting
level, ``.jpg`` vs ``.jpeg``), so folder look-ups here are case-insensitive and accept
the documented variants. The protocol of a paper (which frames, how many folds) is
applied by the importer, so ``fermtl-prep <source> --root DIR`` alone reproduces it;
the common ``--select-frames`` / ``--folds`` flags of the orchestrator still apply on top.
"""

import hashlib
import os
import re
from collections import Counter

import cv2

from fermtl_tf.data.protocols import FRAME_SELECTIONS, identity_folds, select_frames
from fermtl_tf.data.sources.base import PrepError
from fermtl_tf.knowledge.vocabularies import vocabulary

#: Every extension ``cv2.imread`` documents (OpenCV 4 "imread": Windows bitmaps, JPEG,
#: JPEG 2000, PNG, WebP, AVIF, portable image formats, Sun rasters, TIFF, OpenEXR,
#: Radiance HDR), so a ``.ppm`` of a dataset is read, not silently passed over.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff",
                    ".jp2", ".webp", ".avif", ".pbm", ".pgm", ".ppm", ".pxm", ".pnm", ".pfm",
                    ".sr", ".ras", ".exr", ".hdr", ".pic")
#: Folder (inside ``--out``) for pixels that exist only inside a CSV or a video.
CACHE_FOLDER = "decoded-cache"


def require_folder(path, what):
    """``path`` if it is a folder, else PrepError naming it and what was expected there."""
    if not os.path.isdir(path):
        raise PrepError(f"{what}: no such folder {path}")
    return path


def child(parent, name):
    """The entry of ``parent`` named ``name`` ignoring case, or ``None``."""
    try:
        entries = sorted(os.listdir(parent))
    except OSError:
        return None
    for entry in entries:
        if entry.lower() == name.lower():
            return os.path.join(parent, entry)
    return None


def nested_child(parent, name):
    """``parent/name``, or ``parent/name/name`` when a copy nests the folder in itself."""
    path = child(parent, name)
    if path is not None:
        inner = child(path, name)
        if inner is not None and os.path.isdir(inner):
            return inner
    return path


def sub_folders(folder):
    """Sorted names of the visible sub-folders of ``folder``."""
    return sorted(e for e in os.listdir(folder)
                  if not e.startswith(".") and os.path.isdir(os.path.join(folder, e)))


def image_files(folder):
    """Sorted names of the visible image files of ``folder``."""
    return sorted(e for e in os.listdir(folder)
                  if not e.startswith(".") and e.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, e)))


def trailing_number(name):
    """The last run of digits of a file name without extension (``S005_001_00000011``: 11)."""
    digits = re.findall(r"\d+", os.path.splitext(name)[0])
    return int(digits[-1]) if digits else None


def parse_frame_rule(text):
    """``all``, ``last:N``, ``middle:N`` or ``every:N`` -> ``(mode, n)``; PrepError if not."""
    mode, _, count = text.partition(":")
    if mode == "all" and not count:
        return "all", 1
    if mode in FRAME_SELECTIONS and mode != "all" and count.isdigit() and int(count) >= 1:
        return mode, int(count)
    raise PrepError(f"--frames must be all, last:N, middle:N or every:N, got {text!r}")


def add_protocol_arguments(group, frames, folds, reference, classes):
    """``--frames`` and ``--classes`` with the paper's defaults; the ``--folds`` default is said.

    ``classes`` is ``(default vocabulary name, allowed names)``; the names are those of
    :data:`fermtl_tf.knowledge.vocabularies.VOCABULARIES`.
    """
    group.add_argument("--frames", default=frames,
                       help=f"frames kept per sequence (default {frames}, {reference})")
    default, choices = classes
    group.add_argument("--classes", default=default, choices=choices,
                       help=f"class set (vocabulary) of the expression labels; images of "
                            f"other classes are not selected (default {default}, {reference})")
    group.description = (f"Without --folds, {folds} identity-independent folds are "
                         f"assigned ({reference}).")


def restrict_classes(inputs, labelled_in, classes):
    """Keep the sequences whose class is in vocabulary ``classes``, relabelled in it.

    ``inputs`` carry expression indices of vocabulary ``labelled_in`` (the dataset's
    full class set). A sequence's class is that of its labelled frames, and a sequence
    outside ``classes`` leaves with all its frames, unlabelled ones too (under
    ``--frames all`` only CK+'s peak frame carries the label). Inputs without a
    sequence id stand alone. Returns ``(kept, {class name: images not selected})``.
    """
    target = vocabulary(classes)
    sequence_class = {}
    for face in inputs:
        if face.expression is not None:
            sequence_class[face.sequence_id or id(face)] = labelled_in[face.expression]
    kept, other = [], Counter()
    for face in inputs:
        name = sequence_class.get(face.sequence_id or id(face))
        if name is not None and name not in target:
            other[name] += 1
            continue
        if face.expression is not None:
            face.expression = target.index(labelled_in[face.expression])
        kept.append(face)
    return kept, dict(sorted(other.items()))


def apply_protocol(inputs, frames, num_folds, labelled_in, classes):
    """Keep the frames of ``frames`` and the classes of ``classes``; assign folds.

    Frames are selected first, then whole sequences outside vocabulary ``classes`` are
    left out (:func:`restrict_classes`; ``labelled_in`` is the vocabulary of the inputs'
    labels), then ``num_folds`` identity-independent folds are assigned to what is left,
    so the folds balance the images actually used. ``num_folds`` 0 leaves folds alone.
    Returns ``(kept inputs, frames not selected, {class: images not selected})``.
    """
    mode, count = parse_frame_rule(frames)
    keep = select_frames([f.sequence_id for f in inputs], [f.frame_index for f in inputs],
                         mode, count)
    framed = [f for f, k in zip(inputs, keep, strict=True) if k]
    kept, other_classes = restrict_classes(framed, labelled_in, classes)
    if num_folds:
        assignment = identity_folds([f.identity for f in kept], num_folds)
        for face in kept:
            face.fold = assignment.get(face.identity, -1)
    return kept, len(inputs) - len(framed), other_classes


def listing_fingerprint(root, paths, options):
    """SHA-256 of the relative paths and sizes of ``paths`` plus the importer ``options``.

    Cheap (no file is read) yet changes when a file is added, removed or rewritten with
    another size, or when an option changes what is imported.
    """
    digest = hashlib.sha256(repr(sorted(options.items())).encode("utf-8"))
    for path in sorted(paths):
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1
        digest.update(f"{os.path.relpath(path, root)}\t{size}\n".encode())
    return digest.hexdigest()


def cache_folder(args, source):
    """Where decoded pixels (CSV rows, video frames) are written: ``--cache`` or in ``--out``."""
    return getattr(args, "cache", None) or os.path.join(args.out, CACHE_FOLDER, source)


def write_png(path, rgb):
    """Write RGB pixels as PNG (lossless; the same pixels give the same bytes), atomically.

    A cache left by an older copy of the data cannot be stale: the file is rewritten
    unless it already holds exactly these bytes, and then it is left untouched so its
    modification time (part of the shard fingerprints) says "unchanged".
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PrepError(f"cannot encode decoded pixels as PNG for {path}")
    try:
        with open(path, "rb") as handle:
            if handle.read() == buffer.tobytes():
                return path
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(buffer.tobytes())
    os.replace(tmp, path)
    return path
